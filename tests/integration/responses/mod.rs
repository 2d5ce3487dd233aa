//! The Responses API (`POST /v1/responses` and friends) with function and MCP tools, recorded
//! against llama.cpp (a tool-calling model, `docs/providers.md`) and a real MCP server built with
//! the official Python SDK (`scripts/providers/mcp.sh`). Modelled on Llama Stack's
//! `tests/integration/responses/`.
//!
//! What the recordings can show: the wire shapes, the event order, the orchestration (list,
//! call, answer), ids, storage and telemetry. What they cannot: that a bigger model would answer
//! well; assertions check structure and determinism, not the quality of the answers.

pub mod test_basic;
pub mod test_function_tools;
pub mod test_mcp;
pub mod test_responses_telemetry;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use serde_json::{Value, json};
use stack::client::ClientStream;

use crate::common::{LlamaStackModels, TestEnv};

/// The bearer token the test MCP server requires when it is started for recording
/// (`scripts/providers/mcp.sh` sets it); a fake credential that must never reach disk.
pub const MCP_TOKEN: &str = "ghp_llamastackrsTESTtoken0000000000000000";

/// The URL of the MCP server the recordings were made against (its host and port are not part of
/// the request key; its path is).
pub fn mcp_server_url() -> String {
    std::env::var("MCP_SERVER_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:8765/mcp".to_owned())
}

/// An `mcp` tool for the test server, labelled `github` as in the seed's traffic driver, that
/// needs no approval; `extra` fields are added or replace the defaults.
pub fn mcp_tool(extra: Value) -> Value {
    let mut tool = json!({
        "type": "mcp",
        "server_label": "github",
        "server_url": mcp_server_url(),
        "authorization": MCP_TOKEN,
        "require_approval": "never",
    });
    if let (Some(t), Value::Object(extra)) = (tool.as_object_mut(), extra) {
        t.extend(extra);
    }
    tool
}

/// A create request for `input` with `tools`, greedy and short (temperature 0, at most 96 output
/// tokens per model turn); `extra` fields are added or replace those.
pub fn ask(env: &TestEnv, input: impl Into<Value>, tools: Value, extra: Value) -> Value {
    let mut body = json!({
        "model": env.text_model(), "input": input.into(), "tools": tools,
        "temperature": 0, "max_output_tokens": 96,
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    body
}

/// A request that makes the model call the test server's tool that always fails.
pub fn failing_tool_request(env: &TestEnv) -> Value {
    ask(
        env,
        "List the open issues of the repository acme/llama-stack-rs.",
        json!([mcp_tool(
            json!({"allowed_tools": ["get_repository_issues"]})
        )]),
        json!({"tool_choice": "required"}),
    )
}

/// The output items of type `kind`.
pub fn items<'a>(r: &'a Value, kind: &str) -> Vec<&'a Value> {
    r["output"]
        .as_array()
        .map(|o| o.iter().filter(|i| i["type"] == kind).collect())
        .unwrap_or_default()
}

/// What the SDKs' `output_text` gives: the text of every `output_text` part of the messages.
pub fn output_text(r: &Value) -> String {
    items(r, "message")
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "output_text")
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

/// The common shape of a finished response: object, id, status, model, usage that adds up.
pub fn assert_response(r: &Value, status: &str, model: &str) -> Result<()> {
    ensure!(r["object"] == "response", "object {}", r["object"]);
    ensure!(
        r["id"].as_str().is_some_and(|id| id.starts_with("resp_")),
        "id {}",
        r["id"]
    );
    ensure!(
        r["status"] == status,
        "status {} (expected {status}): {r}",
        r["status"]
    );
    ensure!(r["model"] == model, "model {}", r["model"]);
    ensure!(r["created_at"].is_i64(), "created_at {}", r["created_at"]);
    ensure!(r["output"].is_array(), "output {}", r["output"]);
    let u = &r["usage"];
    match (
        u["input_tokens"].as_u64(),
        u["output_tokens"].as_u64(),
        u["total_tokens"].as_u64(),
    ) {
        (Some(i), Some(o), Some(t)) => ensure!(i + o == t, "usage {i} + {o} != {t}"),
        _ => bail!("usage incomplete: {u}"),
    }
    for item in r["output"].as_array().into_iter().flatten() {
        ensure!(
            item["id"].is_string(),
            "an output item without an id: {item}"
        );
    }
    Ok(())
}

/// Every event of a streamed response, checked for what every stream must have: sequence
/// numbers 0, 1, 2..., `response.created` first, one terminal event last.
pub async fn events(stream: ClientStream) -> Result<Vec<Value>> {
    let events: Vec<Value> = stream
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    ensure!(!events.is_empty(), "no events");
    for (n, e) in events.iter().enumerate() {
        ensure!(
            e["sequence_number"].as_u64() == Some(n as u64),
            "event {n} has sequence_number {}: {e}",
            e["sequence_number"]
        );
    }
    ensure!(
        events[0]["type"] == "response.created",
        "first event {}",
        events[0]["type"]
    );
    let last = events.last().context("no last event")?;
    ensure!(
        matches!(
            last["type"].as_str(),
            Some("response.completed" | "response.failed" | "response.incomplete")
        ),
        "last event {}",
        last["type"]
    );
    let terminal = events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t == "response.completed" || t == "response.failed")
        })
        .count();
    ensure!(terminal == 1, "{terminal} terminal events");
    Ok(events)
}

/// The event types in order.
pub fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}
