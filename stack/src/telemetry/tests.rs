//! Telemetry of a stack in front of a wiremock provider, captured with the SDK's in-memory
//! exporters on providers local to each test (handed to the stack with
//! [`Telemetry::with_providers`]); the server-chain test uses the global providers.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use futures::StreamExt;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, TraceId, Tracer};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::semconv as sc;
use super::{ClientSpanMiddleware, Telemetry};
use crate::api::Reply;
use crate::testutil::*;
use crate::{Stack, StackClient};

/// In-memory providers for one test.
struct Local {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    telemetry: Telemetry,
}

impl Local {
    fn new(capture: bool) -> Local {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        let telemetry = Telemetry::with_providers(&tracer_provider, &meter_provider)
            .with_capture_content(capture);
        Local {
            spans,
            metrics,
            tracer_provider,
            meter_provider,
            telemetry,
        }
    }

    async fn stack(&self, provider: &MockServer) -> Stack {
        traced_stack(&provider.uri(), self.telemetry.clone()).await
    }

    /// A root span for the test: its trace id and the context to run calls in.
    fn root(&self) -> (TraceId, Context) {
        use opentelemetry::trace::TracerProvider as _;
        let span = self.tracer_provider.tracer("test").start("test root");
        let cx = Context::current_with_span(span);
        (cx.span().span_context().trace_id(), cx)
    }

    /// The ended spans of a trace, root excluded.
    fn spans_in(&self, trace: TraceId) -> Vec<SpanData> {
        self.spans
            .get_finished_spans()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace && s.name != "test root")
            .collect()
    }

    /// Every data point of histogram `name`: attributes, sum, count, bounds.
    fn histogram(&self, name: &str) -> Vec<Point> {
        self.meter_provider
            .force_flush()
            .unwrap_or_else(|e| panic!("{e}"));
        let exports = self.metrics.get_finished_metrics().unwrap_or_default();
        let Some(last) = exports.last() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for scope in last.scope_metrics() {
            for metric in scope.metrics().filter(|m| m.name() == name) {
                match metric.data() {
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        out.extend(h.data_points().map(|p| Point {
                            attributes: attrs(p.attributes()),
                            sum: p.sum(),
                            count: p.count(),
                            bounds: p.bounds().collect(),
                            unit: metric.unit().to_owned(),
                        }))
                    }
                    AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                        out.extend(h.data_points().map(|p| Point {
                            attributes: attrs(p.attributes()),
                            sum: p.sum() as f64,
                            count: p.count(),
                            bounds: p.bounds().collect(),
                            unit: metric.unit().to_owned(),
                        }))
                    }
                    other => panic!("{name} is not a histogram: {other:?}"),
                }
            }
        }
        out
    }
}

/// A stack of [`config_for`] `base_url` whose GenAI and provider client spans go where
/// `telemetry` says.
async fn traced_stack(base_url: &str, telemetry: Telemetry) -> Stack {
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ClientSpanMiddleware::with_telemetry(telemetry.clone()))
        .build();
    Stack::from_config_with(config_for(base_url), client, telemetry)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug)]
struct Point {
    attributes: BTreeMap<String, String>,
    sum: f64,
    count: u64,
    bounds: Vec<f64>,
    unit: String,
}

