//! The OTLP receiver against the real `opentelemetry-otlp` HTTP exporter.
//!
//! Plain `#[test]`s: the exporter's default HTTP client is reqwest's blocking one, which must not
//! run inside a tokio runtime, so the exporting happens on the test thread and only the waits run
//! in a runtime. The providers are local (not the global ones, which the in-memory tests own).

use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{
    Span, SpanKind as OtelSpanKind, Status, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::Protocol;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::{Capture, SpanKind, SpanStatus};

#[path = "../../tests/support/otlp.rs"]
mod exporters;
pub(crate) use exporters::{WAIT, meter_provider, runtime, tracer_provider};

/// POSTs a body that is not OTLP protobuf to `path` of the receiver at `endpoint`; the status
/// it got back.
pub(crate) fn post_undecodable(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    path: &str,
) -> Option<u16> {
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{endpoint}{path}"))
            .header("content-type", "application/x-protobuf")
            .body(vec![0xff_u8, 0xff, 0xff])
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
    })
}

/// Through `capture` (reading the receiver at `endpoint`), with a delta-temporality exporter:
/// the baseline holds what was exported before it, and the delta adds up the exports after it.
///
/// Every export is a flush by hand (the periodic reader's interval is an hour), the last one
/// once the delta has started waiting: a delta exporter sends nothing while nothing changed, so a
/// periodic export of the last measurement just before the wait began would leave the wait
/// nothing to see (as the documentation of `metrics_delta_since` says). With a 100 ms interval
/// that happened whenever the test thread was held up that long, on a loaded machine. For the
/// captures that read a receiver (`Otlp`, `Remote`), whose wait polls: the in-memory capture
/// answers at once.
pub(crate) fn check_delta_temporality_deltas(capture: &Capture, endpoint: &str) {
    let rt = runtime();
    let meters =
        exporters::meter_provider_every(endpoint, Temporality::Delta, Duration::from_secs(3600));
    let counter = meters
        .meter("delta-test")
        .u64_counter("test.delta.requests")
        .build();
    let route = [KeyValue::new("route", "/v1/models")];
    counter.add(2, &route);
    meters.force_flush().expect("flush");
    let baseline = rt.block_on(capture.metrics_baseline()).expect("baseline");
    assert_eq!(
        baseline.counter_value("test.delta.requests", &[("route", "/v1/models")]),
        2.0
    );
    counter.add(1, &route);
    meters.force_flush().expect("flush");
    counter.add(4, &route);
    // The exporter's blocking client must not run inside the runtime: the last flush runs on a
    // thread of its own, told to go once the wait has taken its start time.
    let (go, gone) = std::sync::mpsc::channel::<()>();
    let flusher = {
        let meters = meters.clone();
        std::thread::spawn(move || {
            if gone.recv().is_ok() {
                meters.force_flush().expect("flush");
            }
        })
    };
    let delta = rt
        .block_on(async {
            let mut wait = std::pin::pin!(capture.metrics_delta_since(&baseline, WAIT));
            // The first poll takes the call's time and finds no export after it.
            assert!(futures::poll!(wait.as_mut()).is_pending());
            go.send(()).expect("the flusher waits");
            wait.await
        })
        .expect("delta");
    flusher.join().expect("the flusher thread");
    assert_eq!(
        delta.counter_value("test.delta.requests", &[("route", "/v1/models")]),
        5.0
    );
    meters.shutdown().expect("meter shutdown");
}

