//! rmcp's streamable HTTP client on the stack's own HTTP client, so that every MCP exchange
//! (initialize, notifications, `tools/list`, `tools/call`, session end) passes the client span
//! middleware and the recorder like any provider call, and replays with no MCP server running.
//!
//! rmcp ships a client for a plain `reqwest::Client` only; a `reqwest_middleware` client needs
//! this implementation of its `StreamableHttpClient` trait (written here because rmcp has no
//! middleware support and its own reqwest glue is private).
//!
//! Each request runs inside the test scope and the OpenTelemetry context of the session that
//! made it: rmcp sends from a worker task of its own, where neither would otherwise be current.
//! The JSON-RPC message gets the trace context in `params._meta` (MCP semantic conventions); the
//! recorder's JSON-RPC rules keep `_meta`, `id` and the offered protocol version out of the key.
//!
//! The standalone GET stream (server-initiated messages) is declined: the stack answers no
//! server requests (sampling, elicitation, roots), and an open-ended stream has no place in a
//! recording.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use opentelemetry::trace::FutureExt as _;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest_middleware::ClientWithMiddleware;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use serde_json::Value;
use sse_stream::{Sse, SseStream};

use crate::context::Captured;
use crate::telemetry::mcp::Observer;

/// The MCP session header.
const SESSION_HEADER: &str = "mcp-session-id";
/// The largest JSON body read from an MCP server.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// An rmcp HTTP client that sends through the stack's provider client.
#[derive(Clone)]
pub struct RecordedHttpClient {
    client: ClientWithMiddleware,
    /// The recorder's provider label (`mcp/<server_label>`): two servers asked the same thing get
    /// separate recordings, while their host and port stay out of the key.
    label: String,
    scope: Captured,
    observer: Arc<Observer>,
}

impl RecordedHttpClient {
    /// A client for one MCP session, labelled `label`, whose requests run in `scope` and are
    /// traced by `observer`.
    pub(super) fn new(
        client: ClientWithMiddleware,
        label: String,
        scope: Captured,
        observer: Arc<Observer>,
    ) -> Self {
        Self {
            client,
            label,
            scope,
            observer,
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        uri: &str,
        session_id: Option<&str>,
        auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> reqwest_middleware::RequestBuilder {
        let mut request = self.client.request(method, uri);
        #[cfg(feature = "replay")]
        {
            request = request.with_extension(harness::recorder::ProviderLabel(self.label.clone()));
        }
        #[cfg(not(feature = "replay"))]
        let _ = &self.label;
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        if let Some(id) = session_id {
            request = request.header(SESSION_HEADER, id);
        }
        request
    }
}

/// A client-side failure (the HTTP client's error, kept as the source).
#[derive(thiserror::Error)]
#[error("{0}")]
pub struct ClientFailure(#[source] reqwest_middleware::Error);

/// The error and its sources as one line, without a backtrace. rmcp formats a failed
/// `initialize` POST with `{:?}`, and a middleware error (the recorder's, a replayed transport
/// error among them) is an `anyhow::Error`, whose `Debug` prints the backtrace it captured under
/// `RUST_BACKTRACE=1`, symbolized there and then: half a second of a debug-built server's time
/// for every unreachable MCP server, and 80 frames in one log line.
impl std::fmt::Debug for ClientFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClientFailure")
            .field(&support::error::error_chain(&self.0))
            .finish()
    }
}

type Result<T> = std::result::Result<T, StreamableHttpError<ClientFailure>>;

fn failure(e: reqwest_middleware::Error) -> StreamableHttpError<ClientFailure> {
    StreamableHttpError::Client(ClientFailure(e))
}

impl StreamableHttpClient for RecordedHttpClient {
    type Error = ClientFailure;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse> {
        let mut body = serde_json::to_value(&message)?;
        let op = self.observer.begin(&body, session_id.as_deref());
        op.inject_into(&mut body);
        let awaits_reply = body.get("id").is_some() && body.get("method").is_some();
        let request = self
            .request(
                reqwest::Method::POST,
                &uri,
                session_id.as_deref(),
                auth_header,
                custom_headers,
            )
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let sent = self
            .scope
            .clone()
            .scope(request.send().with_context(op.context().clone()))
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                op.fail_transport(&e.to_string());
                return Err(failure(e));
            }
        };
        let status = response.status();
        let new_session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if status.as_u16() == 202
            || status.as_u16() == 204
            || (!awaits_reply && status.is_success())
        {
            op.finish_accepted();
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status.as_u16() == 404 && session_id.is_some() {
            op.fail_status(status.as_u16(), "session expired");
            return Err(StreamableHttpError::SessionExpired);
        }
        if content_type.starts_with("text/event-stream") && status.is_success() {
            let events = SseStream::from_bytes_stream(response.bytes_stream()).boxed();
            return Ok(StreamableHttpPostResponse::Sse(
                op.watch(events),
                new_session,
            ));
        }
        let bytes = response.bytes().await.map_err(|e| {
            let e = reqwest_middleware::Error::Reqwest(e);
            op.fail_transport(&e.to_string());
            failure(e)
        })?;
        if bytes.len() > MAX_JSON_BYTES {
            op.fail_status(status.as_u16(), "response too large");
            return Err(StreamableHttpError::ResponseBodyTooLarge {
                max_size: MAX_JSON_BYTES,
            });
        }
        // A JSON-RPC answer, also on an error status (servers answer e.g. 400 with a JSON-RPC
        // error object).
        if let Ok(message) = serde_json::from_slice::<ServerJsonRpcMessage>(&bytes) {
            op.finish_with(&serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null));
            return Ok(StreamableHttpPostResponse::Json(message, new_session));
        }
        let text: String = String::from_utf8_lossy(&bytes).chars().take(500).collect();
        op.fail_status(status.as_u16(), &text);
        Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
            format!("HTTP {status}: {text}"),
        )))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<()> {
        let request = self.request(
            reqwest::Method::DELETE,
            &uri,
            Some(&session_id),
            auth_header,
            custom_headers,
        );
        let cx = self.observer.context();
        let response = self
            .scope
            .clone()
            .scope(request.send().with_context(cx))
            .await
            .map_err(failure)?;
        // 405: the server does not end sessions on request; that is allowed.
        if response.status().is_success() || response.status().as_u16() == 405 {
            Ok(())
        } else {
            Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("DELETE of the session answered HTTP {}", response.status()),
            )))
        }
    }

    async fn get_stream(
        &self,
        _uri: Arc<str>,
        _session_id: Option<Arc<str>>,
        _last_event_id: Option<String>,
        _auth_header: Option<String>,
        _custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, std::result::Result<Sse, SseError>>> {
        Err(StreamableHttpError::ServerDoesNotSupportSse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_debugs_as_its_error_chain_without_a_backtrace() {
        #[derive(Debug, thiserror::Error)]
        #[error("replayed provider transport error (connect)")]
        struct Replayed;
        // An anyhow error inside: its own Debug would add the backtrace it captured.
        let failure = ClientFailure(reqwest_middleware::Error::middleware(Replayed));
        assert_eq!(
            format!("{failure:?}"),
            r#"ClientFailure("replayed provider transport error (connect)")"#
        );
    }
}
