//! The provider HTTP client span: a `reqwest-middleware` middleware that starts a CLIENT span per
//! provider request (child of the current context, the GenAI span) and injects its context into
//! the request as `traceparent` through the global propagator.
//!
//! Why not `reqwest-tracing`: its latest release (0.7.1) supports OpenTelemetry only up to 0.32
//! (feature `opentelemetry_0_32`), so with the stack's 0.33 it would inject the context of another
//! OpenTelemetry crate instance (nothing), and its spans would need a `tracing` subscriber with a
//! `tracing-opentelemetry` layer, which a library-mode host does not have.
//!
//! Install it **before** the recorder (`ClientBuilder::new(..).with(ClientSpanMiddleware)
//! .with(recorder)`): replayed calls then still get a client span, and the `traceparent` header
//! reaches the recorder, which leaves headers out of its request key (and out of recordings), so
//! it cannot change a request hash. For a streamed answer the span ends when the response head
//! arrives; the GenAI span covers the body.

use opentelemetry::global;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderInjector;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use super::semconv as sc;
use super::sink::Telemetry;
use crate::providers::ProviderError;

/// Starts a CLIENT span per request and injects `traceparent`; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct ClientSpanMiddleware {
    telemetry: Telemetry,
}

impl ClientSpanMiddleware {
    /// Spans go to the global tracer provider (looked up per request).
    pub fn new() -> Self {
        Self::default()
    }

    /// Spans go where `telemetry` says.
    pub fn with_telemetry(telemetry: Telemetry) -> Self {
        Self { telemetry }
    }
}

#[async_trait::async_trait]
impl Middleware for ClientSpanMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if self.telemetry.is_disabled() {
            return next.run(req, extensions).await;
        }
        if !self.telemetry.records_spans() {
            // A no-op tracer's span would only carry its parent's context: pass that on without
            // building the span and its attributes (a replayed request's hot path).
            let cx = Context::current();
            global::get_text_map_propagator(|propagator| {
                propagator.inject_context(&cx, &mut HeaderInjector(req.headers_mut()));
            });
            return next.run(req, extensions).await;
        }
        let tracer = self.telemetry.tracer();
        let parent = Context::current();
        let method = req.method().as_str().to_owned();
        let url = req.url();
        let mut attributes = vec![KeyValue::new(sc::HTTP_REQUEST_METHOD, method.clone())];
        if let Some(host) = url.host_str() {
            attributes.push(KeyValue::new(sc::SERVER_ADDRESS, host.to_owned()));
        }
        if let Some(port) = url.port_or_known_default() {
            attributes.push(KeyValue::new(sc::SERVER_PORT, i64::from(port)));
        }
        let mut full = url.clone();
        let _ = full.set_password(None);
        let _ = full.set_username("");
        attributes.push(KeyValue::new(sc::URL_FULL, full.to_string()));
        let span = tracer
            .span_builder(method)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer.as_ref(), &parent);
        let cx = parent.with_span(span);
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&cx, &mut HeaderInjector(req.headers_mut()));
        });
        let result = next.run(req, extensions).with_context(cx.clone()).await;
        let span = cx.span();
        match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                span.set_attribute(KeyValue::new(
                    sc::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(status),
                ));
                if status >= 400 {
                    span.set_attribute(KeyValue::new(sc::ERROR_TYPE, status.to_string()));
                    span.set_status(Status::error(format!("HTTP {status}")));
                }
            }
            Err(e) => {
                let class = ProviderError::classify_send("", e);
                span.set_attribute(KeyValue::new(sc::ERROR_TYPE, class.error_type()));
                span.set_status(Status::error(super::genai::truncate(&e.to_string())));
            }
        }
        span.end();
        result
    }
}
