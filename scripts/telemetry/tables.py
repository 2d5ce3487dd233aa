"""Fills the seed's span tables (Inference, Safety, Remote Tool Listing & Execution, Metrics) from
what a real OTLP receiver (oteltap NDJSON) and Prometheus (query answers) received; prints them as
Markdown and exits 1 when a row the stack claims is missing. Called by test-plan.sh.

Usage: tables.py OTELTAP_NDJSON PROM_TOKENS_JSON PROM_HTTP_JSON
"""
import json
import sys


def value(v):
    for k in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if k in v:
            return int(v[k]) if k == "intValue" else v[k]
    if "arrayValue" in v:
        return [value(x) for x in v["arrayValue"].get("values", [])]
    return v


def load(path):
    spans, metrics, logs = [], set(), []
    for line in open(path):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if "traceId" in item and "spanId" in item and "name" in item and "kind" in item:
            item["attrs"] = {a["key"]: value(a["value"]) for a in item.get("attributes", [])}
            spans.append(item)
        elif "body" in item or "severityText" in item:
            logs.append(item)
        elif "name" in item:
            metrics.add(item["name"])
    return spans, metrics, logs


def main():
    spans, metrics, logs = load(sys.argv[1])
    prom_tokens = json.load(open(sys.argv[2]))["data"]["result"]
    prom_http = json.load(open(sys.argv[3]))["data"]["result"]
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
    prompt_attr = any("gen_ai.input.messages" in s["attrs"] for s in client_chats)
    prompt_log = any("gen_ai" in json.dumps(l) and "Hello, how are you?" in json.dumps(l) for l in logs)
    row("Inference", "Prompt", "Client", "string", "OpenAI instrumentation (content capture on)",
        prompt_attr or prompt_log, "semconv `gen_ai.input.messages` / events",
        "attribute" if prompt_attr else ("log events" if prompt_log else "none"), claimed=False)

    shields = [s for s in spans if s["name"].startswith("run_guardrail ")]
    sa = shields[0]["attrs"] if shields else {}
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

    token_types = {r["metric"].get("gen_ai_token_type"): float(r["value"][1]) for r in prom_tokens}
    row("Metrics", "Token histograms", "Server", "Prometheus `gen_ai_client_token_usage_sum`", "stack meter, Prometheus scrape",
        token_types.get("input", 0) > 0 and token_types.get("output", 0) > 0,
        "semconv `gen_ai.client.token.usage`", json.dumps(token_types))
    row("Metrics", "HTTP server duration", "Server", "Prometheus `http_server_request_duration_seconds`", "tower instrumentation",
        bool(prom_http) and float(prom_http[0]["value"][1]) > 0, "semconv `http.server.request.duration`",
        prom_http[0]["value"][1] if prom_http else "")
    row("Metrics", "OTLP metrics", "Server", "names", "stack meter, OTLP",
        {"gen_ai.client.token.usage", "mcp.client.operation.duration", "llama_stack.safety.verdicts"} <= metrics,
        "semconv + custom", ", ".join(sorted(m for m in metrics if m.startswith(("gen_ai", "mcp", "llama_stack")))))

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
