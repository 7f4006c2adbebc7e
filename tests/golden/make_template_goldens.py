#!/usr/bin/env python3
"""Goldens for the chat template and the Jinja interpreter (engine/jinja*.c,
engine/text/chat_template.c), rendered by Hugging Face transformers itself.

Writes tests/golden/chat_template.json:
  "chat":      conversations rendered with tests/models/tiny/chat_template.jinja
               the way tokenizer.apply_chat_template(..., tokenize=False) does:
               messages normalized by transformers' _normalize_chat_messages,
               rendered by transformers.utils.chat_template_utils.render_jinja_template
               (its jinja2 environment: sandboxed, trim_blocks, lstrip_blocks,
               loopcontrols, raise_exception, tojson), with the named special
               tokens of tests/models/tiny/tokenizer_config.json as variables.
               When the tiny tokenizer loads, every prompt is also checked
               against AutoTokenizer.apply_chat_template.
  "templates": small templates exercising the interpreter (whitespace control,
               loops, macros, namespaces, filters, tests, methods, errors) with
               jinja2's output, or the error jinja2 raised.

    make golden-venv && .venv-ref/bin/python tests/golden/make_template_goldens.py
        [--compare OTHER.jinja]   also render every conversation with OTHER (e.g.
                                  the checkpoint's own template) and report any
                                  prompt that differs
"""
import argparse
import json
import os
import sys

import jinja2
import transformers
from transformers.utils.chat_template_utils import (
    _compile_jinja_template,
    _normalize_chat_messages,
    render_jinja_template,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "models", "tiny")
OUT = os.path.join(ROOT, "tests", "golden", "chat_template.json")
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                       "cls_token", "mask_token")

# ---- conversations ------------------------------------------------------------

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city / 某城市的天气",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web.\nReturns \"snippets\".",
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "top_k": {"type": "integer", "default": 5},
        "filters": {"type": "object"}}, "required": ["query"]}}}
CALC = {"type": "function", "function": {"name": "calc", "parameters": {
    "type": "object", "properties": {"expr": {"type": "string"}, "precision": {"type": "number"}}}}}
