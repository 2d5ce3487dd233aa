//! MCP tools: the stack lists the server's tools, calls them for the model and answers, as in the
//! seed's traffic driver (`responses.create` with an `mcp` tool: "What tools are available?",
//! then a question that needs a tool). Every MCP exchange replays from the recordings.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::{
    MCP_TOKEN, ask, assert_response, events, failing_tool_request, items, mcp_tool, output_text,
    types,
};
use crate::common::{LlamaStackModels, TestEnv, client};

/// The test server's tools.
const SERVER_TOOLS: [&str; 3] = ["get_weather", "list_repositories", "get_repository_issues"];

fn list_tools_item(r: &Value) -> Result<&Value> {
    let lists = items(r, "mcp_list_tools");
    ensure!(lists.len() == 1, "one mcp_list_tools item expected: {r}");
    Ok(lists[0])
}

fn tool_names(list: &Value) -> Vec<&str> {
    list["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect()
}

/// "What tools are available?": an `mcp_list_tools` item with every tool and its input schema,
/// then the model's answer (the seed's first `responses.create`).
pub async fn test_mcp_list_tools(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(ask(
            &env,
            json!([{"role": "user", "content": "What tools are available?"}]),
            json!([mcp_tool(json!({}))]),
            json!({}),
        ))
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    let list = list_tools_item(&r)?;
    ensure!(r["output"][0] == *list, "the listing comes first: {r}");
    ensure!(
        list["server_label"] == "github" && list["error"].is_null(),
        "{list}"
    );
    ensure!(
        list["id"].as_str().is_some_and(|i| i.starts_with("mcpl_")),
        "{list}"
    );
    let mut names = tool_names(list);
    names.sort_unstable();
    let mut expected = SERVER_TOOLS.to_vec();
    expected.sort_unstable();
    ensure!(names == expected, "tools {names:?}");
    let weather = list["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "get_weather")
        .context("get_weather")?;
    ensure!(
        weather["input_schema"]["properties"]["city"]["type"] == "string",
        "{weather}"
    );
    ensure!(
        !output_text(&r).trim().is_empty() || !items(&r, "mcp_call").is_empty(),
        "an answer or a call: {r}"
    );
    // Credentials are not echoed, so they are not stored either.
    let tools = r["tools"].to_string();
    ensure!(
        !tools.contains(MCP_TOKEN) && !tools.contains("authorization"),
        "{tools}"
    );
    Ok(())
}

/// A question that needs a tool: the model calls `get_weather`, the stack executes it on the MCP
/// server (an `mcp_call` with its output), and the model answers from it.
pub async fn test_mcp_tool_call(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(ask(
            &env,
            "What is the weather in Paris?",
            json!([mcp_tool(json!({}))]),
            json!({}),
        ))
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    let calls = items(&r, "mcp_call");
    ensure!(!calls.is_empty(), "an mcp_call expected: {r}");
    let call = calls[0];
    ensure!(
        call["name"] == "get_weather" && call["server_label"] == "github",
        "{call}"
    );
    ensure!(
        call["status"] == "completed" && call["error"].is_null(),
        "{call}"
    );
    ensure!(
        call["output"].as_str().is_some_and(|o| o.contains("Paris")),
        "{call}"
    );
    ensure!(
        call["id"].as_str().is_some_and(|i| i.starts_with("mcp_")),
        "{call}"
    );
    let kinds: Vec<&str> = r["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["type"].as_str())
        .collect();
    ensure!(
        kinds.first() == Some(&"mcp_list_tools") && kinds.last() == Some(&"message"),
        "order {kinds:?}"
    );
    ensure!(!output_text(&r).trim().is_empty(), "a final answer: {r}");
    Ok(())
}

/// The same, streamed: the MCP events come in OpenAI's order and the completed response has the
/// same items as the events announced.
pub async fn test_mcp_tool_call_streaming(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let evs = events(c.create_response_stream(ask(
        &env,
        "What is the weather in Paris?",
        json!([mcp_tool(json!({}))]),
        json!({}),
    )))
    .await?;
    let t = types(&evs);
    let mut at = 0;
    for kind in [
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_text.delta",
        "response.completed",
    ] {
        at += t[at..]
            .iter()
            .position(|x| *x == kind)
            .with_context(|| format!("no {kind} after event {at}: {t:?}"))?;
    }
    let completed = &evs.last().context("last")?["response"];
    assert_response(completed, "completed", env.text_model())?;
    let done: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect();
    let output: Vec<&Value> = completed["output"]
        .as_array()
        .context("output")?
        .iter()
        .collect();
    ensure!(
        done == output,
        "items announced {done:?} vs output {output:?}"
    );
    Ok(())
}

/// A tool that fails: the `mcp_call` carries the tool's error, the response still completes.
pub async fn test_mcp_tool_error(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c.create_response(failing_tool_request(&env)).await?;
    assert_response(&r, "completed", env.text_model())?;
    let calls = items(&r, "mcp_call");
    ensure!(!calls.is_empty(), "an mcp_call expected: {r}");
    let call = calls[0];
    ensure!(
        call["name"] == "get_repository_issues" && call["status"] == "failed",
        "{call}"
    );
    ensure!(call["output"].is_null(), "{call}");
    ensure!(
        call["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate limit")),
        "{call}"
    );
    Ok(())
}

/// `allowed_tools`: the listing shows only the allowed tools, and only they can be called.
pub async fn test_mcp_allowed_tools(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(ask(
            &env,
            "How many repositories does the token have access to?",
            json!([mcp_tool(
                json!({"allowed_tools": {"tool_names": ["list_repositories"]}})
            )]),
            json!({}),
        ))
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    ensure!(
        tool_names(list_tools_item(&r)?) == ["list_repositories"],
        "{r}"
    );
    for call in items(&r, "mcp_call") {
        ensure!(
            call["name"] == "list_repositories",
            "a tool that is not allowed was called: {call}"
        );
    }
    Ok(())
}

/// `max_tool_calls`: at most that many MCP calls are executed, and the response still ends with
/// an answer.
pub async fn test_mcp_max_tool_calls(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(ask(
            &env,
            "What is the weather in Paris and in Tokyo?",
            json!([mcp_tool(json!({"allowed_tools": ["get_weather"]}))]),
            json!({"max_tool_calls": 1}),
        ))
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    ensure!(
        items(&r, "mcp_call").len() <= 1,
        "more calls than max_tool_calls: {r}"
    );
    ensure!(r["max_tool_calls"] == 1, "{}", r["max_tool_calls"]);
    ensure!(items(&r, "message").len() == 1, "ends with one answer: {r}");
    Ok(())
}

/// A chain (`previous_response_id`) reuses the tools the first response listed: no second
/// listing (in replay, a second `tools/list` would have no recording and fail the response).
pub async fn test_mcp_chain_does_not_list_again(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let tools = json!([mcp_tool(json!({}))]);
    let first = c
        .create_response(ask(
            &env,
            "What is the weather in Paris?",
            tools.clone(),
            json!({}),
        ))
        .await?;
    assert_response(&first, "completed", env.text_model())?;
    ensure!(items(&first, "mcp_list_tools").len() == 1, "{first}");
    let second = c
        .create_response(ask(
            &env,
            "And what is the weather in Tokyo?",
            tools,
            json!({"previous_response_id": first["id"]}),
        ))
        .await?;
    assert_response(&second, "completed", env.text_model())?;
    ensure!(
        items(&second, "mcp_list_tools").is_empty(),
        "listed again: {second}"
    );
    Ok(())
}

/// `require_approval: always`: the response stops at an `mcp_approval_request`; a response that
/// approves it (`mcp_approval_response`) runs the call and answers.
pub async fn test_mcp_approval(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let tools = json!([mcp_tool(json!({"require_approval": "always"}))]);
    let first = c
        .create_response(ask(
            &env,
            "What is the weather in Paris?",
            tools.clone(),
            json!({}),
        ))
        .await?;
    assert_response(&first, "completed", env.text_model())?;
    ensure!(
        items(&first, "mcp_call").is_empty(),
        "nothing runs before approval: {first}"
    );
    let requests = items(&first, "mcp_approval_request");
    ensure!(
        requests.len() == 1 && requests[0]["name"] == "get_weather",
        "{first}"
    );
    let request_id = requests[0]["id"].as_str().context("id")?;
    let second = c
        .create_response(ask(
            &env,
            json!([{"type": "mcp_approval_response", "approval_request_id": request_id, "approve": true}]),
            tools,
            json!({"previous_response_id": first["id"]}),
        ))
        .await?;
    assert_response(&second, "completed", env.text_model())?;
    let call = items(&second, "mcp_call")
        .first()
        .copied()
        .context("the approved call ran")?
        .clone();
    ensure!(
        call["approval_request_id"] == request_id && call["status"] == "completed",
        "{call}"
    );
    Ok(())
}

/// An MCP server that cannot be reached: an `mcp_list_tools` item with the error and a failed
/// response with an error object, not a 5xx.
pub async fn test_mcp_unreachable_server(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(ask(
            &env,
            "What tools are available?",
            json!([mcp_tool(
                json!({"server_label": "offline", "server_url": "http://127.0.0.1:9/mcp"})
            )]),
            json!({}),
        ))
        .await?;
    assert_response(&r, "failed", env.text_model())?;
    let list = list_tools_item(&r)?;
    ensure!(list["server_label"] == "offline", "{list}");
    ensure!(
        list["error"]
            .as_str()
            .is_some_and(|e| e.contains("offline")),
        "{list}"
    );
    ensure!(
        r["error"]["code"] == "mcp_list_tools_failed" && r["error"]["message"].is_string(),
        "{}",
        r["error"]
    );
    ensure!(
        items(&r, "message").is_empty(),
        "no model turn after a failed listing: {r}"
    );
    Ok(())
}

/// The tool's `authorization` reaches the MCP server (it refuses a wrong token, so the listing
/// fails) and never reaches disk: no file under the recordings directory holds it.
pub async fn test_mcp_authorization_reaches_server_not_disk(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let wrong = "ghp_llamastackrsWRONGtoken000000000000000";
    let r = c
        .create_response(ask(
            &env,
            "What tools are available?",
            json!([mcp_tool(json!({"authorization": wrong}))]),
            json!({}),
        ))
        .await?;
    assert_response(&r, "failed", env.text_model())?;
    let list = list_tools_item(&r)?;
    ensure!(
        list["error"]
            .as_str()
            .is_some_and(|e| e.contains("401") || e.to_lowercase().contains("auth")),
        "{list}"
    );
    // Where the recorder writes: LLAMA_STACK_TEST_RECORDING_DIR, else the workspace's recordings/.
    let dir = harness::recorder::RecorderConfig::from_env()?
        .map_or_else(harness::recorder::default_recordings_dir, |c| c.dir);
    for token in [MCP_TOKEN, wrong] {
        let found = files_containing(&dir, token)?;
        ensure!(
            found.is_empty(),
            "the token {token} is on disk in {found:?}"
        );
    }
    Ok(())
}

fn files_containing(dir: &std::path::Path, needle: &str) -> Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(found);
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle)?);
        } else if std::fs::read(&path)?
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(path);
        }
    }
    Ok(found)
}