/// Emits a small trace: root (server) -> "chat m" (client, error) with attributes and an event.
pub(crate) fn emit_trace(provider: &SdkTracerProvider) -> String {
    let tracer = provider.tracer("otlp-test");
    let root = tracer
        .span_builder("POST /v1/chat/completions")
        .with_kind(OtelSpanKind::Server)
        .start(&tracer);
    let trace_id = root.span_context().trace_id().to_string();
    let cx = Context::new().with_span(root);
    let mut chat = tracer
        .span_builder("chat m")
        .with_kind(OtelSpanKind::Client)
        .with_attributes([
            KeyValue::new("gen_ai.request.model", "m"),
            KeyValue::new("gen_ai.usage.output_tokens", 42_i64),
            KeyValue::new("gen_ai.request.temperature", 0.25),
            KeyValue::new("gen_ai.request.stream", true),
            KeyValue::new(
                "gen_ai.response.finish_reasons",
                opentelemetry::Value::Array(opentelemetry::Array::String(vec![
                    "stop".into(),
                    "length".into(),
                ])),
            ),
        ])
        .start_with_context(&tracer, &cx);
    chat.add_event("gen_ai.first_chunk", vec![KeyValue::new("index", 0_i64)]);
    chat.set_status(Status::error("provider returned 500"));
    chat.end();
    cx.span().set_status(Status::Ok);
    cx.span().end();
    trace_id
}