fn attrs<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> BTreeMap<String, String> {
    kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

fn attr(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn strings(items: &[&str]) -> opentelemetry::Value {
    opentelemetry::Value::Array(opentelemetry::Array::String(
        items.iter().map(|s| (*s).to_owned().into()).collect(),
    ))
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "one '{name}' span expected in {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

fn chat_body() -> Value {
    json!({"model": "llamacpp/smollm2-135m", "messages": [{"role": "user", "content": "hi"}],
           "temperature": 0, "max_tokens": 8, "seed": 42, "stop": ["\n"], "top_p": 0.5})
}

async fn provider() -> MockServer {
    let server = fake_provider().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(json!({"max_tokens": 500})))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"code": 500, "message": "model crashed", "type": "server_error"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(sse(sse_body(&chat_chunks("smollm2-135m"))))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_reply("smollm2-135m", "Hi")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "all-minilm-l6-v2", "object": "list",
            "data": [{"embedding": [0.25, 0.5, 1.0], "index": 0, "object": "embedding"}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3}})))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn chat_span_follows_the_conventions_and_carries_the_usage() {
    let local = Local::new(false);
    let server = provider().await;
    let stack = local.stack(&server).await;
    let (trace, cx) = local.root();
    let answer = json_reply(
        stack
            .chat_completions(chat_body())
            .with_context(cx.clone())
            .await,
    );
    let spans = local.spans_in(trace);
    let genai = one(&spans, "chat smollm2-135m");
    assert_eq!(genai.span_kind, SpanKind::Client);
    assert_eq!(genai.parent_span_id, cx.span().span_context().span_id());
    assert_eq!(genai.status, Status::Unset);
    let port = i64::from(server.address().port());
    let expected: Vec<(&str, opentelemetry::Value)> = vec![
        (sc::GEN_AI_OPERATION_NAME, "chat".into()),
        (sc::GEN_AI_PROVIDER_NAME, "llamacpp".into()),
        (sc::GEN_AI_REQUEST_MODEL, "smollm2-135m".into()),
        (sc::LLAMA_STACK_MODEL_ID, "llamacpp/smollm2-135m".into()),
        (sc::LLAMA_STACK_PROVIDER_ID, "llamacpp".into()),
        (sc::SERVER_ADDRESS, "127.0.0.1".into()),
        (sc::SERVER_PORT, port.into()),
        (sc::GEN_AI_REQUEST_MAX_TOKENS, 8i64.into()),
        (sc::GEN_AI_REQUEST_TEMPERATURE, 0.0.into()),
        (sc::GEN_AI_REQUEST_TOP_P, 0.5.into()),
        (sc::GEN_AI_REQUEST_SEED, 42i64.into()),
        (sc::GEN_AI_REQUEST_STOP_SEQUENCES, strings(&["\n"])),
        (sc::GEN_AI_RESPONSE_MODEL, "smollm2-135m".into()),
        (sc::GEN_AI_RESPONSE_ID, "chatcmpl-abc".into()),
        (sc::GEN_AI_RESPONSE_FINISH_REASONS, strings(&["stop"])),
        (
            sc::GEN_AI_USAGE_INPUT_TOKENS,
            answer["usage"]["prompt_tokens"]
                .as_i64()
                .unwrap_or(-1)
                .into(),
        ),
        (
            sc::GEN_AI_USAGE_OUTPUT_TOKENS,
            answer["usage"]["completion_tokens"]
                .as_i64()
                .unwrap_or(-1)
                .into(),
        ),
    ];
    for (key, value) in expected {
        assert_eq!(attr(genai, key), Some(value), "{key}");
    }
    for absent in [
        sc::GEN_AI_REQUEST_STREAM,
        sc::GEN_AI_REQUEST_CHOICE_COUNT,
        sc::GEN_AI_INPUT_MESSAGES,
        sc::GEN_AI_OUTPUT_MESSAGES,
        sc::ERROR_TYPE,
    ] {
        assert_eq!(attr(genai, absent), None, "{absent}");
    }

    // The provider client span is the GenAI span's child, and its context reached the provider.
    let client = one(&spans, "POST");
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, genai.span_context.span_id());
    assert_eq!(
        attr(client, sc::HTTP_RESPONSE_STATUS_CODE),
        Some(200i64.into())
    );
    let sent = server.received_requests().await.unwrap_or_default();
    let traceparent = sent
        .iter()
        .find(|r| r.url.path() == "/v1/chat/completions")
        .and_then(|r| r.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        traceparent,
        Some(format!(
            "00-{}-{}-01",
            client.span_context.trace_id(),
            client.span_context.span_id()
        ))
    );
}

