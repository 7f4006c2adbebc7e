"""Prometheus text-format parsing for the integration tests (imported by
test_server.py): samples keyed by (name, sorted labels), and the consistency
checks of a histogram (cumulative buckets ending in +Inf, +Inf == _count,
_sum and _count together, the model_name label on every sample)."""
import re


def unescape(v):
    """A label value of the text format: \\\\, \\" and \\n escaped."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_exposition(text):
    """Prometheus text format -> ({(name, ((label, value), ...)): float}, {name: type})."""
    samples, types = {}, {}
    lab = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        head, val = line.rsplit(" ", 1)
        name, _, rest = head.partition("{")
        labels = tuple(sorted((k, unescape(v)) for k, v in lab.findall(rest)))
        samples[(name, labels)] = float(val)
    return samples, types


def metric_sum(samples, name, **want):
    return sum(v for (n, labels), v in samples.items()
               if n == name and all(dict(labels).get(k) == w for k, w in want.items()))


HISTOGRAMS = ["time_to_first_token_seconds", "inter_token_latency_seconds", "e2e_request_latency_seconds",
              "request_queue_time_seconds", "request_prefill_time_seconds", "request_decode_time_seconds",
              "request_inference_time_seconds", "request_prompt_tokens", "request_generation_tokens"]


def check_histograms(samples, types, model):
    for h in HISTOGRAMS:
        name = "glm:" + h
        assert types.get(name) == "histogram", (name, types.get(name))
        buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in samples.items() if n == name + "_bucket"))
        assert buckets and buckets[-1][0] == float("inf"), (name, buckets)
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (name, buckets)  # cumulative
        count = metric_sum(samples, name + "_count")
        assert buckets[-1][1] == count, (name, buckets[-1], count)  # +Inf == _count
        total = metric_sum(samples, name + "_sum")
        assert total >= 0 and (count > 0 or total == 0), (name, count, total)
        for (n, l), _ in samples.items():
            if n.startswith(name):
                assert dict(l).get("model_name") == model, l
