"""Fills the seed's span tables (Inference, Safety, Remote Tool Listing & Execution, Metrics) from
what the backends received; prints them as Markdown and exits 1 when a row the stack claims is
missing. Called by test-plan.sh (Arize Phoenix + Prometheus) and by the CI variant
(tests/telemetry_plan.rs: the harness's OTLP receiver + a scrape of the stack's endpoint).

Usage: tables.py (--phoenix URL | --harness-spans FILE) (--prometheus URL | --scrape FILE)

Spans come from Phoenix's REST API (`/v1/projects/default/spans/otlpv1`, OTLP-shaped) or from
the harness receiver's span list (its `CapturedSpan` JSON); metrics from Prometheus's query API
or from the stack's exposition text. Each source is read into the same shape:
a span is {traceId, spanId, parentSpanId, name, kind (OTLP number: 2 server, 3 client), attrs}.
"""
import argparse
import json
import re
import sys
import urllib.parse
import urllib.request

KINDS = {"Internal": 1, "Server": 2, "Client": 3, "Producer": 4, "Consumer": 5}


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def otlp_value(v):
    """An OTLP JSON AnyValue (camelCase or snake_case keys; Phoenix also lists the unset ones
    as null) as a Python value."""
    for k in ("stringValue", "string_value", "boolValue", "bool_value", "doubleValue", "double_value"):
        if v.get(k) is not None:
            return v[k]
    for k in ("intValue", "int_value"):
        if v.get(k) is not None:
            return int(v[k])
    for k in ("arrayValue", "array_value"):
        if v.get(k) is not None:
            return [otlp_value(x) for x in v[k].get("values", [])]
    return v


def phoenix_kind(attrs):
    """Phoenix keeps no OpenTelemetry span kind (every span reads back INTERNAL): the HTTP and
    GenAI conventions tell them apart instead. A server span has `http.route`; an HTTP client
    span `url.full` (`http.url` in the older conventions the httpx instrumentation still
    uses); a GenAI client span `gen_ai.operation.name` (the stack's are told apart
    by `llama_stack.model_id` where it matters)."""
    if "http.route" in attrs:
        return 2
    if "url.full" in attrs or "http.url" in attrs or "gen_ai.operation.name" in attrs:
        return 3
    return 1


def phoenix_spans(base):
    """Every span of Phoenix's default project, through its REST API, page by page."""
    spans, cursor = [], None
    while True:
        query = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = get_json(f"{base.rstrip('/')}/v1/projects/default/spans/otlpv1?{urllib.parse.urlencode(query)}")
        for s in page["data"]:
            attrs = {a["key"]: otlp_value(a["value"]) for a in s.get("attributes") or []}
            spans.append({
                "traceId": s["trace_id"], "spanId": s["span_id"], "parentSpanId": s.get("parent_span_id") or "",
                "name": s["name"], "kind": phoenix_kind(attrs), "attrs": attrs,
            })
        cursor = page.get("next_cursor")
        if not cursor:
            return spans


def harness_spans(path):
    """The harness receiver's spans (a JSON list of `CapturedSpan`: values tagged by type)."""
    def plain(v):
        return next(iter(v.values())) if isinstance(v, dict) and len(v) == 1 else v
    return [{
        "traceId": s["trace_id"], "spanId": s["span_id"], "parentSpanId": s.get("parent_span_id") or "",
        "name": s["name"], "kind": KINDS.get(s["kind"], 0),
        "attrs": {k: plain(v) for k, v in s["attributes"].items()},
    } for s in json.load(open(path))]


class Metrics:
    """What the Metrics rows need: token sums by type, HTTP request count, metric names."""

    def __init__(self, tokens, http_requests, names):
        self.tokens, self.http_requests, self.names = tokens, http_requests, set(names)


