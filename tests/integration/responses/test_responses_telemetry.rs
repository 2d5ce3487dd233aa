//! The telemetry of a response with an MCP tool (semantic conventions v1.41.1): one
//! `invoke_agent` span parents the model turns (`chat {model}`), the MCP client spans of the
//! session (`initialize`, `tools/list`...) and an `execute_tool {tool}` span per call, which
//! carries the MCP attributes of its `tools/call`; Llama Stack's custom `llama_stack.mcp.*` data
//! is there for the seed's dashboards; trace context reaches the MCP server.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use harness::telemetry::{CapturedSpan, SpanKind};
use serde_json::json;

use super::{ask, failing_tool_request, items, mcp_tool};
use crate::common::{TestEnv, client, telemetry};
use crate::telemetry::test_genai_spans::text;

const WAIT: Duration = Duration::from_secs(20);

/// Every span of a response with a tool call, its parent chain and attributes.
pub async fn test_response_mcp_spans(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let root = capture.test_root_span("test_response_mcp_spans");
    let r = root
        .run(c.create_response(ask(
            &env,
            "What is the weather in Paris?",
            json!([mcp_tool(json!({}))]),
            json!({}),
        )))
        .await?;
    let call = items(&r, "mcp_call")
        .first()
        .copied()
        .context("an mcp_call")?
        .clone();
    let list = items(&r, "mcp_list_tools")
        .first()
        .copied()
        .context("an mcp_list_tools")?
        .clone();
    let tool_span_name = "execute_tool get_weather";
    let session = ["initialize", "notifications/initialized", "tools/list"];
    // Waits for every span asserted on below, not only for the agent span they end before.
    let spans = capture
        .wait_for_trace(
            root.trace_id(),
            |s| {
                s.iter().any(|x| x.name == "invoke_agent")
                    && s.iter().any(|x| x.name == tool_span_name)
                    && s.iter().filter(|x| x.name.starts_with("chat ")).count() >= 2
                    && session
                        .iter()
                        .all(|method| s.iter().any(|x| x.name == *method))
            },
            WAIT,
        )
        .await?;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let agent = spans
        .iter()
        .find(|s| s.name == "invoke_agent")
        .context("invoke_agent")?;
    ensure!(
        agent.kind == SpanKind::Internal && !agent.is_error(),
        "{agent:?}"
    );
    ensure!(text(agent, "gen_ai.operation.name")? == "invoke_agent");
    ensure!(text(agent, "gen_ai.provider.name")? == "llamacpp");
    ensure!(Some(text(agent, "gen_ai.response.id")?) == r["id"].as_str());
    ensure!(Some(text(agent, "gen_ai.conversation.id")?) == r["id"].as_str());
    ensure!(
        agent.int_attr("gen_ai.usage.input_tokens") == r["usage"]["input_tokens"].as_i64()
            && agent.int_attr("gen_ai.usage.output_tokens") == r["usage"]["output_tokens"].as_i64(),
        "usage on the agent span: {:?}",
        agent.attributes
    );
    ensure!(Some(text(agent, "llama_stack.mcp.list_tools_id")?) == list["id"].as_str());
    ensure!(text(agent, "llama_stack.mcp.server_label")? == "github");
    let chats: Vec<&CapturedSpan> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .collect();
    ensure!(
        chats.len() >= 2,
        "a turn with the call and a turn with the answer: {names:?}"
    );
    ensure!(
        chats.iter().all(|s| s.is_child_of(agent)),
        "model turns are children of the agent span"
    );
    let tool = spans
        .iter()
        .find(|s| s.name == tool_span_name)
        .context("execute_tool")?;
    ensure!(
        tool.is_child_of(agent) && tool.kind == SpanKind::Internal,
        "{tool:?}"
    );
    ensure!(text(tool, "gen_ai.operation.name")? == "execute_tool");
    ensure!(text(tool, "gen_ai.tool.name")? == "get_weather");
    ensure!(Some(text(tool, "gen_ai.tool.call.id")?) == call["id"].as_str());
    ensure!(text(tool, "gen_ai.tool.type")? == "extension");
    ensure!(text(tool, "mcp.method.name")? == "tools/call");
    ensure!(!text(tool, "mcp.session.id")?.is_empty());
    ensure!(!text(tool, "jsonrpc.request.id")?.is_empty());
    ensure!(text(tool, "network.transport")? == "tcp");
    ensure!(
        !text(tool, "server.address")?.is_empty()
            && tool.int_attr("server.port").is_some_and(|p| p > 0)
    );
    ensure!(
        text(tool, "mcp.protocol.version")?.len() == 10,
        "a dated protocol version"
    );
    ensure!(text(tool, "llama_stack.mcp.server_url")?.ends_with("/mcp"));
    ensure!(
        tool.attr("gen_ai.tool.call.arguments").is_none(),
        "arguments are opt-in"
    );
    ensure!(
        !spans.iter().any(|s| s.name.starts_with("tools/call")),
        "a tools/call under execute_tool gets no span of its own: {names:?}"
    );
    for method in session {
        let span = spans
            .iter()
            .find(|s| s.name == method)
            .with_context(|| format!("no {method} span: {names:?}"))?;
        ensure!(
            span.kind == SpanKind::Client && span.is_child_of(agent),
            "{span:?}"
        );
        ensure!(text(span, "mcp.method.name")? == method);
        ensure!(text(span, "llama_stack.mcp.server_label")? == "github");
    }
    let listing = spans
        .iter()
        .find(|s| s.name == "tools/list")
        .context("tools/list")?;
    ensure!(Some(text(listing, "llama_stack.mcp.list_tools_id")?) == list["id"].as_str());
    ensure!(
        !text(listing, "jsonrpc.request.id")?.is_empty()
            && !text(listing, "mcp.session.id")?.is_empty()
    );
    ensure!(
        spans.iter().all(|s| s.trace_id == root.trace_id()),
        "one trace"
    );
    Ok(())
}

/// A tool that fails: its `execute_tool` span has `error.type` `tool_error` and an error status.
pub async fn test_response_tool_error_span(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let root = capture.test_root_span("test_response_tool_error_span");
    root.run(c.create_response(failing_tool_request(&env)))
        .await?;
    let name = "execute_tool get_repository_issues";
    let spans = capture
        .wait_for_trace(root.trace_id(), |s| s.iter().any(|x| x.name == name), WAIT)
        .await?;
    let tool = spans
        .iter()
        .find(|s| s.name == name)
        .context("execute_tool")?;
    ensure!(tool.is_error(), "status {:?}", tool.status);
    ensure!(
        text(tool, "error.type")? == "tool_error",
        "{:?}",
        tool.attributes
    );
    Ok(())
}
