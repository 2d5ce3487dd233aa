//! Library mode: in-memory SDK exporters installed as the process's global providers.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::global;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue as ProtoKeyValue;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

use super::TelemetryError;
use super::convert;
use super::model::{Attributes, CapturedSpan, MetricsSnapshot};
use super::store::{MetricStore, lock};

/// The periodic reader's own interval. Captures flush on demand, so this only bounds how many
/// unread exports pile up in the exporter between two reads.
const PERIODIC_INTERVAL: Duration = Duration::from_secs(60);

static INSTALLED: OnceLock<InMemoryTelemetry> = OnceLock::new();

/// The library-mode backend: SDK providers with in-memory exporters, installed as the global
/// OpenTelemetry providers of the process (see the [module docs](super) for what the service
/// under test must do). Cheap to clone; every clone reads the same data.
#[derive(Clone)]
pub struct InMemoryTelemetry {
    inner: Arc<Inner>,
}

struct Inner {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    span_exporter: InMemorySpanExporter,
    metric_exporter: InMemoryMetricExporter,
    resource: Attributes,
    /// The spans converted so far, in the order they ended.
    spans: Mutex<Vec<CapturedSpan>>,
    metrics: Mutex<MetricStore>,
}

impl std::fmt::Debug for InMemoryTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryTelemetry")
            .field("resource", &self.inner.resource)
            .finish_non_exhaustive()
    }
}

impl InMemoryTelemetry {
    /// Installs the in-memory providers as the global tracer and meter providers, and the W3C
    /// trace-context propagator as the global propagator, the first time it is called in the
    /// process; later calls return the same capture. The providers live as long as the process
    /// and are never shut down (shutting down would clear the in-memory span exporter).
    ///
    /// The resource comes from the SDK's standard detectors (`OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`, SDK attributes).
    pub fn install() -> InMemoryTelemetry {
        INSTALLED.get_or_init(Self::build_and_install).clone()
    }