#[tokio::test]
async fn token_and_duration_histograms_match_the_usage() {
    let local = Local::new(false);
    let server = provider().await;
    let stack = local.stack(&server).await;
    let mut body = chat_body();
    body["model"] = json!("llamacpp/extra");
    for _ in 0..2 {
        json_reply(stack.chat_completions(body.clone()).await);
    }
    let tokens = local.histogram(sc::METRIC_CLIENT_TOKEN_USAGE);
    let sum_of = |kind: &str| -> (f64, u64) {
        tokens
            .iter()
            .filter(|p| {
                p.attributes.get(sc::GEN_AI_TOKEN_TYPE).map(String::as_str) == Some(kind)
                    && p.attributes
                        .get(sc::GEN_AI_REQUEST_MODEL)
                        .map(String::as_str)
                        == Some("extra")
            })
            .map(|p| (p.sum, p.count))
            .fold((0.0, 0), |(s, c), (ps, pc)| (s + ps, c + pc))
    };
    // chat_reply: prompt_tokens 5, completion_tokens 2; two calls.
    assert_eq!(sum_of("input"), (10.0, 2));
    assert_eq!(sum_of("output"), (4.0, 2));
    let point = &tokens[0];
    assert_eq!(point.unit, "{token}");
    assert_eq!(point.bounds, sc::TOKEN_USAGE_BUCKETS.to_vec());
    for key in [
        sc::GEN_AI_OPERATION_NAME,
        sc::GEN_AI_PROVIDER_NAME,
        sc::GEN_AI_RESPONSE_MODEL,
        sc::SERVER_ADDRESS,
        sc::SERVER_PORT,
    ] {
        assert!(point.attributes.contains_key(key), "{key}: {point:?}");
    }
    let durations = local.histogram(sc::METRIC_CLIENT_OPERATION_DURATION);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].count, 2);
    assert_eq!(durations[0].unit, "s");
    assert_eq!(durations[0].bounds, sc::CLIENT_DURATION_BUCKETS.to_vec());
    assert!(
        local
            .histogram(sc::METRIC_SERVER_TIME_TO_FIRST_TOKEN)
            .is_empty(),
        "not a stream"
    );
}

#[tokio::test]
async fn a_stream_makes_one_span_that_ends_with_the_stream() {
    let local = Local::new(true);
    let server = provider().await;
    let stack = local.stack(&server).await;
    let (trace, cx) = local.root();
    let mut body = chat_body();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let reply = stack.chat_completions(body).with_context(cx.clone()).await;
    let Ok(Reply::Stream(mut chunks)) = reply else {
        panic!("expected a stream, got {reply:?}");
    };
    let open = local.spans_in(trace);
    assert!(
        open.iter().all(|s| s.name != "chat smollm2-135m"),
        "the GenAI span stays open while the stream is"
    );
    let mut received = Vec::new();
    while let Some(chunk) = chunks.next().await {
        received.push(chunk.unwrap_or_else(|e| panic!("{e}")));
    }
    // Ended at the end of the stream, not when the stream is dropped.
    let spans = local.spans_in(trace);
    drop(chunks);
    let genai = one(&spans, "chat smollm2-135m");
    assert_eq!(genai.parent_span_id, cx.span().span_context().span_id());
    assert_eq!(attr(genai, sc::GEN_AI_REQUEST_STREAM), Some(true.into()));
    assert_eq!(
        attr(genai, sc::GEN_AI_RESPONSE_CHUNK_COUNT),
        Some((received.len() as i64).into())
    );
    assert_eq!(received.len(), 5);
    assert_eq!(
        attr(genai, sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(strings(&["stop"]))
    );
    assert_eq!(
        attr(genai, sc::GEN_AI_RESPONSE_ID),
        Some("chatcmpl-s".into())
    );
    assert_eq!(
        attr(genai, sc::GEN_AI_RESPONSE_MODEL),
        Some("smollm2-135m".into())
    );
    let usage = &received[4]["usage"];
    assert_eq!(
        attr(genai, sc::GEN_AI_USAGE_INPUT_TOKENS),
        usage["prompt_tokens"].as_i64().map(Into::into)
    );
    assert_eq!(
        attr(genai, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        usage["completion_tokens"].as_i64().map(Into::into)
    );
    match attr(genai, sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) {
        Some(opentelemetry::Value::F64(t)) => assert!(t >= 0.0),
        other => panic!("time to first chunk: {other:?}"),
    }
    // Content was opted in: the streamed text is gathered.
    let output: Value = match attr(genai, sc::GEN_AI_OUTPUT_MESSAGES) {
        Some(opentelemetry::Value::String(s)) => {
            serde_json::from_str(s.as_str()).unwrap_or_default()
        }
        other => panic!("output messages: {other:?}"),
    };
    assert_eq!(
        output,
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "Hello,\n\ndata: not an event"}], "finish_reason": "stop"}])
    );
    assert!(attr(genai, sc::GEN_AI_INPUT_MESSAGES).is_some());
    for name in [
        sc::METRIC_SERVER_TIME_TO_FIRST_TOKEN,
        sc::METRIC_CLIENT_TIME_TO_FIRST_CHUNK,
    ] {
        let points = local.histogram(name);
        assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 1, "{name}");
    }
    assert_eq!(
        local.histogram(sc::METRIC_SERVER_TIME_TO_FIRST_TOKEN)[0].bounds,
        sc::SERVER_TIME_TO_FIRST_TOKEN_BUCKETS.to_vec()
    );
}