FLAT_TOOL = {"name": "lookup", "description": "A tool given without the function wrapper",
             "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}}}


def call(name, args, wrapped=True, call_id=None):
    fn = {"name": name, "arguments": args}
    if not wrapped:
        return fn
    c = {"type": "function", "function": fn}
    if call_id:
        c["id"] = call_id
    return c


def user(text):
    return {"role": "user", "content": text}


def asst(text, **kw):
    m = {"role": "assistant", "content": text}
    m.update(kw)
    return m


def tool(text, **kw):
    m = {"role": "tool", "content": text}
    m.update(kw)
    return m


SYS = {"role": "system", "content": "You are a helpful assistant."}


def conversations():
    c = []

    def add(name, messages, tools=None, add_generation_prompt=True, **kwargs):
        c.append({"name": name, "messages": messages, "tools": tools,
                  "add_generation_prompt": add_generation_prompt, "kwargs": kwargs})

    add("single_user", [user("Hello!")])
    add("single_user_no_gen", [user("Hello!")], add_generation_prompt=False)
    add("thinking_off", [user("Hello!")], enable_thinking=False)
    add("thinking_on_explicit", [user("Hello!")], enable_thinking=True)
    add("system_user", [SYS, user("What is 2+2?")])
    add("system_only", [SYS])
    add("two_systems", [SYS, {"role": "system", "content": "Answer briefly."}, user("Hi")])
    add("multi_turn", [SYS, user("Hi"), asst("Hello! How can I help?"), user("Tell me a joke.")])
    add("multi_turn_thinking_off",
        [user("Hi"), asst("Hello!"), user("Another?")], enable_thinking=False)
    add("reasoning_before_last_user",
        [user("Q1"), asst("A1", reasoning_content="thinking about Q1"), user("Q2")])
    add("reasoning_after_last_user",
        [user("Q1"), asst("A1 draft", reasoning_content="  step 1\nstep 2  ")],
        add_generation_prompt=False)
    add("reasoning_both_sides",
        [user("Q1"), asst("A1", reasoning_content="R1"), user("Q2"),
         asst("A2", reasoning_content="R2")], add_generation_prompt=False)
    add("clear_thinking_false",
        [user("Q1"), asst("A1", reasoning_content="R1"), user("Q2"), asst("A2", reasoning_content="R2"),
         user("Q3")], clear_thinking=False)
    add("clear_thinking_true",
        [user("Q1"), asst("A1", reasoning_content="R1"), user("Q2")], clear_thinking=True)
    add("clear_thinking_false_thinking_off",
        [user("Q1"), asst("A1", reasoning_content="R1"), user("Q2")], clear_thinking=False,
        enable_thinking=False)
    add("reasoning_in_content",
        [user("Q"), asst("<think>\nI should say hi.\n</think>\n\nHi there!")], add_generation_prompt=False)
    add("reasoning_in_content_old_turn",
        [user("Q"), asst("<think>old</think>Answer"), user("Next")])
    add("close_tag_only_in_content",
        [user("Q"), asst("partial thought</think>final")], add_generation_prompt=False)
    add("empty_reasoning_content",
        [user("Q"), asst("A", reasoning_content="")], add_generation_prompt=False)
    add("reasoning_alias_reasoning_key",
        [user("Q"), asst("A", reasoning="via the reasoning field")], add_generation_prompt=False)
    add("reasoning_alias_thinking_key",
        [user("Q"), asst("A", thinking="via the thinking field")], add_generation_prompt=False)
    add("reasoning_null", [user("Q"), asst("A", reasoning_content=None)], add_generation_prompt=False)
    add("empty_content", [user(""), asst(""), user("ok")])
    add("null_content_assistant",
        [user("Weather?"), asst(None, tool_calls=[call("get_weather", {"location": "Tokyo"})])],
        tools=[WEATHER], add_generation_prompt=False)
    add("whitespace_content", [user("  padded  "), asst("\n  spaced answer \u3000\n"), user("\u00a0x")])
    add("unicode", [SYS, user("你好，世界！🌍 Ünïcödé — ‘quotes’"),
                    asst("Привет! 👋", reasoning_content="思考中…"), user("¿Qué?")])
    add("newlines_in_content", [user("line1\nline2\r\nline3\n\n"), asst("a\n\nb")], add_generation_prompt=False)
    add("content_parts",
        [user([{"type": "text", "text": "Describe "}, {"type": "image_url", "image_url": {"url": "x"}},
               {"type": "text", "text": "this image."}])])
    add("content_parts_strings", [user(["part one, ", "part two"])])
    add("content_parts_system_assistant",
        [{"role": "system", "content": [{"type": "text", "text": "Sys in parts."}]}, user("Hi"),
         asst([{"type": "text", "text": "Answer in parts."}])], add_generation_prompt=False)
    add("tools_declared", [user("Weather in Paris?")], tools=[WEATHER])
    add("tools_declared_thinking_off", [user("Weather in Paris?")], tools=[WEATHER, SEARCH],
        enable_thinking=False)
    add("tools_empty_list", [user("Hi")], tools=[])
    add("tools_flat_spec", [user("Look up 7")], tools=[FLAT_TOOL, CALC])
    add("tool_call_string_args",
        [SYS, user("Weather in Tokyo?"),
         asst("", tool_calls=[call("get_weather", {"location": "Tokyo", "unit": "celsius"}, call_id="c1")]),
         tool('{"temperature": 22}', tool_call_id="c1")], tools=[WEATHER])
    add("tool_call_nonstring_args",
        [user("Search"), asst("Searching.", tool_calls=[call("search", {
            "query": "glm \"5\" release\n", "top_k": 3, "filters": {"lang": ["en", "中文"], "safe": True},
            "score": 0.5, "ratio": 1e-07, "big": 12345678901234, "none": None, "flag": False,
            "whole": 2.0, "list": [1, 2.5, "x"]})]),
         tool("results...")], tools=[SEARCH])
    add("tool_call_unwrapped",
        [user("Look up 7"), asst(None, tool_calls=[call("lookup", {"id": 7}, wrapped=False)]),
         tool("found")], tools=[FLAT_TOOL])
    add("tool_call_empty_args",
        [user("Now?"), asst("", tool_calls=[call("calc", {})]), tool("12:00")], tools=[CALC])
    add("parallel_tool_calls",
        [user("Weather in Paris and Rome?"),
         asst("", reasoning_content="Two cities, two calls.",
              tool_calls=[call("get_weather", {"location": "Paris"}), call("get_weather", {"location": "Rome"})]),
         tool("sunny"), tool("rainy")], tools=[WEATHER])
    add("three_tool_results",
        [user("go"), asst("", tool_calls=[call("calc", {"expr": "1+1"}), call("calc", {"expr": "2*3"}),
                                         call("calc", {"expr": "7-1", "precision": 2})]),
         tool("2"), tool("6"), tool("6.00")], tools=[CALC])
    add("tool_results_separated",
        [user("go"), asst("", tool_calls=[call("calc", {"expr": "1"})]), tool("1"),
         asst("", tool_calls=[call("calc", {"expr": "2"})]), tool("2")], tools=[CALC])
    add("tool_then_answer",
        [user("Weather?"), asst("", reasoning_content="call it", tool_calls=[call("get_weather", {"location": "Oslo"})]),
         tool("{\"celsius\": 12}"), asst("It is 12 C.", reasoning_content="got 12"), user("And Bergen?")],
        tools=[WEATHER])
    add("tool_cycle_in_progress_thinking",
        [user("Weather?"), asst("", reasoning_content="call it", tool_calls=[call("get_weather", {"location": "Oslo"})]),
         tool("{\"celsius\": 12}")], tools=[WEATHER])
    add("tool_cycle_clear_false",
        [user("Weather?"), asst("", reasoning_content="call it", tool_calls=[call("get_weather", {"location": "Oslo"})]),
         tool("12"), asst("12 C", reasoning_content="done"), user("thanks")], tools=[WEATHER], clear_thinking=False)
    add("tool_content_list_outputs",
        [user("go"), asst("", tool_calls=[call("calc", {"expr": "1"})]),
         tool([{"output": "first"}, {"output": "second"}])], tools=[CALC])
    add("tool_content_list_strings",
        [user("go"), asst("", tool_calls=[call("calc", {"expr": "1"})]), tool(["a", "b"])], tools=[CALC])
    add("tool_content_text_parts_unicode",
        [user("go"), asst("", tool_calls=[call("calc", {"expr": "1"})]),
         tool([{"type": "text", "text": "\u0378 \U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074"
                                         "\U000E007F \u0890\U000110BD \U0001E4E0's \u4e2d"}])], tools=[CALC])
    add("tool_first_message", [tool("orphan result"), user("hm")])
    add("assistant_text_and_call",
        [user("Weather?"), asst("Let me check.", tool_calls=[call("get_weather", {"location": "Lima"})]),
         tool("warm")], tools=[WEATHER], enable_thinking=False)
    add("assistant_prefill_last", [user("Write a haiku."), asst("Autumn moonlight")], add_generation_prompt=False)
    add("extra_message_fields", [{"role": "user", "content": "hi", "name": "alice"},
                                 asst("hello", name="bot")])
    add("unknown_role", [user("hi"), {"role": "developer", "content": "ignored by GLM"}, user("again")])
    add("reasoning_effort_kwarg", [user("Hi")], reasoning_effort="high")
    add("custom_kwargs", [user("Hi")], enable_thinking=False, some_flag=True, date="2026-01-01")
    add("long_conversation",
        [SYS] + [m for i in range(8) for m in (user("question %d" % i),
                                              asst("answer %d" % i, reasoning_content="r%d" % i))] + [user("last")])
    add("special_chars_in_args",
        [user("x"), asst("", tool_calls=[call("search", {"query": "a<b>&c \\ \"d\" \t tab", "top_k": -1})]),
         tool("<tool_response>nested</tool_response>")], tools=[SEARCH])
    add("tool_json_unicode_args",
        [user("x"), asst("", tool_calls=[call("search", {"query": "café ☕", "filters": {"ключ": "значение", "emoji": "🎉"}})])],
        tools=[SEARCH], add_generation_prompt=False)
    add("float_args",
        [user("x"), asst("", tool_calls=[call("calc", {"expr": "pi", "precision": 3.141592653589793}),
                                        call("calc", {"expr": "tiny", "precision": 1.5e-10}),
                                        call("calc", {"expr": "huge", "precision": 1e22})])],
        tools=[CALC], add_generation_prompt=False)
    add("multiple_turns_with_tools",
        [SYS, user("Weather in A?"), asst("", tool_calls=[call("get_weather", {"location": "A"})]), tool("sun"),
         asst("Sunny in A."), user("And B?"), asst("", reasoning_content="B now", tool_calls=[call("get_weather", {"location": "B"})]),
         tool("snow")], tools=[WEATHER, SEARCH])
    return c


# ---- interpreter templates ------------------------------------------------------

T = []


def tmpl(name, template, **context):
    T.append({"name": name, "template": template, "context": context})


def interpreter_cases():
    # whitespace control: trim_blocks, lstrip_blocks, -, +
    tmpl("ws_trim_blocks", "{% if true %}\nA\n{% endif %}\nB\n")
    tmpl("ws_lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\n  y")
    tmpl("ws_minus_both", "a  \n  {%- if true -%}  \n b \n {%- endif -%}\n  c")
    tmpl("ws_plus", "  {%+ if true +%}\nx\n  {%+ endif %}\ny")
    tmpl("ws_var_minus", "a  {{- 'b' -}}  c\n{{ 'd' }}\ne")
    tmpl("ws_var_no_lstrip", "  {{ 'x' }}\n  {{ 'y' }}")
    tmpl("ws_comments", "a\n  {# note #}\nb {#- x -#} c\n{# trailing #}")
    tmpl("ws_raw", "{% raw %}{{ not }} {% evaluated %}{% endraw %}\n  {%- raw -%}  x  {%- endraw %}!")
    tmpl("ws_crlf", "line1\r\n{% if true %}\r\nline2\r\n{% endif %}\r\nline3\r\n")
    tmpl("ws_trailing_newline_dropped", "x\n")
    tmpl("ws_unicode_space_minus", "a\u3000\u00a0 {{- 'b' }}")
    tmpl("ws_lstrip_after_text", "text {% if true %}X{% endif %}\n    {% if true %}Y{% endif %}")
    # literals and expressions
    tmpl("lit_numbers", "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 2.50 }}")
    tmpl("lit_strings", "{{ 'a\\'b' }}|{{ \"c\\\"d\" }}|{{ 'tab\\tnl\\n' }}|{{ '\\u00e9\\x41' }}|{{ 'x' 'y' }}")
    tmpl("lit_collections", "{{ [1, 'a', none, true, 1.0] }} {{ (1,) }} {{ () }} {{ {'k': [1, {'n': None}]} }} {{ 1, 2 }}")
    tmpl("float_repr", "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 123456789.125 }} {{ 1/3 }} {{ 2.0 * 3 }} {{ -0.0 }} {{ 1e300 * 1e10 }}")
    tmpl("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -2 }} {{ 10 / 4 }} {{ 3 - 5 }} {{ true + 1 }}")
    tmpl("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ not true or true }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}")
    tmpl("concat_and_repeat", "{{ 'ab' ~ none ~ 1.0 ~ [1] }} {{ 'ab' + 'cd' }} {{ 'x' * 3 }} {{ [1, 2] + [3] }} {{ [0] * 3 }}")
    tmpl("logic_values", "{{ 0 or 'a' }} {{ '' and 'b' }} {{ [] or none }} {{ 1 and 2 }} {{ not [] }}")
    tmpl("cond_expr", "{{ 'y' if x else 'n' }} {{ 'y' if not x }}|{{ 'a' if false else 'b' if true else 'c' }}", x=0)
    tmpl("compare_in", "{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 1 == 1.0 }} {{ [1] != [1] }} {{ none == none }} {{ 'a' < 'b' }}")
    # variables, attributes, items, slices
    tmpl("attr_item", "{{ d.a }} {{ d['a'] }} {{ d.missing }}|{{ l[0] }} {{ l[-1] }} {{ l[9] }}|{{ s[1] }} {{ d.get('a') }} {{ d.get('z', 5) }}",
         d={"a": 1, "items": 2}, l=[1, 2, 3], s="héllo")
    tmpl("dict_items_attr_vs_key", "{{ d['items'] }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", d={"items": 9, "b": 2})
    tmpl("slices", "{{ s[1:3] }} {{ s[::-1] }} {{ s[-2:] }} {{ l[1:] }} {{ l[::2] }} {{ l[:-1] }} {{ l[5:] }} {{ s[::-2] }}",
         s="añb€c", l=[1, 2, 3, 4])
    tmpl("undefined_behaviour", "[{{ nothing }}] {{ nothing is defined }} {{ nothing | default('dflt') }} {{ nothing | length }} "
         "{% for x in nothing %}never{% else %}empty{% endfor %} {{ 'a' ~ nothing }} {{ nothing == nothing }} {{ none.x }}|")
    # loops
    tmpl("loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}")
    tmpl("loop_else_filter", "{% for x in items if x > 1 %}{{ x }}{{ loop.length }}{{ loop.last }},{% else %}none{% endfor %}|"
         "{% for x in [] %}{% else %}empty{% endfor %}", items=[1, 2, 3])
    tmpl("loop_break_continue", "{% for i in range(10) %}{% if i is even %}{% continue %}{% endif %}{% if i > 6 %}{% break %}{% endif %}{{ i }}{% endfor %}")
    tmpl("loop_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}[{{ x }}]{% endfor %}{{ x }}"
         "{% set ns = namespace(total=0) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}")
    tmpl("loop_nested_cycle", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.cycle('o', 'e') }}{{ a }}{{ b }}{% endfor %}/{{ loop.index }}{% endfor %}")
    tmpl("loop_dict_unpack", "{% for k, v in d | dictsort %}{{ k }}:{{ v }} {% endfor %}{% for k in d %}{{ k }}{% endfor %}",
         d={"b": 2, "a": 1, "C": 3})
    tmpl("loop_changed", "{% for x in [1, 1, 2, 2, 1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}")
    tmpl("range_forms", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }} {{ range(3) }} {{ 2 in range(3) }}")
    # set / macros / namespaces / call / filter blocks / with
    tmpl("set_forms", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}  block {{ a }} {% endset %}[{{ c }}]{% set u | upper %}up{% endset %}{{ u }}")
    tmpl("macros", "{% macro m(a, b=2, c='c') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c='z') }} {{ m(b=5, a=4) }}")
    tmpl("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}")
    tmpl("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}|{{ b }}|{{ b is defined }}]{% endmacro %}{{ m(1) }}")
    tmpl("macro_recursion", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(10) }}")
    tmpl("macro_sees_outer", "{% set g = 'global' %}{% macro m() %}{{ g }}{% endmacro %}{% set g = 'changed' %}{{ m() }}")
    tmpl("macro_whitespace", "{% macro item(x) -%}\n  <{{ x }}>\n{%- endmacro %}\n{% for i in [1, 2] %}\n  {{ item(i) }}\n{% endfor %}")
    tmpl("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold{% endcall %}"
         "{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}({{ v }}){% endcall %}")
    tmpl("filter_block_with", "{% filter upper %}abc {{ 'd' }}{% endfilter %} {% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}")
    tmpl("scope_block_frames", "{% set w %}{% set inner = 1 %}{% endset %}{% filter upper %}{% set inner2 = 2 %}{% endfilter %}"
         "{% for i in [] %}{% else %}{% set inner3 = 3 %}{% endfor %}{% with a = 1 %}{% set inner4 = 4 %}{% endwith %}"
         "[{{ inner }}{{ inner2 }}{{ inner3 }}{{ inner4 }}]")
    tmpl("for_else_after_break", "{% for i in [1, 2] %}{% break %}{% else %}E{% endfor %}|"
         "{% for i in [1, 2] %}{% if i == 2 %}{% break %}{% endif %}{% else %}E{% endfor %}|"
         "{% for i in [1] %}{% continue %}{% else %}E{% endfor %}")
    tmpl("root_store_before_use", "{% macro f() %}[{{ x }}]{% endmacro %}{{ f() }}{% set x = 9 %}{{ f() }}"
         "{% for i in [1] %}[{{ y }}]{% endfor %}{% set y = 2 %}"
         "{% macro g() %}[{{ z }}]{% endmacro %}{{ g() }}{% if true %}{% set z = 3 %}{% endif %}{{ g() }}",
         x="X", y="Y", z="Z")
    tmpl("frame_store_shadows", "{% for i in [1] %}{% for j in [1] %}[{{ v }}]{% endfor %}{% set v = 2 %}[{{ v }}]{% endfor %}"
         "{% for i in [1] %}{% set w = w ~ '!' %}[{{ w }}]{% endfor %}", v="V", w="W")
    tmpl("generation_scope", "{% generation %}{% set g = 1 %}{{ g }}{% endgeneration %}[{{ g }}]")
    tmpl("macro_repr", "{% macro m() %}{{ caller is defined }}{% endmacro %}{{ m }} {{ m() }}")
    tmpl("namespace_forms", "{% set ns = namespace(a=1) %}{% set ns.b = [ns.a] %}{{ ns.a }}{{ ns.b }}{{ ns.c }}|{% set n2 = namespace({'x': 5}) %}{{ n2.x }}")
    tmpl("dict_global", "{{ dict(a=1, b=2) }} {{ dict({'x': 1}, y=2) }} {{ dict([('k', 'v')]) }}")
    # tests
    tmpl("tests", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ none is none }} {{ 1 is none }} "
         "{{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ 'x' is iterable }} {{ 1 is number }} "
         "{{ true is boolean }} {{ false is false }} {{ 1 is true }} {{ 1 is integer }} {{ 1.0 is float }} "
         "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 2 is equalto 2 }} {{ 2 is eq 3 }} {{ 2 is gt 1 }} {{ 2 is in [2] }} "
         "{{ x is defined }} {{ y is undefined }} {{ m is callable }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ none is sameas none }}",
         x=1)
    tmpl("tests_on_undefined", "{{ u is sequence }} {{ u is iterable }} {{ u is mapping }} {{ u is string }} {{ none is iterable }}")
    # filters
    tmpl("filters_text", "{{ '  x  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'hello world' | upper }} {{ 'HeLLo' | lower }} "
         "{{ 'hello WORLD' | capitalize }} {{ 'hello big-world (x)' | title }} {{ 'aXbX' | replace('X', '-') }} "
         "{{ 'aaa' | replace('a', 'b', 2) }} {{ 42 | string }} {{ 'abc' | center(9) }}| {{ 'a b  c' | wordcount }} {{ 'a\nb\n\nc' | indent(2) }}|"
         "{{ 'x\ny' | indent(first=true) }} {{ '<a href=\"x\">&\\'' | e }} {{ 'ab' | reverse }}")
    tmpl("filters_numbers", "{{ '12' | int }} {{ '1.9' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ '0x1f' | int(0, 16) }} {{ 3.9 | int }} "
         "{{ '3' | float }} {{ 'a' | float }} {{ -3 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.567 | round(2) }} "
         "{{ 2.5 | round(0, 'floor') }} {{ 2.1 | round(0, 'ceil') }} {{ 7 | round }} {{ [1, 2, 3.5] | sum }} {{ [3, 1, 2] | max }} {{ [3, 1, 2] | min }}")
    tmpl("filters_lists", "{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'a'] | sort }} {{ ['b', 'A', 'a'] | sort(case_sensitive=true) }} "
         "{{ [3, 1, 2] | sort(reverse=true) }} {{ ['a', 'A', 'b'] | unique | list }} {{ [1, 2] | first }} {{ [1, 2] | last }} "
         "{{ [] | first }}|{{ [1, 2, 3] | length }} {{ 'ab' | list }} {{ {'k': 1} | list }} {{ [1, 2] | join(', ') }} {{ [1, 2, 3] | reverse | list }} "
         "{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3, 4, 5] | slice(2) | list }}")
    tmpl("filters_select_map", "{{ users | selectattr('active') | map(attribute='name') | join(',') }} "
         "{{ users | rejectattr('active') | map(attribute='name') | list }} {{ users | selectattr('role', 'equalto', 'admin') | list | length }} "
         "{{ users | selectattr('role', '==', 'user') | map(attribute='name') | first }} {{ [1, 2, 3, 4] | select('odd') | list }} "
         "{{ [1, 2, 3, 4] | reject('even') | list }} {{ [' a ', 'b '] | map('trim') | list }} {{ users | map(attribute='age', default=0) | list }} "
         "{{ users | sort(attribute='name') | map(attribute='name') | join }} {{ users | map(attribute='name') | map('upper') | join('|') }}",
         users=[{"name": "bo", "active": True, "role": "admin", "age": 30}, {"name": "al", "active": False, "role": "user"},
                {"name": "cy", "active": True, "role": "user", "age": 20}])
    tmpl("filters_dict", "{{ d | dictsort }} {{ d | dictsort(reverse=true) }} {{ d | dictsort(by='value') }} {{ d | items | list }} "
         "{{ d | length }} {{ d.keys() | list }} {{ d.values() | list }} {{ d | attr('b') }}|",
         d={"b": 1, "a": 3, "c": 2})
    tmpl("filters_default", "{{ x | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | default('d') }} {{ u | d('dd') }}", x=0)
    tmpl("tojson", "{{ obj | tojson }}|{{ obj | tojson(indent=2) }}|{{ obj | tojson(ensure_ascii=True) }}|"
         "{{ obj | tojson(separators=(',', ':')) }}|{{ obj | tojson(sort_keys=true) }}|{{ 'é\"\\\\\n\t\u2028\x7f' | tojson }}",
         obj={"z": [1, 2.5, None, True], "a": "é😀<>&'", "n": {"e": [], "d": {}}, "f": 1e-7, "i": -3})
    tmpl("tojson_indent_str", "{{ [1, [2, {'a': 3}]] | tojson(indent='\\t') }}")
    tmpl("format_percent", "{{ '%s-%d-%5.2f-%x-%r' % ('s', 42, 3.14159, 255, 'q') }} {{ '%(a)s/%(b)s' % {'a': 1, 'b': 2} }} "
         "{{ '%s' % 'one' }} {{ '%05d|%-4d|%+d' % (42, 7, 3) }} {{ '%%' % () }} {{ '%s and %s' | format('x', 'y') }} {{ '%.3e' % 12345.678 }}")
    tmpl("str_format", "{{ '{} and {}'.format(1, 'b') }} {{ '{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=3) }} {{ '{:>5}|{:<4}|{:^5}'.format('r', 'l', 'c') }} "
         "{{ '{:.2f} {:05d} {:,}'.format(3.14159, 42, 1) if false else '{:.2f} {:05d}'.format(3.14159, 42) }} {{ '{{literal}}'.format() }} {{ '{!r}'.format('q') }}")
    tmpl("str_methods", "{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ ' a b '.strip() }}|{{ 'xxa'.lstrip('x') }} "
         "{{ 'axx'.rstrip('x') }} {{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} "
         "{{ ' a b c '.rsplit(None, 1) }} {{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'abc'.find('z') }} {{ 'héllo wörld'.find('w') }} "
         "{{ 'a-b'.replace('-', '+') }} {{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'hello world'.title() }} {{ \"they're\".title() }} "
         "{{ 'hello'.capitalize() }} {{ 'aXa'.count('a') }} {{ ','.join(['a', 'b']) }} {{ 'a\\nb\\r\\nc'.splitlines() }} "
         "{{ 'x'.center(5, '*') }} {{ '7'.zfill(3) }} {{ 'k=v=w'.partition('=') }} {{ 'k=v=w'.rpartition('=') }} "
         "{{ 'prefix_x'.removeprefix('prefix_') }} {{ '123'.isdigit() }} {{ 'ab'.isalpha() }} {{ '  '.isspace() }} {{ 'ab1'.isalnum() }}")
    tmpl("unicode_strings", "{{ s | length }} {{ s[0] }} {{ s[-1] }} {{ s | upper }} {{ s | reverse }} {{ s.split('é') }} {{ s | list | length }} {{ s.strip('Ωa') }}",
         s="aébΩ中文🎉a")
    tmpl("repr_strings", "{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'nl\\n', 'tab\\t', 'bs\\\\', 'é', '\\x01', '\\u2028', '\\u3000', '🎉'] }}")
    # what repr() escapes: unassigned code points, format and tag characters (a subdivision
    # flag), Unicode 15/16 letters (unassigned for Python 3.11), private use, noncharacters
    tmpl("repr_unicode_classes", "{{ x }} {{ {'k': x[0]} }}",
         x=["\u0378", "\u0890\u0891\u08e2", "\U000110bd\U00013430\U0001bca0\U0001d173",
            "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", "\U000e0001",
            "\u00ad\u200b\u2060\ufeff", "\U0001e4e0\U00010d4a\U0002ebf0", "\ue000\U0010fffd",
            "\ufffe\U0001ffff", "\u4e2d\U0001F600"])
    tmpl("namespace_print", "{% set ns = namespace(a=1, b='x') %}{{ ns }}")
    tmpl("generation_tag", "A{% generation %}B{{ 1 }}{% endgeneration %}C")
    tmpl("print_tag", "{% print 'p', 1 %}")
    tmpl("loopcontrols_in_nested", "{% for i in [1, 2, 3] %}{% for j in [1, 2, 3] %}{% if j == 2 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}")
    tmpl("strftime_is_callable", "{{ strftime_now is defined }} {{ raise_exception is defined }} {{ range is defined }}")
    tmpl("messages_like_hf", "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] | trim + '<|im_end|>\\n' }}{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}",
         messages=[{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}], add_generation_prompt=True)
    tmpl("qwen_style_reverse_scan", "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
         "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
         "{%- if ns.multi_step_tool and message.role == 'user' and not(message.content.startswith('<tool_response>')) %}"
         "{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}{{ ns.last_query_index }}",
         messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "<tool_response>x"}])
    # errors (the golden keeps jinja2's message; the C side must also fail)
    tmpl("err_raise_exception", "{{ raise_exception('Conversation roles must alternate') }}")
    tmpl("err_undefined_attr", "{{ foo.bar }}")
    tmpl("err_undefined_arith", "{{ foo + 1 }}")
    tmpl("err_type_concat", "{{ 'a' + 1 }}")
    tmpl("err_div_zero", "{{ 1 // 0 }}")
    tmpl("err_unorderable", "{{ 1 < 'a' }}")
    tmpl("err_not_iterable", "{% for x in 5 %}{% endfor %}")
    tmpl("err_macro_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}")
    tmpl("err_unsafe_method", "{{ [1].append(2) }}")
    tmpl("err_range_too_big", "{% for i in range(1000000000) %}{% endfor %}")
    tmpl("err_tojson_undefined", "{{ foo | tojson }}")
    tmpl("err_unpack", "{% set a, b = [1, 2, 3] %}")
    tmpl("err_namespace_underscore", "{% set ns = namespace() %}{% set ns._x = 1 %}")
    tmpl("err_syntax_unclosed_for", "{% for x in y %}never closed")
    tmpl("err_syntax_unknown_filter", "{{ x | nosuchfilter }}")
    tmpl("err_syntax_unknown_tag", "{% frobnicate %}")
    tmpl("err_syntax_bad_expr", "{{ 1 + }}")
    tmpl("err_syntax_unclosed_var", "{{ x ")
    tmpl("err_syntax_extends", "{% extends 'base.html' %}")


