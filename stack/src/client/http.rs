//! The HTTP backend of [`super::StackClient`]: reqwest to a running stack server.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::HeaderInjector;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

use super::{Answer, ClientError, ClientStream};
use crate::context::PROVIDER_DATA_HEADER;
use support::error::error_chain;

/// A server's base URL and the client to reach it.
#[derive(Debug, Clone)]
pub(super) struct HttpBackend {
    /// Scheme, host and port (and any prefix), without a trailing `/` or `/v1`.
    base: String,
    client: reqwest::Client,
}

impl HttpBackend {
    pub(super) fn new(base_url: &str) -> Result<Self, ClientError> {
        let url = url::Url::parse(base_url.trim())
            .map_err(|e| ClientError::Transport(format!("invalid base URL '{base_url}': {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Transport(format!(
                "base URL '{base_url}' must be http:// or https://"
            )));
        }
        let trimmed = url.as_str().trim_end_matches('/');
        let base = trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_owned();
        // The stack's own trust setup: the system store read once a process (a suite builds a
        // client a test) plus `SSL_CERT_FILE`, as for providers.
        let ca_file = crate::providers::tls::ca_file_from_env();
        let client = crate::providers::tls::trust(reqwest::Client::builder(), ca_file.as_deref())
            .map_err(|e| ClientError::Transport(format!("cannot use the CA file: {e}")))?
            .build()
            .map_err(|e| ClientError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { base, client })
    }

    pub(super) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
        provider_data: Option<String>,
    ) -> Result<Answer, ClientError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("invalid method '{method}': {e}")))?;
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        if let Some(value) = provider_data {
            request = request.header(PROVIDER_DATA_HEADER, value);
        }
        let response = request
            .headers(trace_context_headers())
            .send()
            .await
            .map_err(|e| ClientError::Transport(error_chain(&e)))?;
        let status = response.status();
        let is_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if status.is_success() && is_stream {
            return Ok(Answer::Stream(events(response)));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(error_chain(&e)))?;
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let error = match parsed {
                Some(Value::Object(mut obj)) if obj.get("error").is_some_and(Value::is_object) => {
                    obj.remove("error").unwrap_or(Value::Null)
                }
                _ => serde_json::json!({
                    "message": String::from_utf8_lossy(&bytes).trim(),
                    "type": "http_error",
                    "param": null,
                    "code": null,
                }),
            };
            return Err(ClientError::Api {
                status: status.as_u16(),
                error,
            });
        }
        parsed.map(Answer::Json).ok_or_else(|| {
            ClientError::Protocol(format!(
                "expected a JSON body, got: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))
        })
    }
}

/// The chunks of a server-sent event stream, up to `[DONE]`. A `data: {"error": ...}` event
/// becomes [`ClientError::Stream`]; a stream that ends without `[DONE]` is a transport error,
/// unless its events are named (`event: response.completed`, the Responses API), which end with
/// their last event.
fn events(response: reqwest::Response) -> ClientStream {
    let events = response.bytes_stream().eventsource();
    futures::stream::unfold(Some((events, false)), |state| async move {
        let (mut events, mut named) = state?;
        loop {
            let item = match events.next().await {
                None if named => return None,
                None => Err(ClientError::Transport(
                    "the event stream ended before [DONE]".into(),
                )),
                Some(Ok(event))
                    if !event.event.is_empty()
                        && event.event != "message"
                        && event.event != "error" =>
                {
                    named = true;
                    match serde_json::from_str::<Value>(&event.data) {
                        Ok(chunk) => return Some((Ok(chunk), Some((events, named)))),
                        Err(e) => Err(ClientError::Protocol(format!(
                            "stream event is not JSON ({e}): {}",
                            event.data
                        ))),
                    }
                }
                Some(Err(e)) => Err(ClientError::Transport(format!("event stream broke: {e}"))),
                Some(Ok(event)) if event.data.trim() == "[DONE]" => return None,
                Some(Ok(event)) if event.data.is_empty() => continue,
                Some(Ok(event)) => match serde_json::from_str::<Value>(&event.data) {
                    Ok(Value::Object(mut obj))
                        if obj.get("error").is_some_and(|e| !e.is_null()) =>
                    {
                        Err(ClientError::Stream {
                            error: obj.remove("error").unwrap_or(Value::Null),
                        })
                    }
                    Ok(chunk) => return Some((Ok(chunk), Some((events, named)))),
                    Err(e) => Err(ClientError::Protocol(format!(
                        "stream event is not JSON ({e}): {}",
                        event.data
                    ))),
                },
            };
            return Some((item, None));
        }
    })
    .boxed()
}

/// The W3C trace-context headers (`traceparent`, `tracestate`) of the current OpenTelemetry
/// context, so that the server continues the caller's trace. Empty when no span is current.
/// W3C is what the stack's server reads, so it is used whatever the global propagator is.
fn trace_context_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    TraceContextPropagator::new().inject_context(
        &opentelemetry::Context::current(),
        &mut HeaderInjector(&mut headers),
    );
    headers
}