#[tokio::test]
async fn a_dropped_stream_ends_its_span_with_what_was_received() {
    let local = Local::new(false);
    let server = provider().await;
    let stack = local.stack(&server).await;
    let (trace, cx) = local.root();
    let mut body = chat_body();
    body["stream"] = json!(true);
    let Ok(Reply::Stream(mut chunks)) = stack.chat_completions(body).with_context(cx).await else {
        panic!("expected a stream");
    };
    assert!(chunks.next().await.is_some_and(|c| c.is_ok()));
    drop(chunks);
    let spans = local.spans_in(trace);
    let genai = one(&spans, "chat smollm2-135m");
    assert_eq!(
        attr(genai, sc::GEN_AI_RESPONSE_CHUNK_COUNT),
        Some(1i64.into())
    );
    assert_eq!(genai.status, Status::Unset);
}

#[tokio::test]
async fn a_provider_error_makes_an_error_span_and_metric() {
    let local = Local::new(false);
    let server = provider().await;
    let stack = local.stack(&server).await;
    let (trace, cx) = local.root();
    let mut body = chat_body();
    body["max_tokens"] = json!(500);
    for stream in [false, true] {
        body["stream"] = json!(stream);
        let e = stack
            .chat_completions(body.clone())
            .with_context(cx.clone())
            .await
            .unwrap_err();
        assert_eq!(e.status, 500);
    }
    let spans = local.spans_in(trace);
    let genai: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "chat smollm2-135m")
        .collect();
    assert_eq!(genai.len(), 2);
    for span in genai {
        assert_eq!(attr(span, sc::ERROR_TYPE), Some("500".into()));
        match &span.status {
            Status::Error { description } => {
                assert!(description.contains("model crashed"), "{description}")
            }
            other => panic!("status {other:?}"),
        }
    }
    let clients: Vec<&SpanData> = spans.iter().filter(|s| s.name == "POST").collect();
    assert_eq!(clients.len(), 2);
    assert!(
        clients
            .iter()
            .all(|s| attr(s, sc::ERROR_TYPE) == Some("500".into()))
    );
    let durations = local.histogram(sc::METRIC_CLIENT_OPERATION_DURATION);
    let failed: u64 = durations
        .iter()
        .filter(|p| p.attributes.get(sc::ERROR_TYPE).map(String::as_str) == Some("500"))
        .map(|p| p.count)
        .sum();
    assert_eq!(failed, 2);
    assert!(local.histogram(sc::METRIC_CLIENT_TOKEN_USAGE).is_empty());
}

