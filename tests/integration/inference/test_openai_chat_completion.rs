//! Chat completions through the stack (`POST /v1/chat/completions`), plain and streaming.
//! Modelled on Llama Stack's `tests/integration/inference/test_openai_completion.py`.

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{
    LlamaStackModels, TestEnv, assert_chat_completion, client, content_of, expect_bad_request,
};

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// A basic non-streaming chat: one choice, assistant role, text content, usage.
pub async fn test_chat_completion_non_streaming(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .chat_completion(json!({"model": env.text_model(), "messages": user("Which planet do humans live on? Answer in one word."), "temperature": 0, "max_tokens": 16}))
        .await?;
    assert_chat_completion(&r)?;
    ensure!(
        r["object"] == "chat.completion",
        "object is {}",
        r["object"]
    );
    ensure!(
        r["model"].as_str().is_some_and(|m| !m.is_empty()),
        "model is missing: {r}"
    );
    ensure!(!content_of(&r)?.trim().is_empty(), "empty content: {r}");
    Ok(())
}

/// A system prompt is accepted and the answer is well-formed.
pub async fn test_chat_completion_system_prompt(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .chat_completion(json!({
            "model": env.text_model(),
            "messages": [{"role": "system", "content": "You are a pirate. Answer briefly."}, {"role": "user", "content": "Hello, who are you?"}],
            "temperature": 0, "max_tokens": 24
        }))
        .await?;
    assert_chat_completion(&r)?;
    ensure!(
        r["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 5,
        "the system prompt counts in the prompt: {r}"
    );
    Ok(())
}

/// A multi-turn conversation (user, assistant, user) is accepted; the prompt grows with it.
pub async fn test_chat_completion_multi_turn(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let first = c
        .chat_completion(json!({"model": env.text_model(), "messages": user("My name is Ada. Say hi."), "temperature": 0, "max_tokens": 16}))
        .await?;
    let reply = content_of(&first)?.to_owned();
    let second = c
        .chat_completion(json!({
            "model": env.text_model(),
            "messages": [{"role": "user", "content": "My name is Ada. Say hi."}, {"role": "assistant", "content": reply}, {"role": "user", "content": "What is my name?"}],
            "temperature": 0, "max_tokens": 16
        }))
        .await?;
    assert_chat_completion(&second)?;
    let (p1, p2) = (
        first["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        second["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
    );
    ensure!(
        p2 > p1,
        "the second turn's prompt ({p2} tokens) includes the first ({p1})"
    );
    Ok(())
}

/// A stop sequence ends the answer before it appears.
pub async fn test_chat_completion_stop_sequence(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .chat_completion(json!({"model": env.text_model(), "messages": user("Count from 1 to 10, separated by commas."), "temperature": 0, "max_tokens": 40, "stop": ["5"]}))
        .await?;
    assert_chat_completion(&r)?;
    let text = content_of(&r)?;
    ensure!(
        !text.contains('5'),
        "the stop sequence must not appear: {text:?}"
    );
    ensure!(
        r["choices"][0]["finish_reason"] == "stop",
        "finish_reason: {}",
        r["choices"][0]["finish_reason"]
    );
    Ok(())
}

/// `max_tokens` cuts the answer and says so with finish_reason `length`.
pub async fn test_chat_completion_max_tokens_length(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    for field in ["max_tokens", "max_completion_tokens"] {
        let r = c
            .chat_completion(json!({"model": env.text_model(), "messages": user("Write a long story about a dragon."), "temperature": 0, field: 5}))
            .await?;
        assert_chat_completion(&r)?;
        ensure!(
            r["choices"][0]["finish_reason"] == "length",
            "{field}: finish_reason {}",
            r["choices"][0]["finish_reason"]
        );
        ensure!(
            r["usage"]["completion_tokens"] == 5,
            "{field}: completion_tokens {}",
            r["usage"]["completion_tokens"]
        );
    }
    Ok(())
}

/// The same seed gives the same answer, even with sampling on.
pub async fn test_chat_completion_seed(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let body = json!({"model": env.text_model(), "messages": user("Tell me a random word."), "temperature": 0.8, "seed": 42, "max_tokens": 12});
    let a = c.chat_completion(body.clone()).await?;
    let b = c.chat_completion(body).await?;
    ensure!(
        content_of(&a)? == content_of(&b)?,
        "same seed, different answers: {:?} vs {:?}",
        content_of(&a)?,
        content_of(&b)?
    );
    Ok(())
}

/// `response_format` with a JSON schema yields JSON that matches it.
pub async fn test_chat_completion_json_response_format(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]});
    let r = c
        .chat_completion(json!({
            "model": env.text_model(),
            "messages": user("Give the name and age of a fictional person as JSON."),
            "temperature": 0, "max_tokens": 64,
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
        }))
        .await?;
    assert_chat_completion(&r)?;
    let text = content_of(&r)?;
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("content is not JSON: {text:?}"))?;
    ensure!(
        v["name"].is_string() && v["age"].is_i64(),
        "does not match the schema: {v}"
    );
    Ok(())
}

