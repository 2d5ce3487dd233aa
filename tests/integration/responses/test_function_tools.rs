//! Function tools: the response ends with a `function_call` for the client, which answers with a
//! `function_call_output` in a response that continues it (`previous_response_id`).

use anyhow::{Context, Result, ensure};
use serde_json::json;

use super::{assert_response, items, output_text};
use crate::common::{LlamaStackModels, TestEnv, client};

/// A function-tool round trip: call, client output, final text.
pub async fn test_function_call_round_trip(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let tools = json!([{
        "type": "function", "name": "get_weather", "description": "Get the current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}}, "required": ["city"]}
    }]);
    let first = c
        .create_response(
            json!({"model": env.text_model(), "input": "What is the weather in Paris?",
                                "tools": tools, "temperature": 0, "max_output_tokens": 64}),
        )
        .await?;
    assert_response(&first, "completed", env.text_model())?;
    let calls = items(&first, "function_call");
    ensure!(calls.len() == 1, "one function call expected: {first}");
    let call = calls[0];
    ensure!(
        call["name"] == "get_weather" && call["status"] == "completed",
        "{call}"
    );
    let args: serde_json::Value =
        serde_json::from_str(call["arguments"].as_str().context("arguments")?)?;
    ensure!(args["city"].is_string(), "arguments {args}");
    let call_id = call["call_id"].as_str().context("call_id")?;
    ensure!(call_id.starts_with("call_"), "{call_id}");
    let second = c
        .create_response(json!({
            "model": env.text_model(), "previous_response_id": first["id"], "tools": tools,
            "input": [{"type": "function_call_output", "call_id": call_id,
                       "output": "{\"city\": \"Paris\", \"temperature_c\": 18, \"conditions\": \"partly cloudy\"}"}],
            "temperature": 0, "max_output_tokens": 64
        }))
        .await?;
    assert_response(&second, "completed", env.text_model())?;
    ensure!(
        second["previous_response_id"] == first["id"],
        "{}",
        second["previous_response_id"]
    );
    ensure!(
        items(&second, "function_call").is_empty(),
        "the output was used, no new call: {second}"
    );
    ensure!(
        !output_text(&second).trim().is_empty(),
        "a text answer: {second}"
    );
    let input = c
        .list_input_items(second["id"].as_str().context("id")?, "")
        .await?;
    ensure!(
        input["data"][0]["type"] == "function_call_output"
            && input["data"][0]["call_id"] == call_id,
        "{input}"
    );
    Ok(())
}