#[tokio::test]
async fn unreachable_provider_is_a_connection_error() {
    let local = Local::new(false);
    let port = closed_port().await;
    let stack = traced_stack(&format!("http://127.0.0.1:{port}"), local.telemetry.clone()).await;
    let (trace, cx) = local.root();
    let mut body = chat_body();
    body["model"] = json!("llamacpp/extra");
    let e = stack
        .chat_completions(body)
        .with_context(cx)
        .await
        .unwrap_err();
    assert_eq!(e.status, 502);
    let spans = local.spans_in(trace);
    assert_eq!(
        attr(one(&spans, "chat extra"), sc::ERROR_TYPE),
        Some("connection_error".into())
    );
    assert_eq!(
        attr(one(&spans, "POST"), sc::ERROR_TYPE),
        Some("connection_error".into())
    );
}

#[tokio::test]
async fn embeddings_and_completions_spans() {
    let local = Local::new(false);
    let server = provider().await;
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cmpl-1", "model": "smollm2-135m", "object": "text_completion",
            "choices": [{"text": "a", "index": 0, "finish_reason": "length"}, {"text": "b", "index": 1, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}})))
        .mount(&server)
        .await;
    let stack = local.stack(&server).await;
    let (trace, cx) = local.root();
    stack
        .embeddings(json!({"model": "llamacpp/all-minilm-l6-v2", "input": "x", "encoding_format": "base64"}))
        .with_context(cx.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    json_reply(
        stack
            .completions(json!({"model": "llamacpp/smollm2-135m", "prompt": "p", "n": 2}))
            .with_context(cx)
            .await,
    );
    let spans = local.spans_in(trace);
    let emb = one(&spans, "embeddings all-minilm-l6-v2");
    assert_eq!(
        attr(emb, sc::GEN_AI_OPERATION_NAME),
        Some("embeddings".into())
    );
    assert_eq!(
        attr(emb, sc::GEN_AI_REQUEST_ENCODING_FORMATS),
        Some(strings(&["float"])),
        "the format sent to the provider (the stack encodes base64 itself)"
    );
    assert_eq!(
        attr(emb, sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT),
        Some(3i64.into())
    );
    assert_eq!(attr(emb, sc::GEN_AI_USAGE_INPUT_TOKENS), Some(3i64.into()));
    assert_eq!(attr(emb, sc::GEN_AI_USAGE_OUTPUT_TOKENS), None);
    let completion = one(&spans, "text_completion smollm2-135m");
    assert_eq!(
        attr(completion, sc::GEN_AI_REQUEST_CHOICE_COUNT),
        Some(2i64.into())
    );
    assert_eq!(
        attr(completion, sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(strings(&["length", "stop"]))
    );
    assert_eq!(
        attr(completion, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        Some(4i64.into())
    );
}

#[tokio::test]
async fn requests_the_stack_refuses_itself_make_no_genai_span() {
    let local = Local::new(false);
    let server = provider().await;
    let stack = local.stack(&server).await;
    let (trace, cx) = local.root();
    let refused = [
        (json!({"model": "nope", "messages": []}), 400),
        (json!({"model": "llamacpp/smollm2-135m"}), 400),
        (
            json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
            404,
        ),
    ];
    for (body, status) in refused {
        let e = stack
            .chat_completions(body.clone())
            .with_context(cx.clone())
            .await
            .unwrap_err();
        assert_eq!(e.status, status, "{body}");
    }
    assert!(local.spans_in(trace).is_empty());
}

/// The global in-memory providers of this test process, installed once.
fn global_capture() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static GLOBAL: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        global::set_tracer_provider(provider.clone());
        global::set_text_map_propagator(TraceContextPropagator::new());
        (spans, provider)
    })
}

