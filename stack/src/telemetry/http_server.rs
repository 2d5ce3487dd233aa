//! The HTTP server span and metrics, from the OpenTelemetry project's own tower instrumentation
//! (`opentelemetry-instrumentation-tower`, built for OpenTelemetry 0.33 and axum 0.8).
//!
//! Per request it starts a SERVER span named `{method} {route}` (`POST /v1/chat/completions`;
//! just the method for unknown paths) as a child of the incoming `traceparent` (read with the
//! global propagator), with `http.request.method`, `http.route`, `url.path`, `url.scheme`,
//! `user_agent.original` and `http.response.status_code` (status Error on 5xx), keeps it current
//! while the handler runs (so the GenAI span is its child), and records `http.server.request.duration`
//! (seconds, with `http.request.method`, `http.route`, `http.response.status_code`, ...),
//! `http.server.active_requests` and the body-size histograms. For a streamed answer the span
//! and the duration end with the response head; the GenAI span covers the stream.
//!
//! It is used instead of tower-http's `TraceLayer` + `tracing-opentelemetry` because it speaks the
//! OpenTelemetry API directly: no `tracing` subscriber is needed, so an in-process server (tests,
//! embedding) traces through whatever global providers the host installed.

use opentelemetry_instrumentation_tower::http::server::Layer;

/// The server instrumentation layer, bound to the global providers as they are now: build it
/// when the server starts (as [`crate::server::app`] does), after the host installed its
/// providers. Apply it with `Router::layer` after the routes so `http.route` is known.
pub fn layer() -> Layer {
    Layer::new()
}

/// What the layer does for a stack whose telemetry records nothing (no exporter: a no-op tracer
/// and meter), at a fraction of its cost: the context of the incoming `traceparent` (read with
/// the global propagator), for the handler to run in, so that the provider calls pass it on. The
/// layer's no-op server span would carry the same context, and its metrics would go nowhere.
/// [`crate::server::app`] runs each request in it from its one request middleware.
pub fn callers_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    })
}
