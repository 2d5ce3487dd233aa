//! GenAI spans (semantic conventions v1.41.1): one per operation, complete, in the caller's trace.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use harness::telemetry::{
    Capture, CapturedSpan, METRIC_EXPORT_INTERVAL, SPAN_SCHEDULE_DELAY, SpanKind, TestSpan,
};
use serde_json::{Value, json};

use crate::common::{LlamaStackModels, TestEnv, client, client_without_telemetry, telemetry};

/// How long a test waits for spans to arrive.
pub const WAIT: Duration = Duration::from_secs(20);

/// The provider's model id of a stack model id (`llamacpp/smollm2-135m` -> `smollm2-135m`).
pub fn provider_model(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, m)| m)
}

fn one<'a>(spans: &'a [CapturedSpan], name: &str) -> Result<&'a CapturedSpan> {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    ensure!(
        found.len() == 1,
        "expected exactly one span {name:?}, found {}: {:?}",
        found.len(),
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    Ok(found[0])
}

/// Waits for the span named `name` in `root`'s trace and returns it; fails unless exactly one
/// such span is there.
async fn the_span(capture: &Capture, root: &TestSpan, name: &str) -> Result<CapturedSpan> {
    let spans = capture
        .wait_for_trace(root.trace_id(), |s| s.iter().any(|x| x.name == name), WAIT)
        .await?;
    one(&spans, name).cloned()
}

fn int(span: &CapturedSpan, key: &str) -> Result<i64> {
    span.int_attr(key)
        .with_context(|| format!("{} has no integer {key}: {:?}", span.name, span.attributes))
}

/// The string attribute `key` of `span`, or an error naming the span and its attributes.
pub fn text<'a>(span: &'a CapturedSpan, key: &str) -> Result<&'a str> {
    span.str_attr(key)
        .with_context(|| format!("{} has no string {key}: {:?}", span.name, span.attributes))
}

/// A chat completion makes one CLIENT span named `chat {model}` with every required and
/// recommended attribute, and token counts equal to the response's usage.
pub async fn test_chat_completion_span(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let root = capture.test_root_span("test_chat_completion_span");
    let r = root
        .run(c.chat_completion(json!({
            "model": env.text_model(), "messages": [{"role": "user", "content": "Name a fruit."}],
            "temperature": 0, "top_p": 0.9, "max_tokens": 12, "seed": 11, "stop": ["\n\n"]
        })))
        .await?;
    let name = format!("chat {}", provider_model(env.text_model()));
    let span = &the_span(&capture, &root, &name).await?;
    ensure!(span.kind == SpanKind::Client, "kind {:?}", span.kind);
    ensure!(!span.is_error(), "status {:?}", span.status);
    ensure!(text(span, "gen_ai.operation.name")? == "chat");
    ensure!(text(span, "gen_ai.provider.name")? == "llamacpp");
    ensure!(text(span, "gen_ai.request.model")? == provider_model(env.text_model()));
    ensure!(int(span, "gen_ai.request.max_tokens")? == 12);
    ensure!(int(span, "gen_ai.request.seed")? == 11);
    ensure!(
        span.f64_attr("gen_ai.request.temperature") == Some(0.0),
        "temperature {:?}",
        span.attr("gen_ai.request.temperature")
    );
    ensure!(
        span.f64_attr("gen_ai.request.top_p") == Some(0.9),
        "top_p {:?}",
        span.attr("gen_ai.request.top_p")
    );
    ensure!(
        span.string_array_attr("gen_ai.request.stop_sequences") == Some(&["\n\n".to_owned()][..]),
        "stop {:?}",
        span.attr("gen_ai.request.stop_sequences")
    );
    ensure!(
        span.attr("gen_ai.request.choice.count").is_none(),
        "choice.count only when n != 1"
    );
    ensure!(!text(span, "gen_ai.response.model")?.is_empty());
    ensure!(
        Some(text(span, "gen_ai.response.id")?) == r["id"].as_str(),
        "response id"
    );
    let finish = r["choices"][0]["finish_reason"]
        .as_str()
        .context("finish_reason")?
        .to_owned();
    ensure!(
        span.string_array_attr("gen_ai.response.finish_reasons") == Some(&[finish][..]),
        "finish reasons {:?}",
        span.attr("gen_ai.response.finish_reasons")
    );
    ensure!(
        Some(int(span, "gen_ai.usage.input_tokens")?) == r["usage"]["prompt_tokens"].as_i64(),
        "input tokens"
    );
    ensure!(
        Some(int(span, "gen_ai.usage.output_tokens")?) == r["usage"]["completion_tokens"].as_i64(),
        "output tokens"
    );
    ensure!(!text(span, "server.address")?.is_empty());
    ensure!(int(span, "server.port")? > 0);
    ensure!(text(span, "llama_stack.model_id")? == env.text_model());
    ensure!(
        span.attr("gen_ai.input.messages").is_none(),
        "message content is opt-in"
    );
    Ok(())
}

