//! A test's own trace: its root span, and the `traceparent` its HTTP client sends.

use std::future::Future;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::{
    FutureExt, Span as _, SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceState, Tracer,
    WithContext,
};
use opentelemetry::{Context, ContextGuard, global};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use reqwest_middleware::{Middleware, Next};

/// The root span of one test. Everything the test runs inside [`TestSpan::run`] (or with
/// [`TestSpan::attach`]ed) has it as its current context, so the spans the service emits for
/// those calls belong to the test's trace: filter them with [`TestSpan::trace_id`].
///
/// When the global tracer provider records (library mode, after
/// [`InMemoryTelemetry::install`](super::InMemoryTelemetry::install)), this is a real span of the
/// tracer `harness`, exported when the guard is dropped or [`TestSpan::end`] is called. Otherwise
/// (a test process with no provider installed, e.g. server mode only) it is a sampled span context
/// with fresh random ids that is never exported: the server's spans still carry its trace id
/// and name its span id as their parent.
#[derive(Debug)]
pub struct TestSpan {
    cx: Context,
    trace_id: String,
    span_id: String,
    ended: bool,
}

/// Starts a [`TestSpan`] named `name`: always a new trace, whatever the current context is.
pub fn test_root_span(name: &str) -> TestSpan {
    let tracer = global::tracer("harness");
    let span = tracer.build_with_context(
        tracer
            .span_builder(name.to_owned())
            .with_kind(SpanKind::Internal),
        &Context::new(),
    );
    let recorded = span.span_context().clone();
    let (cx, span_context) = if recorded.is_valid() {
        (Context::new().with_span(span), recorded)
    } else {
        let ids = RandomIdGenerator::default();
        let synthetic = SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        (
            Context::new().with_remote_span_context(synthetic.clone()),
            synthetic,
        )
    };
    TestSpan {
        cx,
        trace_id: span_context.trace_id().to_string(),
        span_id: span_context.span_id().to_string(),
        ended: false,
    }
}

impl TestSpan {
    /// The trace id, 32 lowercase hex digits (as in [`CapturedSpan::trace_id`](super::CapturedSpan)).
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The span id, 16 lowercase hex digits: the parent id of the spans started directly in it.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// The context holding the span, for `opentelemetry::trace::FutureExt::with_context`.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// Wraps `future` so it is polled with this span's context as the current one.
    pub fn run<F: Future>(&self, future: F) -> WithContext<F> {
        future.with_context(self.cx.clone())
    }

    /// Makes this span's context current on this thread until the guard is dropped (for
    /// synchronous code; across `.await` use [`TestSpan::run`]).
    pub fn attach(&self) -> ContextGuard {
        self.cx.clone().attach()
    }

    /// The `traceparent` header value of this span's context.
    pub fn traceparent(&self) -> Option<String> {
        let mut headers = HeaderMap::new();
        inject_context(&self.cx, &mut headers);
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Ends the span now (dropping the guard does the same).
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if !self.ended {
            self.ended = true;
            self.cx.span().end();
        }
    }
}

impl Drop for TestSpan {
    fn drop(&mut self) {
        self.finish();
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Writes `traceparent` (and `tracestate` when not empty) for the current OpenTelemetry context
/// into `headers`; nothing when the current context has no valid span. Uses the W3C
/// trace-context format directly rather than the global propagator, so it also works in a test
/// process that installed no provider (server mode).
pub fn inject_traceparent(headers: &mut HeaderMap) {
    inject_context(&Context::current(), headers);
}

/// Writes `traceparent` (and `tracestate` when not empty) for `cx` into `headers`.
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// A `reqwest-middleware` layer for a test's HTTP client: adds the current context's
/// `traceparent` to every request (see [`inject_traceparent`]), so a server continues the test's
/// trace. Requests made inside [`TestSpan::run`] carry the test span's context.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceparentMiddleware;

#[async_trait::async_trait]
impl Middleware for TraceparentMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        inject_traceparent(req.headers_mut());
        next.run(req, extensions).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_follows_the_current_context() {
        let span = test_root_span("propagation test");
        let mut outside = HeaderMap::new();
        inject_traceparent(&mut outside);
        assert!(
            outside.get("traceparent").is_none(),
            "no current span on a fresh test thread"
        );
        let _guard = span.attach();
        let mut headers = HeaderMap::new();
        inject_traceparent(&mut headers);
        let value = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            value,
            format!("00-{}-{}-01", span.trace_id(), span.span_id())
        );
        assert_eq!(span.traceparent(), Some(value));
    }

    #[tokio::test]
    async fn middleware_sends_the_test_span_as_traceparent() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(TraceparentMiddleware)
            .build();
        let span = test_root_span("middleware test");
        let status = span
            .run(client.get(format!("{}/v1/models", server.uri())).send())
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200));
        let received = server.received_requests().await.unwrap_or_default();
        let sent = received
            .first()
            .and_then(|r| r.headers.get("traceparent"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(sent, span.traceparent());
        assert!(sent.is_some_and(|v| v.contains(span.trace_id())));
    }
}