def prometheus_metrics(base):
    def query(q):
        url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': q})}"
        return get_json(url)["data"]["result"]
    # last_over_time: the stack has stopped by now, and Prometheus marks its series stale.
    tokens = {r["metric"].get("gen_ai_token_type"): float(r["value"][1])
              for r in query("sum by (gen_ai_token_type) (last_over_time(gen_ai_client_token_usage_sum[10m]))")}
    http = query("sum(last_over_time(http_server_request_duration_seconds_count[10m]))")
    names = get_json(f"{base.rstrip('/')}/api/v1/label/__name__/values")["data"]
    return Metrics(tokens, float(http[0]["value"][1]) if http else 0.0, names)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scraped_metrics(path):
    """The Prometheus text exposition format, as the stack's scrape endpoint serves it."""
    tokens, http, names = {}, 0.0, set()
    for line in open(path):
        m = SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))
        names.add(name)
        if name == "gen_ai_client_token_usage_sum":
            key = labels.get("gen_ai_token_type")
            tokens[key] = tokens.get(key, 0.0) + value
        elif name == "http_server_request_duration_seconds_count":
            http += value
    return Metrics(tokens, http, names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    traces = parser.add_mutually_exclusive_group(required=True)
    traces.add_argument("--phoenix", metavar="URL", help="Arize Phoenix's base URL")
    traces.add_argument("--harness-spans", metavar="FILE", help="the harness receiver's spans, as JSON")
    metrics_from = parser.add_mutually_exclusive_group(required=True)
    metrics_from.add_argument("--prometheus", metavar="URL", help="Prometheus's base URL")
    metrics_from.add_argument("--scrape", metavar="FILE", help="a scrape of the stack's /metrics")
    args = parser.parse_args()
    spans = phoenix_spans(args.phoenix) if args.phoenix else harness_spans(args.harness_spans)
    metrics = prometheus_metrics(args.prometheus) if args.prometheus else scraped_metrics(args.scrape)
    by_id = {s["spanId"]: s for s in spans}
    server_chats = [s for s in spans if s["name"].startswith("chat ") and "llama_stack.model_id" in s["attrs"]]
    client_chats = [s for s in spans if s["name"].startswith("chat ") and "/" in str(s["attrs"].get("gen_ai.request.model", ""))]

    def case_of(span):
        a = span["attrs"]
        parent = by_id.get(span.get("parentSpanId", ""))
        if parent is not None and parent["name"] == "invoke_agent":
            return "responses"
        if a.get("gen_ai.request.stream") is True:
            return "streaming"
        return {"llamacpp": "OpenAI-compatible", "ollama": "Ollama", "vllm": "vLLM"}.get(a.get("llama_stack.provider_id"), "?")

    rows, missing = [], []

    def row(table, value_name, location, content, handled, found, semconv, notes="", claimed=True):
        status = "Working" if found else ("MISSING" if claimed else "Not emitted upstream")
        if not found and claimed:
            missing.append(f"{table}: {value_name}")
        rows.append((table, value_name, location, content, handled, status, semconv, notes))

    def cases_with(span_list, key):
        return sorted({case_of(s) if s in server_chats else client_case(s) for s in span_list if key in s["attrs"]})

    def client_case(span):
        model = span["attrs"].get("gen_ai.request.model", "")
        if model.startswith("ollama/"):
            return "Ollama"
        if model.startswith("vllm/"):
            return "vLLM"
        return "streaming" if span["attrs"].get("gen_ai.request.stream") or "time_to_first" in json.dumps(span["attrs"]) else "OpenAI-compatible"

    want = {"OpenAI-compatible", "streaming", "Ollama", "vLLM", "responses"}
    for key, name in (("gen_ai.usage.input_tokens", "Input Tokens"), ("gen_ai.usage.output_tokens", "Output Tokens")):
        got = set(cases_with(server_chats, key))
        row("Inference", name, "Server", "Integer count", "stack GenAI span `chat {model}`", want <= got,
            f"semconv `{key}`", ", ".join(sorted(got)))
    for key, name in (("gen_ai.usage.output_tokens", "Completion Tokens"), ("gen_ai.usage.input_tokens", "Prompt Tokens")):
        got = set(cases_with(client_chats, key))
        row("Inference", name, "Client", "Integer count", "OpenAI instrumentation (openai-v2)",
            {"OpenAI-compatible", "Ollama", "vLLM"} <= got, f"semconv `{key}`", ", ".join(sorted(got)) or "none",
            claimed=False)
    server_prompt = sorted({case_of(s) for s in server_chats if "gen_ai.input.messages" in s["attrs"]})
    row("Inference", "Prompt", "Server", "JSON string (opt-in)", "stack GenAI span `chat {model}` (content capture on)",
        want <= set(server_prompt), "semconv `gen_ai.input.messages`", ", ".join(server_prompt))
    client_prompt = any("gen_ai.input.messages" in s["attrs"] for s in client_chats)
    row("Inference", "Prompt", "Client", "string", "OpenAI instrumentation (content capture on)", client_prompt,
        "semconv `gen_ai.input.messages`",
        "on the client `chat` span" if client_prompt else "openai-v2 2.3b0 sends it as log events, which trace backends do not keep",
        claimed=False)

    shields = [s for s in spans if s["name"].startswith("run_guardrail ")]
    sa = dict(shields[0]["attrs"]) if shields else {}
    # Phoenix unpacks a JSON-string attribute named `...metadata` (OpenInference's convention)
    # into dotted keys: put it back together.
    meta_prefix = "llama_stack.safety.response.metadata."
    unpacked = {k[len(meta_prefix):]: v for k, v in sa.items() if k.startswith(meta_prefix)}
    if unpacked and "llama_stack.safety.response.metadata" not in sa:
        sa["llama_stack.safety.response.metadata"] = json.dumps(unpacked)
    for key, name, content in (
        ("llama_stack.safety.request.shield_id", "Shield ID", "string"),
        ("llama_stack.safety.response.metadata", "Metadata", "JSON string"),
        ("llama_stack.safety.request.messages", "Messages", "JSON string (opt-in)"),
        ("llama_stack.safety.response.violation.user_message", "Response", "string"),
        ("gen_ai.guardrail.verdict.type", "Status", "string"),
    ):
        row("Safety", name, "Server", content, "stack `run_guardrail {shield}` span", key in sa,
            f"`{key}`" + (" (GenAI SIG guardrail proposal)" if key.startswith("gen_ai.") else " (Llama Stack name)"),
            str(sa.get(key, ""))[:60])

    tools = [s for s in spans if s["name"].startswith("execute_tool ")]
    lists = [s for s in spans if s["name"] == "tools/list"]
    ta = tools[0]["attrs"] if tools else {}
    la = lists[0]["attrs"] if lists else {}
    row("Tools", "Tool name", "server", "string", "stack `execute_tool {tool}` span", "gen_ai.tool.name" in ta,
        "semconv `gen_ai.tool.name`", str(ta.get("gen_ai.tool.name", "")))
    row("Tools", "Server URL", "server", "string", "stack MCP spans", "llama_stack.mcp.server_url" in la and "llama_stack.mcp.server_url" in ta,
        "`llama_stack.mcp.server_url` (custom) + semconv `server.address`/`server.port`", str(la.get("llama_stack.mcp.server_url", "")))
    row("Tools", "Server Label", "server", "string", "stack MCP spans", "llama_stack.mcp.server_label" in la and "llama_stack.mcp.server_label" in ta,
        "`llama_stack.mcp.server_label` (custom)", str(la.get("llama_stack.mcp.server_label", "")))
    row("Tools", "mcp_list_tools_id", "server", "string", "stack `tools/list` span", "llama_stack.mcp.list_tools_id" in la,
        "`llama_stack.mcp.list_tools_id` (custom)", str(la.get("llama_stack.mcp.list_tools_id", "")))
    row("Tools", "MCP method/session", "server", "string", "stack MCP client spans",
        "mcp.method.name" in la and "mcp.session.id" in la and "mcp.method.name" in ta,
        "semconv `mcp.method.name`, `mcp.session.id`, `jsonrpc.request.id`", str(ta.get("mcp.method.name", "")))

    tokens = metrics.tokens
    row("Metrics", "Token histograms", "Server", "Prometheus `gen_ai_client_token_usage_sum`", "stack meter, Prometheus scrape",
        tokens.get("input", 0) > 0 and tokens.get("output", 0) > 0,
        "semconv `gen_ai.client.token.usage`", json.dumps(tokens))
    row("Metrics", "HTTP server duration", "Server", "Prometheus `http_server_request_duration_seconds`", "tower instrumentation",
        metrics.http_requests > 0, "semconv `http.server.request.duration`", f"{metrics.http_requests:g} requests")
    claimed_names = {"gen_ai_client_token_usage_sum", "gen_ai_client_operation_duration_seconds_sum",
                     "mcp_client_operation_duration_seconds_sum", "llama_stack_safety_verdicts_total"}
    row("Metrics", "Metric names", "Server", "Prometheus names", "stack meter, Prometheus scrape",
        claimed_names <= metrics.names, "semconv GenAI + MCP, custom safety counter",
        ", ".join(sorted(n for n in metrics.names & claimed_names)))

    server_roots = [s for s in spans if s.get("kind") == 2 and s["name"].startswith("POST /v1/")]

    def client_ancestor(span):
        """The nearest ancestor sent by the client process (its HTTP or GenAI client span)."""
        seen = set()
        while span.get("parentSpanId") in by_id and span["spanId"] not in seen:
            seen.add(span["spanId"])
            span = by_id[span["parentSpanId"]]
            if span.get("kind") == 3 and "llama_stack.model_id" not in span["attrs"]:
                return span
        return None

    joined = [s for s in server_roots if client_ancestor(s) is not None and client_ancestor(s)["traceId"] == s["traceId"]]
    genai_joined = [s for s in server_roots if any(
        a in client_chats for a in [client_ancestor(s), by_id.get((client_ancestor(s) or {}).get("parentSpanId", ""))])]
    row("Trace", "Client-to-server join", "both", "traceparent", "OpenAI + httpx instrumentation, stack server span",
        len(genai_joined) > 0 and len(joined) >= len(server_roots) - 1, "W3C trace context",
        f"{len(joined)} of {len(server_roots)} server spans continue a client trace ({len(genai_joined)} under a client `chat` span; "
        "the run-shield call is a plain urllib request, as the seed's was `requests`)")

    table = None
    for t, name, loc, content, handled, status, semconv, notes in rows:
        if t != table:
            table = t
            print(f"\n#### {t}\n\n| Value | Location | Content | Handled By | Status | Conventions | Seen |\n|---|---|---|---|---|---|---|")
        print(f"| {name} | {loc} | {content} | {handled} | {status} | {semconv} | {notes} |")
    if missing:
        print("\nMISSING:", "; ".join(missing))
        sys.exit(1)
    print("\nevery row the stack claims is present")


if __name__ == "__main__":
    main()