    fn build_and_install() -> InMemoryTelemetry {
        let resource = Resource::builder().build();
        let span_exporter = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(span_exporter.clone())
            .with_resource(resource.clone())
            .build();
        // Cumulative (the default): every flush carries the totals, so an export read late or
        // lost between a read and a reset is made good by the next one.
        let metric_exporter = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(metric_exporter.clone())
                    .with_interval(PERIODIC_INTERVAL)
                    .build(),
            )
            .with_resource(resource.clone())
            .build();
        global::set_tracer_provider(tracer_provider.clone());
        global::set_meter_provider(meter_provider.clone());
        global::set_text_map_propagator(TraceContextPropagator::new());
        let resource_kvs: Vec<ProtoKeyValue> = resource.iter().map(ProtoKeyValue::from).collect();
        InMemoryTelemetry {
            inner: Arc::new(Inner {
                tracer_provider,
                meter_provider,
                span_exporter,
                metric_exporter,
                resource: convert::attributes(&resource_kvs),
                spans: Mutex::new(Vec::new()),
                metrics: Mutex::new(MetricStore::default()),
            }),
        }
    }

    /// The tracer provider installed as the global one (for a service that wants it explicitly).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.inner.tracer_provider
    }

    /// The meter provider installed as the global one (for a service that wants it explicitly).
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.inner.meter_provider
    }

    /// Every span that ended since the installation, in the order they ended.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.with_spans(|spans| spans.to_vec())
    }

    /// Runs `f` over the spans ended so far, after converting the ones the exporter got since
    /// the last call.
    pub(crate) fn with_spans<T>(&self, f: impl FnOnce(&[CapturedSpan]) -> T) -> T {
        let mut spans = lock(&self.inner.spans);
        // The exporter only appends (it is never reset: it is cleared only by a shutdown, which
        // never happens), so the spans past what was already converted are the new ones.
        if let Ok(finished) = self.inner.span_exporter.get_finished_spans() {
            let known = spans.len();
            spans.extend(finished.into_iter().skip(known).map(|data| {
                let scope_name = data.instrumentation_scope.name().to_owned();
                let scope_version = data
                    .instrumentation_scope
                    .version()
                    .unwrap_or_default()
                    .to_owned();
                let proto = ProtoSpan::from(data);
                convert::span(&proto, &self.inner.resource, &scope_name, &scope_version)
            }));
        }
        f(&spans)
    }

    /// Forces the meter provider to export, files what the exporter got, and returns the totals
    /// per series since the installation.
    pub fn flush_metrics(&self) -> Result<MetricsSnapshot, TelemetryError> {
        // Holding the store's lock serializes flushes, reads and resets of the exporter.
        let mut store = lock(&self.inner.metrics);
        self.inner
            .meter_provider
            .force_flush()
            .map_err(|e| TelemetryError::Flush(e.to_string()))?;
        let batches = self
            .inner
            .metric_exporter
            .get_finished_metrics()
            .map_err(|e| TelemetryError::Flush(e.to_string()))?;
        self.inner.metric_exporter.reset();
        for batch in &batches {
            store.apply(convert::metrics_request(
                &ExportMetricsServiceRequest::from(batch),
            ));
        }
        Ok(store.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::KeyValue;
    use opentelemetry::trace::{FutureExt, Span, Status, TraceContextExt, Tracer};

    use super::super::{Capture, SpanKind, SpanStatus, test_root_span};
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn spans_are_captured_with_parents_attributes_and_status() {
        let capture = Capture::in_memory();
        let root = capture.test_root_span("in-memory spans test");
        let trace_id = root.trace_id().to_owned();
        async {
            let tracer = global::tracer("stack-under-test");
            let mut outer = tracer
                .span_builder("chat test-model")
                .with_kind(opentelemetry::trace::SpanKind::Client)
                .with_attributes([
                    KeyValue::new("gen_ai.operation.name", "chat"),
                    KeyValue::new("gen_ai.usage.input_tokens", 12_i64),
                    KeyValue::new("gen_ai.request.temperature", 0.5),
                    KeyValue::new(
                        "gen_ai.response.finish_reasons",
                        opentelemetry::Value::Array(opentelemetry::Array::String(vec![
                            "stop".into(),
                        ])),
                    ),
                ])
                .start(&tracer);
            outer.add_event("first chunk", vec![KeyValue::new("index", 0_i64)]);
            let cx = opentelemetry::Context::current_with_span(outer);
            let mut inner = tracer.start_with_context("POST /chat", &cx);
            inner.set_status(Status::error("upstream 500"));
            inner.end();
            cx.span().end();
        }
        .with_context(root.context())
        .await;
        drop(root);

        let spans = capture
            .wait_for_trace(&trace_id, |spans| spans.len() >= 3, WAIT)
            .await
            .expect("spans of the test trace");
        let by_name = |name: &str| {
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
        };
        let root_span = by_name("in-memory spans test");
        let chat = by_name("chat test-model");
        let post = by_name("POST /chat");
        assert!(root_span.is_root());
        assert!(chat.is_child_of(root_span));
        assert!(post.is_child_of(chat));
        assert_eq!(chat.kind, SpanKind::Client);
        assert_eq!(chat.str_attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(chat.int_attr("gen_ai.usage.input_tokens"), Some(12));
        assert_eq!(chat.f64_attr("gen_ai.request.temperature"), Some(0.5));
        assert_eq!(
            chat.string_array_attr("gen_ai.response.finish_reasons"),
            Some(&["stop".to_owned()][..])
        );
        assert_eq!(chat.events_named("first chunk").count(), 1);
        assert_eq!(chat.scope_name, "stack-under-test");
        assert!(chat.resource_attr("service.name").is_some());
        assert_eq!(post.status, SpanStatus::Error("upstream 500".into()));
        assert!(spans.iter().all(|s| s.trace_id == trace_id));
    }

    #[tokio::test]
    async fn traces_keep_concurrent_tests_apart() {
        let capture = Capture::in_memory();
        let (a, b) = (test_root_span("test a"), test_root_span("test b"));
        assert_ne!(a.trace_id(), b.trace_id());
        let work = |n: usize| async move {
            let tracer = global::tracer("stack-under-test");
            for _ in 0..n {
                tracer.start("unit of work").end();
            }
        };
        tokio::join!(a.run(work(2)), b.run(work(3)));
        for (test, expected) in [(&a, 2), (&b, 3)] {
            let spans = capture.spans_in_trace(test.trace_id());
            assert_eq!(spans.len(), expected, "{spans:#?}");
            assert!(
                spans
                    .iter()
                    .all(|s| s.parent_span_id.as_deref() == Some(test.span_id())),
                "{spans:#?}"
            );
        }
    }

    #[tokio::test]
    async fn timeout_lists_the_spans_seen() {
        let capture = Capture::in_memory();
        let root = capture.test_root_span("timeout test");
        root.run(async { global::tracer("t").start("only span").end() })
            .await;
        let err = capture
            .wait_for_trace(root.trace_id(), |s| s.len() >= 2, Duration::from_millis(60))
            .await
            .expect_err("only one span ended in the trace");
        let message = err.to_string();
        assert!(message.contains("only span"), "{message}");
        assert!(message.contains("in trace"), "{message}");
    }

    #[tokio::test]
    async fn metric_deltas_against_a_baseline() {
        let capture = Capture::in_memory();
        let meter = global::meter("stack-under-test");
        let tokens = meter
            .u64_histogram("test.in_memory.token.usage")
            .with_unit("{token}")
            .with_boundaries(vec![1.0, 4.0, 16.0, 64.0])
            .build();
        let requests = meter.u64_counter("test.in_memory.requests").build();
        tokens.record(100, &[KeyValue::new("gen_ai.token.type", "input")]);
        requests.add(1, &[KeyValue::new("route", "/v1/chat")]);

        let baseline = capture.metrics_baseline().await.expect("baseline");
        assert_eq!(
            baseline.histogram_sum(
                "test.in_memory.token.usage",
                &[("gen_ai.token.type", "input")]
            ),
            100.0
        );
        tokens.record(12, &[KeyValue::new("gen_ai.token.type", "input")]);
        tokens.record(3, &[KeyValue::new("gen_ai.token.type", "input")]);
        tokens.record(7, &[KeyValue::new("gen_ai.token.type", "output")]);
        requests.add(2, &[KeyValue::new("route", "/v1/chat")]);

        let delta = capture
            .metrics_delta_since(&baseline, WAIT)
            .await
            .expect("delta");
        let input = [("gen_ai.token.type", "input")];
        assert_eq!(
            delta.histogram_sum("test.in_memory.token.usage", &input),
            15.0
        );
        assert_eq!(
            delta.histogram_count("test.in_memory.token.usage", &input),
            2
        );
        assert_eq!(
            delta.histogram_sum(
                "test.in_memory.token.usage",
                &[("gen_ai.token.type", "output")]
            ),
            7.0
        );
        assert_eq!(
            delta.counter_value("test.in_memory.requests", &[("route", "/v1/chat")]),
            2.0
        );
        let metric = delta
            .metric("test.in_memory.token.usage")
            .expect("histogram");
        assert_eq!(metric.unit, "{token}");
        let point = metric.histogram_points(&input).next().expect("input point");
        assert_eq!(point.bucket_bounds, vec![1.0, 4.0, 16.0, 64.0]);
        assert_eq!(point.bucket_counts, vec![0, 1, 1, 0, 0]);

        let again = capture
            .metrics_delta_since(&capture.metrics_baseline().await.expect("baseline"), WAIT)
            .await
            .expect("delta");
        assert!(
            again.metric("test.in_memory.token.usage").is_none(),
            "{again:#?}"
        );
    }

    #[tokio::test]
    async fn wait_quiet_returns_once_spans_stop() {
        let capture = Capture::in_memory();
        let root = capture.test_root_span("quiet test");
        root.run(async { global::tracer("t").start("quiet span").end() })
            .await;
        let quiet = Duration::from_millis(50);
        let start = std::time::Instant::now();
        let spans = capture.wait_quiet(quiet, WAIT).await.expect("quiet");
        assert!(start.elapsed() >= quiet, "returned before a quiet period");
        assert!(spans.iter().any(|s| s.trace_id == root.trace_id()));
    }
}
