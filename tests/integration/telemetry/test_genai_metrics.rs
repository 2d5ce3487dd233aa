//! GenAI and HTTP metrics (semantic conventions v1.41.1), as deltas against a baseline. These
//! tests run alone: metrics are process-wide (and server-wide), not per trace.

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use serde_json::{Value, json};

use super::test_genai_spans::{WAIT, provider_model};
use crate::common::{LlamaStackModels, TestEnv, client, telemetry};

/// Token-usage histogram sums equal the responses' usage; one operation duration per call; one
/// time-to-first-token for the stream; the HTTP server counts the requests per route.
pub async fn test_token_usage_and_duration_metrics(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let baseline = capture.metrics_baseline().await?;
    let plain = c
        .chat_completion(json!({"model": env.text_model(), "messages": [{"role": "user", "content": "Name a color."}], "temperature": 0, "max_tokens": 8}))
        .await?;
    let mut s = c.chat_completion_stream(json!({
        "model": env.text_model(), "messages": [{"role": "user", "content": "Name an animal."}],
        "temperature": 0, "max_tokens": 8, "stream": true, "stream_options": {"include_usage": true}
    }));
    let mut stream_usage = Value::Null;
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        if !chunk["usage"].is_null() {
            stream_usage = chunk["usage"].clone();
        }
    }
    let delta = capture.metrics_delta_since(&baseline, WAIT).await?;
    let model = provider_model(env.text_model());
    let tokens = |field: &str| -> Result<f64> {
        let a = plain["usage"][field].as_f64().context("plain usage")?;
        let b = stream_usage[field].as_f64().context("stream usage")?;
        Ok(a + b)
    };
    let input = delta.histogram_sum(
        "gen_ai.client.token.usage",
        &[
            ("gen_ai.token.type", "input"),
            ("gen_ai.request.model", model),
        ],
    );
    let output = delta.histogram_sum(
        "gen_ai.client.token.usage",
        &[
            ("gen_ai.token.type", "output"),
            ("gen_ai.request.model", model),
        ],
    );
    ensure!(
        input == tokens("prompt_tokens")?,
        "input token sum {input} != {}",
        tokens("prompt_tokens")?
    );
    ensure!(
        output == tokens("completion_tokens")?,
        "output token sum {output} != {}",
        tokens("completion_tokens")?
    );
    let calls = delta.histogram_count(
        "gen_ai.client.operation.duration",
        &[
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", model),
        ],
    );
    ensure!(calls == 2, "two chat operations measured, got {calls}");
    let ttft = delta.histogram_count(
        "gen_ai.server.time_to_first_token",
        &[("gen_ai.request.model", model)],
    );
    ensure!(
        ttft == 1,
        "one time to first token (the stream), got {ttft}"
    );
    if !c.is_library() {
        let requests = delta.histogram_count(
            "http.server.request.duration",
            &[
                ("http.route", "/v1/chat/completions"),
                ("http.request.method", "POST"),
            ],
        );
        ensure!(
            requests == 2,
            "two requests on the chat route, got {requests}: {:?}",
            delta.names()
        );
    }
    Ok(())
}