/// A stream makes exactly one span, ended with the stream, whose chunk count is the number of
/// chunks the client received, with usage from the usage chunk and the time to first chunk.
pub async fn test_streaming_chat_one_span(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let root = capture.test_root_span("test_streaming_chat_one_span");
    let (chunks, usage) = root
        .run(async {
            let mut s = c.chat_completion_stream(json!({
                "model": env.text_model(), "messages": [{"role": "user", "content": "Count to five."}],
                "temperature": 0, "max_tokens": 16, "stream": true, "stream_options": {"include_usage": true}
            }));
            let (mut n, mut usage) = (0i64, Value::Null);
            while let Some(chunk) = s.next().await {
                let chunk = chunk?;
                n += 1;
                if !chunk["usage"].is_null() {
                    usage = chunk["usage"].clone();
                }
            }
            anyhow::Ok((n, usage))
        })
        .await?;
    let name = format!("chat {}", provider_model(env.text_model()));
    the_span(&capture, &root, &name).await?;
    // Then quiet in this trace for a moment: a span per chunk would show up as more spans of the
    // same name. Those that ended before the stream's span came with it or before it (a server
    // exports its spans in the order they end; an in-process stack as each ends), so the window
    // is for one made later, as the server drops the stream: ten of a server's batch delays (a
    // loaded machine can hold a batch back for several), or a moment in process.
    let quiet = if capture.as_remote().is_some() {
        SPAN_SCHEDULE_DELAY * 10
    } else {
        Duration::from_millis(50)
    };
    let spans = capture
        .wait_quiet_in_trace(root.trace_id(), quiet, WAIT)
        .await?;
    let span = one(&spans, &name)?;
    ensure!(
        span.bool_attr("gen_ai.request.stream") == Some(true),
        "stream flag {:?}",
        span.attr("gen_ai.request.stream")
    );
    ensure!(
        int(span, "gen_ai.response.chunk_count")? == chunks,
        "chunk count {:?} != {chunks} received",
        span.attr("gen_ai.response.chunk_count")
    );
    ensure!(
        span.f64_attr("gen_ai.response.time_to_first_chunk")
            .is_some_and(|t| t >= 0.0),
        "time to first chunk"
    );
    ensure!(
        Some(int(span, "gen_ai.usage.input_tokens")?) == usage["prompt_tokens"].as_i64(),
        "input tokens"
    );
    ensure!(
        Some(int(span, "gen_ai.usage.output_tokens")?) == usage["completion_tokens"].as_i64(),
        "output tokens"
    );
    ensure!(
        span.string_array_attr("gen_ai.response.finish_reasons")
            .is_some_and(|f| !f.is_empty()),
        "finish reasons"
    );
    Ok(())
}

/// Embeddings make an `embeddings {model}` span with the vector dimension.
pub async fn test_embeddings_span(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let root = capture.test_root_span("test_embeddings_span");
    root.run(
        c.embeddings(json!({"model": env.embedding_model(), "input": ["telemetry", "spans"], "encoding_format": "float"})),
    )
    .await?;
    let name = format!("embeddings {}", provider_model(env.embedding_model()));
    let span = &the_span(&capture, &root, &name).await?;
    ensure!(text(span, "gen_ai.operation.name")? == "embeddings");
    ensure!(int(span, "gen_ai.embeddings.dimension.count")? == env.embedding_dimension() as i64);
    ensure!(
        span.string_array_attr("gen_ai.request.encoding_formats")
            == Some(&["float".to_owned()][..]),
        "encoding formats {:?}",
        span.attr("gen_ai.request.encoding_formats")
    );
    Ok(())
}