#[test]
fn protobuf_spans_and_cumulative_metrics_arrive_decoded() {
    let rt = runtime();
    let capture = Capture::otlp().expect("receiver");
    let receiver = capture.receiver().expect("otlp capture").clone();
    let env = receiver.env();
    assert!(env.contains(&("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint())));
    assert!(env.contains(&("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into())));

    let tracers = tracer_provider(&receiver.endpoint(), Protocol::HttpBinary, false);
    let trace_id = emit_trace(&tracers);
    tracers.force_flush().expect("span export");

    let spans = rt
        .block_on(capture.wait_for_trace(&trace_id, |s| s.len() >= 2, WAIT))
        .expect("both spans");
    let root = spans
        .iter()
        .find(|s| s.name == "POST /v1/chat/completions")
        .expect("root span");
    let chat = spans
        .iter()
        .find(|s| s.name == "chat m")
        .expect("chat span");
    assert!(root.is_root());
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.status, SpanStatus::Ok);
    assert!(chat.is_child_of(root));
    assert_eq!(chat.kind, SpanKind::Client);
    assert_eq!(
        chat.status,
        SpanStatus::Error("provider returned 500".into())
    );
    assert_eq!(chat.str_attr("gen_ai.request.model"), Some("m"));
    assert_eq!(chat.int_attr("gen_ai.usage.output_tokens"), Some(42));
    assert_eq!(chat.f64_attr("gen_ai.request.temperature"), Some(0.25));
    assert_eq!(chat.bool_attr("gen_ai.request.stream"), Some(true));
    assert_eq!(
        chat.string_array_attr("gen_ai.response.finish_reasons"),
        Some(&["stop".to_owned(), "length".to_owned()][..])
    );
    assert_eq!(chat.events_named("gen_ai.first_chunk").count(), 1);
    assert_eq!(chat.scope_name, "otlp-test");
    assert_eq!(
        chat.resource_attr("service.name").map(ToString::to_string),
        Some("otlp-receiver-test".to_owned())
    );
    assert!(chat.end_unix_nano >= chat.start_unix_nano && chat.start_unix_nano > 0);

    let meters = meter_provider(&receiver.endpoint(), Temporality::Cumulative);
    let meter = meters.meter("otlp-test");
    let usage = meter
        .u64_histogram("gen_ai.client.token.usage")
        .with_unit("{token}")
        .with_boundaries(vec![1.0, 4.0, 16.0, 64.0, 256.0])
        .build();
    let requests = meter.u64_counter("test.requests").build();
    usage.record(10, &[KeyValue::new("gen_ai.token.type", "input")]);
    requests.add(1, &[]);
    let baseline = rt.block_on(capture.metrics_baseline()).expect("baseline");
    usage.record(20, &[KeyValue::new("gen_ai.token.type", "input")]);
    usage.record(5, &[KeyValue::new("gen_ai.token.type", "output")]);
    requests.add(3, &[]);
    let delta = rt
        .block_on(capture.metrics_delta_since(&baseline, WAIT))
        .expect("delta");
    let input = [("gen_ai.token.type", "input")];
    assert_eq!(
        delta.histogram_sum("gen_ai.client.token.usage", &input),
        20.0,
        "{delta:#?}"
    );
    assert_eq!(
        delta.histogram_count("gen_ai.client.token.usage", &input),
        1
    );
    assert_eq!(
        delta.histogram_sum(
            "gen_ai.client.token.usage",
            &[("gen_ai.token.type", "output")]
        ),
        5.0
    );
    assert_eq!(delta.counter_value("test.requests", &[]), 3.0);
    let metric = delta
        .metric("gen_ai.client.token.usage")
        .expect("histogram");
    assert_eq!(metric.unit, "{token}");
    let point = metric.histogram_points(&input).next().expect("input point");
    assert_eq!(point.bucket_bounds, vec![1.0, 4.0, 16.0, 64.0, 256.0]);
    assert_eq!(point.bucket_counts, vec![0, 0, 0, 1, 0, 0]);
    // Everything since the receiver started: the baseline's 10 plus the 20.
    assert_eq!(
        receiver
            .metrics()
            .histogram_sum("gen_ai.client.token.usage", &input),
        30.0
    );
    assert!(receiver.errors().is_empty(), "{:?}", receiver.errors());

    meters.shutdown().expect("meter shutdown");
    tracers.shutdown().expect("tracer shutdown");
}

#[test]
fn delta_temporality_gives_the_same_deltas() {
    let capture = Capture::otlp().expect("receiver");
    let endpoint = capture.receiver().expect("otlp capture").endpoint();
    check_delta_temporality_deltas(&capture, &endpoint);
}

#[test]
fn json_and_gzip_bodies_are_accepted() {
    let rt = runtime();
    let capture = Capture::otlp().expect("receiver");
    let endpoint = capture.receiver().expect("otlp capture").endpoint();
    let json = tracer_provider(&endpoint, Protocol::HttpJson, false);
    let gzip = tracer_provider(&endpoint, Protocol::HttpBinary, true);
    let json_trace = emit_trace(&json);
    let gzip_trace = emit_trace(&gzip);
    json.force_flush().expect("json export");
    gzip.force_flush().expect("gzip export");
    for trace_id in [json_trace, gzip_trace] {
        let spans = rt
            .block_on(capture.wait_for_trace(&trace_id, |s| s.len() >= 2, WAIT))
            .expect("both spans");
        let chat = spans
            .iter()
            .find(|s| s.name == "chat m")
            .expect("chat span");
        assert_eq!(chat.int_attr("gen_ai.usage.output_tokens"), Some(42));
        assert!(spans.iter().any(|s| chat.is_child_of(s)));
    }
    json.shutdown().expect("shutdown");
    gzip.shutdown().expect("shutdown");
}

#[test]
fn undecodable_bodies_are_rejected_and_reported() {
    let rt = runtime();
    let capture = Capture::otlp().expect("receiver");
    let receiver = capture.receiver().expect("otlp capture").clone();
    assert_eq!(
        post_undecodable(&rt, &receiver.endpoint(), "/v1/traces"),
        Some(400)
    );
    let err = rt
        .block_on(capture.wait_for_spans(|s| !s.is_empty(), Duration::from_millis(50)))
        .expect_err("no span arrived");
    let message = err.to_string();
    assert!(message.contains("undecodable"), "{message}");
    assert!(message.contains("seen so far: none"), "{message}");
    let missing = rt
        .block_on(capture.metrics_delta_since(&Default::default(), Duration::from_millis(50)))
        .expect_err("no metrics export");
    assert!(
        missing.to_string().contains("0 metrics export(s)"),
        "{missing}"
    );
}

#[test]
fn receiver_stops_when_dropped() {
    let receiver = Capture::otlp().expect("receiver");
    let addr = receiver.receiver().expect("otlp capture").addr();
    drop(receiver);
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "receiver still listening"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