/// `stack` served on a free port, and an HTTP client of it.
async fn serve(stack: Stack) -> (crate::server::RunningServer, StackClient) {
    let running = crate::server::RunningServer::start(stack, "127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let http = StackClient::http(&running.base_url()).unwrap_or_else(|e| panic!("{e}"));
    (running, http)
}

/// Server mode in one trace: the caller's span -> HTTP server span -> GenAI span -> provider
/// client span, through the global providers (the stack installs nothing itself).
#[tokio::test]
async fn server_span_genai_span_and_client_span_form_one_trace() {
    use opentelemetry::trace::TracerProvider as _;
    let (exporter, provider_handle) = global_capture();
    let server = provider().await;
    let (running, http) = serve(traced_stack(&server.uri(), Telemetry::global()).await).await;
    let cx = Context::current_with_span(provider_handle.tracer("test").start("test root"));
    let trace = cx.span().span_context().trace_id();
    http.chat_completion(chat_body())
        .with_context(cx.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let chunks: Vec<_> = http
        .chat_completion_stream(chat_body())
        .collect()
        .with_context(cx.clone())
        .await;
    assert_eq!(chunks.len(), 5);
    running.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let spans: Vec<SpanData> = exporter
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let servers: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "POST /v1/chat/completions")
        .collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    for server_span in servers {
        assert_eq!(server_span.span_kind, SpanKind::Server);
        assert_eq!(
            server_span.parent_span_id,
            cx.span().span_context().span_id()
        );
        assert_eq!(
            attr(server_span, "http.route"),
            Some("/v1/chat/completions".into())
        );
        assert_eq!(
            attr(server_span, sc::HTTP_RESPONSE_STATUS_CODE),
            Some(200i64.into())
        );
        let genai: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.parent_span_id == server_span.span_context.span_id())
            .collect();
        assert_eq!(genai.len(), 1, "{genai:#?}");
        assert_eq!(genai[0].name, "chat smollm2-135m");
        let client: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.parent_span_id == genai[0].span_context.span_id())
            .collect();
        assert_eq!(client.len(), 1);
        assert_eq!(
            (client[0].name.as_ref(), client[0].span_kind.clone()),
            ("POST", SpanKind::Client)
        );
    }
}

/// A server whose stack records nothing (no exporter: the `stack` binary without OTLP settings)
/// still runs each request in its incoming trace context, and passes it on to the provider.
#[tokio::test]
async fn a_server_that_records_nothing_still_passes_the_callers_trace_on() {
    let quiet = Telemetry::with_sdk_providers(None, None);
    assert!(!quiet.records_spans() && !quiet.records_metrics());
    passes_the_callers_trace_on(quiet).await;
}

/// A stack that exports metrics but no spans: the server instrumentation runs, the provider
/// client makes no span of its own, and the caller's trace still reaches the provider.
#[tokio::test]
async fn a_server_that_records_metrics_only_still_passes_the_callers_trace_on() {
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let metrics_only = Telemetry::with_sdk_providers(None, Some(&meters));
    assert!(!metrics_only.records_spans() && metrics_only.records_metrics());
    passes_the_callers_trace_on(metrics_only).await;
}

/// Serves a stack with `telemetry`, calls it inside a span of the caller's, and checks that the
/// provider got exactly one chat request carrying the caller's trace id.
async fn passes_the_callers_trace_on(telemetry: Telemetry) {
    use opentelemetry::trace::TracerProvider as _;
    let (_, provider_handle) = global_capture();
    let server = provider().await;
    let (running, http) = serve(traced_stack(&server.uri(), telemetry).await).await;
    let cx = Context::current_with_span(provider_handle.tracer("test").start("test root"));
    let trace = cx.span().span_context().trace_id().to_string();
    http.chat_completion(chat_body())
        .with_context(cx.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    running.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let requests = server.received_requests().await.unwrap_or_default();
    let sent: Vec<String> = requests
        .iter()
        .filter(|r| r.url.path() == "/v1/chat/completions")
        .filter_map(|r| r.headers.get("traceparent"))
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].split('-').nth(1), Some(trace.as_str()), "{sent:?}");
}

