/*
 * metrics.h - the Prometheus registry of `glm-server serve` (GET /metrics):
 * vLLM's metric names, labels and histogram buckets with the prefix "glm:",
 * so vLLM's dashboards work by changing the prefix.
 *
 * Gauges and token/prefix/preemption counters come from the engine's metrics
 * snapshot at scrape time. The per-request histograms (TTFT, inter-token
 * latency, e2e, queue, prefill, decode, inference time, prompt and generation
 * tokens) and request_success_total{finished_reason} are observed by the HTTP
 * layer from the engine's finish events (one observation per sample, as vLLM
 * v1 fans n > 1 out into separate requests) and from the arrival of token
 * events (inter-token latency). Every call is thread-safe; a scrape sees each
 * histogram consistently (count == the +Inf bucket).
 */
#ifndef GLM_METRICS_H
#define GLM_METRICS_H

#include <stdio.h>

#include "sched/engine.h"

typedef struct glm_metrics glm_metrics;

/* max_model_len sets the 1-2-5 token-count buckets, as vLLM's build_1_2_5_buckets. */
glm_metrics *glm_metrics_create(int max_model_len);
void glm_metrics_free(glm_metrics *m);

/* A sample finished: ev is its GLM_EV_FINISH event; reason is the one the
 * client was told (a stop string is GLM_FINISH_STOP although the engine saw
 * an abort). */
void glm_metrics_observe_finish(glm_metrics *m, const glm_event *ev, glm_finish_reason reason);

/* The time between two consecutive tokens of one sample, seconds. */
void glm_metrics_observe_itl(glm_metrics *m, double seconds);

/* Writes the whole exposition (text format 0.0.4) to f. es: the engine
 * snapshot; model_name is escaped as a label value. */
void glm_metrics_render(glm_metrics *m, const glm_engine_metrics *es, const char *model_name, FILE *f);

/* Prometheus text-format helpers, exposed for the unit test. A label value
 * with backslash, double quote and newline escaped (malloc'd). A number as
 * Python's prometheus_client writes it ("1.0", "0.25", "+Inf", "1e+06") into
 * out (32 bytes are always enough). */
char *glm_metrics_escape_label(const char *v);
void glm_metrics_format_number(double v, char *out, size_t outlen);

#endif
