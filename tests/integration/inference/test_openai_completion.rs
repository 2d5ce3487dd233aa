//! Text completions through the stack (`POST /v1/completions`), plain and streaming.

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use serde_json::json;

use crate::common::{TestEnv, client};

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