/// `Telemetry::disabled()`: no span, no metric and no `traceparent`, even with the global
/// providers of the process installed and a span current.
#[tokio::test]
async fn disabled_telemetry_emits_nothing_and_propagates_nothing() {
    use opentelemetry::trace::TracerProvider as _;
    let (exporter, provider_handle) = global_capture();
    let server = provider().await;
    let stack = traced_stack(&server.uri(), Telemetry::disabled()).await;
    let root = provider_handle.tracer("test").start("test root");
    let cx = Context::current_with_span(root);
    let trace = cx.span().span_context().trace_id();
    json_reply(
        stack
            .chat_completions(chat_body())
            .with_context(cx.clone())
            .await,
    );
    let mut body = chat_body();
    body["stream"] = json!(true);
    match stack.chat_completions(body).with_context(cx.clone()).await {
        Ok(Reply::Stream(s)) => assert_eq!(s.collect::<Vec<_>>().await.len(), 5),
        other => panic!("expected a stream, got {other:?}"),
    }
    cx.span().end();
    let spans: Vec<String> = exporter
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace && s.name != "test root")
        .map(|s| s.name.to_string())
        .collect();
    assert!(spans.is_empty(), "{spans:?}");
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("traceparent").is_none()),
        "no trace context may leave a disabled stack"
    );
}

/// An MCP message carries its span's trace context in `params._meta` (MCP conventions); a
/// `tools/call` under an `execute_tool` span decorates that span instead of making its own.
#[tokio::test]
async fn mcp_messages_carry_trace_context_in_meta_and_tool_calls_decorate_execute_tool() {
    use super::mcp::Observer;
    let local = Local::new(false);
    let url = url::Url::parse("http://127.0.0.1:8765/mcp").unwrap();
    let observer = Observer::new(local.telemetry.clone(), &url, Context::new(), vec![]);
    let mut list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"progressToken": 1}}});
    let op = observer.begin(&list, Some("s1"));
    op.inject_into(&mut list);
    let traceparent = list["params"]["_meta"]["traceparent"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(traceparent.starts_with("00-"), "{list}");
    assert_eq!(
        list["params"]["_meta"]["progressToken"], 1,
        "other _meta is kept"
    );
    op.finish_with(&json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}));
    let mut note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let op = observer.begin(&note, Some("s1"));
    op.inject_into(&mut note);
    assert!(
        note.get("params").is_none(),
        "no params are made up (the key would depend on tracing): {note}"
    );
    op.finish_accepted();
    let mut progress =
        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}});
    observer
        .begin(&progress, Some("s1"))
        .inject_into(&mut progress);
    assert!(
        progress["params"]["_meta"]["traceparent"].is_string(),
        "{progress}"
    );
    let mut reply = json!({"jsonrpc": "2.0", "id": 3, "result": {}});
    observer.begin(&reply, None).inject_into(&mut reply);
    assert!(
        reply.get("params").is_none(),
        "answers carry no trace context: {reply}"
    );

    let tracer = local.telemetry.tracer();
    let tool_span = tracer.start("execute_tool get_weather");
    let tool_cx = Context::new().with_span(tool_span);
    observer.set_parent(tool_cx.clone(), true);
    let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "get_weather"}});
    observer
        .begin(&call, Some("s1"))
        .finish_with(&json!({"jsonrpc": "2.0", "id": 4, "result": {"isError": true, "content": [{"type": "text", "text": "boom"}]}}));
    tool_cx.span().end();
    let _ = local.tracer_provider.force_flush();
    let spans = local.spans.get_finished_spans().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert!(!names.contains(&"tools/call get_weather"), "{names:?}");
    let listing = spans
        .iter()
        .find(|s| s.name == "tools/list")
        .expect("tools/list span");
    assert_eq!(
        format!("{:032x}", listing.span_context.trace_id()),
        traceparent.split('-').nth(1).unwrap_or_default()
    );
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_weather")
        .expect("tool span");
    let attr = |s: &SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr(tool, "mcp.method.name").as_deref(), Some("tools/call"));
    assert_eq!(attr(tool, "mcp.session.id").as_deref(), Some("s1"));
    assert_eq!(attr(tool, "jsonrpc.request.id").as_deref(), Some("4"));
    assert_eq!(attr(tool, "error.type").as_deref(), Some("tool_error"));
}