/// Tool definitions are accepted: the answer is a well-formed message, and any tool call it
/// makes names the declared function with JSON arguments. (Whether a tiny model chooses to call
/// a tool is model quality, not asserted.)
pub async fn test_chat_completion_tools(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}]);
    let r = c
        .chat_completion(json!({"model": env.text_model(), "messages": user("What is the weather in Paris?"), "tools": tools, "tool_choice": "auto", "temperature": 0, "max_tokens": 32}))
        .await?;
    assert_chat_completion(&r)?;
    let message = &r["choices"][0]["message"];
    match message["tool_calls"].as_array() {
        Some(calls) if !calls.is_empty() => {
            for call in calls {
                ensure!(
                    call["type"] == "function" && call["function"]["name"] == "get_weather",
                    "unexpected call: {call}"
                );
                let args: Value = serde_json::from_str(
                    call["function"]["arguments"]
                        .as_str()
                        .context("arguments is not a string")?,
                )?;
                ensure!(args.is_object(), "arguments are a JSON object: {args}");
            }
            ensure!(
                r["choices"][0]["finish_reason"] == "tool_calls",
                "finish_reason {}",
                r["choices"][0]["finish_reason"]
            );
        }
        _ => ensure!(
            message["content"].as_str().is_some_and(|t| !t.is_empty()),
            "neither text nor tool calls: {message}"
        ),
    }
    Ok(())
}

/// Streamed chunks reassemble into exactly the non-streamed text (temperature 0).
pub async fn test_chat_completion_streaming(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let body = json!({"model": env.text_model(), "messages": user("Name three colors."), "temperature": 0, "max_tokens": 24});
    let plain = c.chat_completion(body.clone()).await?;
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let mut s = c.chat_completion_stream(streamed);
    let (mut text, mut chunks, mut finish) = (String::new(), 0, Value::Null);
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        ensure!(
            chunk["object"] == "chat.completion.chunk",
            "chunk object is {}",
            chunk["object"]
        );
        chunks += 1;
        if let Some(choice) = chunk["choices"].get(0) {
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
    }
    ensure!(chunks > 2, "a stream of several chunks, got {chunks}");
    ensure!(
        text == content_of(&plain)?,
        "streamed {text:?} != plain {:?}",
        content_of(&plain)?
    );
    ensure!(
        finish == plain["choices"][0]["finish_reason"],
        "finish_reason {finish} vs {}",
        plain["choices"][0]["finish_reason"]
    );
    Ok(())
}