def render_template_case(case):
    try:
        out = _compile_jinja_template(case["template"]).render(**case["context"])
        case["output"] = out
    except Exception as e:  # noqa: BLE001 - any jinja2 error is a golden outcome
        case["error"] = "%s: %s" % (type(e).__name__, e)
    return case


# ---- chat rendering ---------------------------------------------------------------------------

def special_tokens(model_dir):
    """Named special tokens as transformers' special_tokens_map gives them."""
    path = os.path.join(model_dir, "tokenizer_config.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    out = {}
    for name in SPECIAL_TOKEN_NAMES:
        v = cfg.get(name)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            out[name] = str(v)
    return out


def render_chat(template, conv, specials):
    messages = _normalize_chat_messages(conv["messages"])
    kwargs = {**specials, **conv["kwargs"]}
    rendered, _ = render_jinja_template(
        conversations=[messages], tools=conv["tools"], chat_template=template,
        add_generation_prompt=conv["add_generation_prompt"], **kwargs)
    return rendered[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", help="another chat template to compare prompts with")
    args = ap.parse_args()

    with open(os.path.join(MODEL, "chat_template.jinja"), encoding="utf-8") as f:
        template = f.read()
    specials = special_tokens(MODEL)
    convs = conversations()
    for conv in convs:
        conv["prompt"] = render_chat(template, conv, specials)

    try:  # the full apply_chat_template path, when the tiny tokenizer is there
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(MODEL)
    except Exception as e:  # noqa: BLE001
        tok = None
        print("note: tokenizer not loaded (%s); skipped the apply_chat_template cross-check" % e)
    if tok is not None:
        for conv in convs:
            got = tok.apply_chat_template(conv["messages"], tools=conv["tools"], tokenize=False,
                                          add_generation_prompt=conv["add_generation_prompt"], **conv["kwargs"])
            if got != conv["prompt"]:
                sys.exit("apply_chat_template differs on %s:\n%r\n%r" % (conv["name"], got, conv["prompt"]))
        print("apply_chat_template agrees on all %d conversations" % len(convs))

    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            other = f.read()
        diffs = 0
        for conv in convs:
            try:
                theirs = render_chat(other, conv, specials)
            except Exception as e:  # noqa: BLE001
                theirs = "ERROR %s" % e
            if theirs != conv["prompt"]:
                diffs += 1
                print("DIFF %s\n  ours:   %r\n  theirs: %r" % (conv["name"], conv["prompt"], theirs))
        print("%d of %d conversations differ from %s" % (diffs, len(convs), args.compare))

    interpreter_cases()
    templates = [render_template_case(c) for c in T]

    doc = {
        "generator": "tests/golden/make_template_goldens.py",
        "versions": {"transformers": transformers.__version__, "jinja2": jinja2.__version__},
        "chat_template": "tests/models/tiny/chat_template.jinja",
        "special_tokens": specials,
        "chat": convs,
        "templates": templates,
    }
    # one case per line: compact, and diffs stay readable
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("{\n")
        head = ["generator", "versions", "chat_template", "special_tokens"]
        for k in head:
            f.write(" %s: %s,\n" % (json.dumps(k), json.dumps(doc[k], ensure_ascii=False)))
        for key in ("chat", "templates"):
            f.write(' "%s": [\n' % key)
            rows = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in doc[key]]
            f.write(",\n".join("  " + r for r in rows))
            f.write("\n ]%s\n" % ("," if key == "chat" else ""))
        f.write("}\n")
    json.load(open(OUT, encoding="utf-8"))  # well-formed
    print("wrote %s: %d conversations, %d templates" % (os.path.relpath(OUT, ROOT), len(convs), len(templates)))


if __name__ == "__main__":
    main()
