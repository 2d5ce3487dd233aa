//! Text completions through the stack (`POST /v1/completions`), plain and streaming.

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{LlamaStackModels, TestEnv, client};

/// A plain completion: one choice with text, finish reason, usage.
pub async fn test_completion_non_streaming(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c.completion(json!({"model": env.completion_model(), "prompt": "The capital of France is", "temperature": 0, "max_tokens": 8})).await?;
    ensure!(r["object"] == "text_completion", "object {}", r["object"]);
    let choice = &r["choices"][0];
    ensure!(
        choice["text"].as_str().is_some_and(|t| !t.is_empty()),
        "text: {r}"
    );
    ensure!(choice["finish_reason"].is_string(), "finish_reason: {r}");
    ensure!(
        r["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "usage: {r}"
    );
    Ok(())
}

/// Streamed text equals the plain text at temperature 0.
pub async fn test_completion_streaming(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let body = json!({"model": env.completion_model(), "prompt": "Once upon a time", "temperature": 0, "max_tokens": 12});
    let plain = c.completion(body.clone()).await?;
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let mut s = c.completion_stream(streamed);
    let (mut text, mut chunks) = (String::new(), 0);
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        chunks += 1;
        text.push_str(chunk["choices"][0]["text"].as_str().unwrap_or(""));
    }
    ensure!(chunks > 2, "several chunks, got {chunks}");
    let want = plain["choices"][0]["text"].as_str().context("plain text")?;
    ensure!(text == want, "streamed {text:?} != plain {want:?}");
    Ok(())
}

/// A stop sequence ends the completion before it appears.
pub async fn test_completion_stop_sequence(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .completion(json!({"model": env.completion_model(), "prompt": "1, 2, 3, 4,", "temperature": 0, "max_tokens": 30, "stop": ["8"]}))
        .await?;
    let text = r["choices"][0]["text"].as_str().context("text")?;
    ensure!(!text.contains('8'), "stop sequence in the text: {text:?}");
    ensure!(
        r["choices"][0]["finish_reason"] == "stop",
        "finish_reason {}",
        r["choices"][0]["finish_reason"]
    );
    Ok(())
}

/// `logprobs` come in the completions API's shape (`tokens`, `token_logprobs`, `top_logprobs`,
/// `text_offset`), whatever shape the provider used: one entry a token, the tokens spelling the
/// text, offsets counting on from the prompt's end, at most `logprobs` alternatives a position.
pub async fn test_completion_logprobs(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let prompt = "The capital of France is";
    let r = c.completion(json!({"model": env.completion_model(), "prompt": prompt, "temperature": 0, "max_tokens": 4, "logprobs": 2})).await?;
    let choice = &r["choices"][0];
    let lp = &choice["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .with_context(|| format!("tokens in {lp}"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(!tokens.is_empty(), "tokens: {lp}");
    for field in ["token_logprobs", "top_logprobs", "text_offset"] {
        ensure!(
            lp[field].as_array().map(Vec::len) == Some(tokens.len()),
            "{field} has one entry a token: {lp}"
        );
    }
    ensure!(
        lp["token_logprobs"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l.as_f64().is_some_and(|l| l <= 0.0)),
        "log probabilities are <= 0: {lp}"
    );
    ensure!(
        lp["top_logprobs"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t.as_object().is_some_and(|o| !o.is_empty() && o.len() <= 2)),
        "1 to 2 alternatives a position: {lp}"
    );
    ensure!(
        tokens.concat() == choice["text"].as_str().unwrap_or_default(),
        "the tokens spell the text: {r}"
    );
    let mut expected = prompt.chars().count() as u64;
    for (offset, token) in lp["text_offset"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(&tokens)
    {
        ensure!(offset.as_u64() == Some(expected), "text_offset: {lp}");
        expected += token.chars().count() as u64;
    }
    Ok(())
}