/// A provider error (replayed from a recorded 400: llama.cpp allows one choice) makes an error
/// span with `error.type` and the client still gets the provider's status.
pub async fn test_provider_error_span(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let root = capture.test_root_span("test_provider_error_span");
    let err = root
        .run(c.chat_completion(json!({"model": env.text_model(), "messages": [{"role": "user", "content": "hi"}], "n": 2, "max_tokens": 4})))
        .await
        .err()
        .context("the provider refuses n=2")?;
    let status = err.status().context("an HTTP error")?;
    ensure!((400..600).contains(&status), "status {status}");
    let name = format!("chat {}", provider_model(env.text_model()));
    let span = &the_span(&capture, &root, &name).await?;
    ensure!(span.is_error(), "status {:?}", span.status);
    ensure!(
        text(span, "error.type")? == status.to_string(),
        "error.type {:?}",
        span.attr("error.type")
    );
    ensure!(int(span, "gen_ai.request.choice.count")? == 2);
    Ok(())
}

/// One trace: (HTTP server span ->) GenAI span -> provider HTTP client span.
pub async fn test_span_parent_chain(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let root = capture.test_root_span("test_span_parent_chain");
    root.run(c.chat_completion(json!({"model": env.text_model(), "messages": [{"role": "user", "content": "Say ok."}], "temperature": 0, "max_tokens": 4}))).await?;
    let name = format!("chat {}", provider_model(env.text_model()));
    let in_process = c.is_library();
    let spans = capture
        .wait_for_trace(
            root.trace_id(),
            |s| {
                s.iter().any(|x| x.name == name)
                    && s.iter()
                        .any(|x| x.kind == SpanKind::Client && x.name != name)
                    // The server span ends after its GenAI child, with the response head: it
                    // can come in a later batch.
                    && (in_process || s.iter().any(|x| x.kind == SpanKind::Server))
            },
            WAIT,
        )
        .await?;
    let genai = one(&spans, &name)?;
    let provider = spans
        .iter()
        .find(|s| {
            s.kind == SpanKind::Client
                && s.parent_span_id.as_deref() == Some(genai.span_id.as_str())
        })
        .with_context(|| format!("no provider client span under {name}: {spans:#?}"))?;
    ensure!(
        provider.str_attr("http.request.method") == Some("POST"),
        "provider span {:?}",
        provider.attributes
    );
    if in_process {
        ensure!(
            genai.parent_span_id.as_deref() == Some(root.span_id()),
            "in process, the GenAI span is a child of the caller's span"
        );
    } else {
        let server = spans
            .iter()
            .find(|s| s.kind == SpanKind::Server)
            .with_context(|| format!("no HTTP server span: {spans:#?}"))?;
        ensure!(
            server.parent_span_id.as_deref() == Some(root.span_id()),
            "the server continues the client's trace"
        );
        ensure!(
            genai.parent_span_id.as_deref() == Some(server.span_id.as_str()),
            "the GenAI span is a child of the server span"
        );
        ensure!(
            server
                .attr("http.route")
                .is_some_and(|r| r.to_string().contains("/v1/chat/completions")),
            "route {:?}",
            server.attr("http.route")
        );
    }
    ensure!(
        spans.iter().all(|s| s.trace_id == root.trace_id()),
        "one trace"
    );
    Ok(())
}

/// With telemetry switched off, a request makes no span at all.
pub async fn test_no_spans_when_disabled(env: TestEnv) -> Result<()> {
    let (c, capture) = client_without_telemetry(&env).await?;
    let root = capture.test_root_span("test_no_spans_when_disabled");
    root.run(c.chat_completion(json!({"model": env.text_model(), "messages": [{"role": "user", "content": "Say ok."}], "temperature": 0, "max_tokens": 4}))).await?;
    // Four times the longer of the export intervals a test server gets (its span batch delay and
    // metric export interval), so anything emitted would have arrived even on a loaded machine; an
    // in-process stack exports a span as it ends (simple processor), so a moment suffices there.
    let settle = if capture.as_remote().is_some() {
        SPAN_SCHEDULE_DELAY.max(METRIC_EXPORT_INTERVAL) * 4
    } else {
        Duration::from_millis(50)
    };
    tokio::time::sleep(settle).await;
    let spans = capture.spans_in_trace(root.trace_id());
    ensure!(
        spans.is_empty(),
        "spans with telemetry off: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    if let Some(remote) = capture.as_remote() {
        let status = remote.status()?;
        ensure!(
            status.spans == 0 && status.metric_exports == 0,
            "the telemetry-off server exported: {status:?}"
        );
    }
    Ok(())
}
