//! Telemetry capture for tests: the OpenTelemetry traces and metrics that the service under test
//! emits, asserted with one API whether the service runs in the test process or as a server.
//!
//! # Two backends, one API
//!
//! - **Library mode** (the service is linked into the test process):
//!   [`InMemoryTelemetry::install`] builds an SDK tracer provider with an in-memory span exporter
//!   (simple processor: a span is visible as soon as it ends) and an SDK meter provider with an
//!   in-memory metric exporter behind a periodic reader that the capture flushes on demand. It
//!   sets them, and the W3C trace-context propagator, as the `opentelemetry::global` providers.
//!   Once per process: every test in the process shares them.
//! - **Server mode** (the service is a subprocess): [`OtlpReceiver::start`] serves OTLP/HTTP
//!   (`POST /v1/traces`, `POST /v1/metrics`; protobuf or JSON, optionally gzip) on
//!   `127.0.0.1:<random port>`; pass [`OtlpReceiver::env`] to the server's environment so its
//!   standard OTLP exporter sends there, with short batch and export intervals.
//! - **Server mode, one server per run** (see [`crate::testkit::server`]): with
//!   [`ServerSpec::telemetry`](crate::testkit::ServerSpec::telemetry) set, the server's
//!   supervisor process runs the receiver, so it lives exactly as long as the server, and every
//!   test process of the run reads it over its JSON read API (`GET /harness/v1/spans`,
//!   `/harness/v1/metrics`, `/harness/v1/status`, same port) with
//!   [`Capture::remote`]`(`[`ServerHandle::telemetry_url`](crate::testkit::ServerHandle::telemetry_url)`)`.
//!
//! [`Capture`] wraps any of them and gives tests the same calls: [`Capture::spans`],
//! [`Capture::wait_for_spans`], [`Capture::wait_quiet`], [`Capture::wait_quiet_in_trace`],
//! [`Capture::spans_in_trace`], [`Capture::metrics_baseline`] and
//! [`Capture::metrics_delta_since`], over the backend-neutral [`model`] types.
//!
//! # Isolating a test: its own trace
//!
//! Tests of one process share the capture, so each test filters by trace:
//! [`test_root_span`] (or [`Capture::test_root_span`]) starts a root span and hands back its trace
//! id and an `opentelemetry::Context`. Run the test's client calls inside
//! [`TestSpan::run`] (`opentelemetry::trace::FutureExt::with_context`): in library mode the
//! service's spans become children of the test span through the current context; over HTTP the
//! test's client sends the context as `traceparent` ([`inject_traceparent`], or the
//! [`TraceparentMiddleware`] on a `reqwest-middleware` client) and the server continues the trace.
//!
//! # What the service must do
//!
//! The harness only provides providers: it installs no `tracing` subscriber and no
//! `tracing-opentelemetry` layer. The service decides how it instruments itself, but it must emit
//! through `opentelemetry::global` (`global::tracer(..)`, `global::meter(..)`, or a
//! `tracing-opentelemetry` layer built from `global::tracer_provider()`), and in library mode:
//!
//! - fetch its tracers and meters **after** [`InMemoryTelemetry::install`] (a tracer taken from
//!   the global provider earlier stays a no-op one);
//! - **not** replace the global providers itself (Rust's `global::set_tracer_provider` can be
//!   called any number of times, unlike Python's set-once providers: the last call wins);
//! - **not** shut the providers down: shutting down clears the in-memory span exporter.
//!
//! Metrics cannot be filtered by trace: tests that compare metric deltas filter by attributes
//! (model, route, ...) and should not run concurrently with tests that record the same series.

#![warn(missing_docs)]

mod capture;
mod convert;
mod in_memory;
pub mod model;
mod otlp_receiver;
#[cfg(test)]
pub(crate) mod otlp_tests;
mod remote;
#[cfg(test)]
mod remote_tests;
mod store;
mod trace_context;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use capture::Capture;
pub use in_memory::InMemoryTelemetry;
pub use model::{
    AttrValue, Attributes, CapturedEvent, CapturedMetric, CapturedSpan, HistogramPoint, MetricData,
    MetricsSnapshot, NumberPoint, SpanKind, SpanStatus,
};
pub use otlp_receiver::{
    CONFLICTING_ENV, METRIC_EXPORT_INTERVAL, METRICS_PATH, OtlpReceiver, RECEIVER_ID_HEADER,
    ReceiverStatus, RemoteMetrics, SPAN_SCHEDULE_DELAY, SPANS_PATH, SPANS_TOTAL_HEADER,
    STATUS_PATH,
};
pub use remote::RemoteCapture;
pub use trace_context::{
    TestSpan, TraceparentMiddleware, inject_context, inject_traceparent, test_root_span,
};

/// What can go wrong while capturing telemetry or waiting for it.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP receiver could not bind its loopback port.
    #[error("cannot bind the OTLP receiver on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The OTLP receiver's thread or runtime could not be started.
    #[error("cannot start the OTLP receiver: {0}")]
    Start(#[source] std::io::Error),
    /// The expected spans did not arrive in time.
    #[error(
        "timed out after {timeout:?} waiting for spans{what}; {count} span(s) seen so far: {seen}{notes}"
    )]
    SpansTimeout {
        /// How long the wait lasted.
        timeout: Duration,
        /// What was waited for (empty, or `" in trace ID"`).
        what: String,
        /// How many spans were seen.
        count: usize,
        /// The names of the spans seen, with counts.
        seen: String,
        /// Anything else worth knowing (e.g. requests the receiver could not decode).
        notes: String,
    },
    /// Spans kept arriving: no quiet period of the requested length within the timeout.
    #[error(
        "spans kept arriving: no {quiet:?} without a new span within {timeout:?} ({count} span(s) seen)"
    )]
    NotQuiet {
        /// The quiet period asked for.
        quiet: Duration,
        /// How long the wait lasted.
        timeout: Duration,
        /// How many spans were seen.
        count: usize,
    },
    /// A remote receiver ([`Capture::Remote`]) could not be read, or its URL is not usable.
    #[error("telemetry receiver at {url}: {message}")]
    Remote {
        /// The receiver's base URL, as given.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Flushing the in-memory providers failed.
    #[error("flushing the in-memory OpenTelemetry providers failed: {0}")]
    Flush(String),
    /// No metrics export collected after the request arrived within the wait.
    #[error(
        "no metrics export collected after the request arrived within {waited:?} ({exports} metrics export(s) received so far); \
         is the server exporting metrics to the receiver (OTEL_METRIC_EXPORT_INTERVAL)?{notes}"
    )]
    MetricsTimeout {
        /// How long the wait lasted.
        waited: Duration,
        /// How many metric exports the receiver had received.
        exports: u64,
        /// Anything else worth knowing (e.g. requests the receiver could not decode).
        notes: String,
    },
}

/// Now, in nanoseconds since the Unix epoch (the unit of OTLP timestamps).
pub(crate) fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