/// `stream_options.include_usage` adds a final usage chunk with no choices.
pub async fn test_chat_completion_streaming_usage(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let mut s = c.chat_completion_stream(json!({
        "model": env.text_model(), "messages": user("Say yes."), "temperature": 0, "max_tokens": 8,
        "stream": true, "stream_options": {"include_usage": true}
    }));
    let mut last = Value::Null;
    while let Some(chunk) = s.next().await {
        last = chunk?;
    }
    let usage = &last["usage"];
    ensure!(
        usage["prompt_tokens"].as_u64().unwrap_or(0) > 0,
        "usage chunk last: {last}"
    );
    ensure!(
        usage["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "usage chunk last: {last}"
    );
    ensure!(
        last["choices"].as_array().is_some_and(Vec::is_empty),
        "the usage chunk has no choices: {last}"
    );
    Ok(())
}

/// An unknown model is a 4xx that names the models that exist.
pub async fn test_chat_completion_unknown_model(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let err = c
        .chat_completion(json!({"model": "nope/not-a-model", "messages": user("hi")}))
        .await
        .err()
        .context("an unknown model must fail")?;
    let status = err.status().unwrap_or(0);
    ensure!((400..500).contains(&status), "status {status}: {err}");
    let msg = err.message();
    ensure!(
        msg.contains("nope/not-a-model") && msg.contains(env.text_model()),
        "the error names the model and the known ones: {msg}"
    );
    Ok(())
}

/// A malformed body is a 400 in OpenAI's error shape, saying what is wrong.
pub async fn test_chat_completion_malformed_body(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let err = c
        .post_raw("/v1/chat/completions", "{\"model\": ")
        .await
        .err()
        .context("malformed JSON must fail")?;
    ensure!(err.status() == Some(400), "status {:?}", err.status());
    ensure!(
        err.error()
            .is_some_and(|e| e["message"].is_string() && e["type"].is_string()),
        "OpenAI error shape: {err}"
    );
    expect_bad_request(
        c.chat_completion(json!({"model": env.text_model(), "messages": "not a list"}))
            .await,
        "messages",
    )?;
    expect_bad_request(
        c.chat_completion(json!({"messages": user("hi")})).await,
        "model",
    )
}

/// Llama Stack's inference store: a chat completion, plain or streamed, is stored with its input
/// messages, retrievable by id and listed (newest first, filtered by model).
pub async fn test_inference_store(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let plain_messages = user("Name one primary color. Answer in one word.");
    let plain = c
        .chat_completion(json!({"model": env.text_model(), "messages": plain_messages, "temperature": 0, "max_tokens": 8}))
        .await?;
    let streamed_messages = user("Name one ocean. Answer in one word.");
    let mut stream = c.chat_completion_stream(json!({"model": env.text_model(), "messages": streamed_messages, "temperature": 0, "max_tokens": 8}));
    let (mut streamed_id, mut streamed_text) = (String::new(), String::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if let Some(id) = chunk["id"].as_str() {
            streamed_id = id.to_owned();
        }
        streamed_text.push_str(
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    for (id, messages, text) in [
        (
            plain["id"].as_str().context("id")?,
            &plain_messages,
            content_of(&plain)?,
        ),
        (
            streamed_id.as_str(),
            &streamed_messages,
            streamed_text.as_str(),
        ),
    ] {
        let stored = c.get_chat_completion(id).await?;
        ensure!(
            stored["id"] == id && stored["object"] == "chat.completion",
            "{stored}"
        );
        ensure!(
            stored["model"] == env.text_model(),
            "stored under the stack's model id: {stored}"
        );
        ensure!(
            &stored["input_messages"] == messages,
            "input messages of {stored}"
        );
        ensure!(
            content_of(&stored)? == text,
            "the stored answer is the one the caller got: {stored}"
        );
    }
    let listed = c
        .list_chat_completions(&format!("model={}&limit=100", env.text_model()))
        .await?;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    for id in [
        plain["id"].as_str().unwrap_or_default(),
        streamed_id.as_str(),
    ] {
        ensure!(ids.contains(&id), "{id} is listed: {listed}");
    }
    ensure!(listed["object"] == "list", "{listed}");
    let missing = c
        .get_chat_completion("chatcmpl-does-not-exist")
        .await
        .err()
        .context("404")?;
    ensure!(missing.status() == Some(404), "{missing}");
    Ok(())
}
