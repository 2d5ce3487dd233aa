//! One client API for the stack, with two backends:
//!
//! - [`StackClient::library`]: in-process, calls the stack directly and opens no sockets;
//! - [`StackClient::http`]: talks to a running server over HTTP.
//!
//! Both give the same answers and the same errors (status and OpenAI error object), because the
//! library backend goes through [`Stack::handle`], the very function the server answers with.
//! With the `replay` feature the HTTP backend sends the current test identity in the
//! `X-LlamaStack-Provider-Data` header, and the library backend runs each call in it.

mod http;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::Value;

use crate::Stack;
use crate::api::{Endpoint, Reply};
use crate::context::Captured;
use crate::error::ApiError;

/// The chunks of a streamed answer, each a parsed JSON chunk. An error ends the stream.
pub type ClientStream = BoxStream<'static, Result<Value, ClientError>>;

/// Message of the protocol error for a plain call answered with a stream.
pub const UNEXPECTED_STREAM: &str =
    "the stack answered with a stream (the request has \"stream\": true); use the *_stream method";
/// Message of the protocol error for a streaming call answered with plain JSON.
pub const UNEXPECTED_JSON: &str = "the stack answered with plain JSON where a stream was expected";

/// An error from the stack, or from reaching it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The stack answered with an HTTP error: its status and OpenAI error object
    /// (`{"message", "type", "param", "code"}`).
    #[error("HTTP {status}: {}", message_of(.error))]
    Api {
        /// HTTP status.
        status: u16,
        /// The `error` object of the body.
        error: Value,
    },
    /// A stream failed after it started (`data: {"error": ...}` on the wire).
    #[error("stream failed: {}", message_of(.error))]
    Stream {
        /// The `error` object of the event.
        error: Value,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the stack: {0}")]
    Transport(String),
    /// The answer was not in the expected format.
    #[error("unexpected answer from the stack: {0}")]
    Protocol(String),
}

fn message_of(error: &Value) -> String {
    match error.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => error.to_string(),
    }
}

impl ClientError {
    /// The API error as a client sees it.
    pub fn from_api(e: &ApiError) -> Self {
        Self::Api {
            status: e.status,
            error: e.error_object(),
        }
    }

    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OpenAI error object, for API and stream errors.
    pub fn error(&self) -> Option<&Value> {
        match self {
            Self::Api { error, .. } | Self::Stream { error } => Some(error),
            _ => None,
        }
    }

    /// The error message (the `message` of the error object, or the description).
    pub fn message(&self) -> String {
        match self.error() {
            Some(e) => message_of(e),
            None => self.to_string(),
        }
    }

    /// The `type` of the error object.
    pub fn error_type(&self) -> Option<&str> {
        self.error()?.get("type")?.as_str()
    }

    /// The `param` of the error object.
    pub fn param(&self) -> Option<&str> {
        self.error()?.get("param")?.as_str()
    }

    /// The `code` of the error object (`None` when absent or null).
    pub fn code(&self) -> Option<&Value> {
        self.error()?.get("code").filter(|c| !c.is_null())
    }
}

/// A path segment with the characters that would change the path percent-encoded.
fn encode_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// A client of the stack; cheap to clone.
#[derive(Debug, Clone)]
pub struct StackClient {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Library(Stack),
    Http(http::HttpBackend),
}

/// What an endpoint answered.
enum Answer {
    Json(Value),
    Stream(ClientStream),
}

impl StackClient {
    /// An in-process client: calls `stack` directly, opens no sockets.
    pub fn library(stack: Stack) -> StackClient {
        StackClient {
            backend: Backend::Library(stack),
        }
    }

    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8321`, with or without a
    /// trailing `/v1`).
    pub fn http(base_url: &str) -> Result<StackClient, ClientError> {
        Ok(StackClient {
            backend: Backend::Http(http::HttpBackend::new(base_url)?),
        })
    }

    /// Whether this is the in-process backend.
    pub fn is_library(&self) -> bool {
        matches!(self.backend, Backend::Library(_))
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Value, ClientError> {
        self.json(Endpoint::Health, None).await
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<Value, ClientError> {
        self.json(Endpoint::Version, None).await
    }

    /// `GET /v1/models`: the OpenAI model list.
    pub async fn models(&self) -> Result<Value, ClientError> {
        self.json(Endpoint::Models, None).await
    }

    /// `GET /v1/models/{model_id}`: Llama Stack's model resource.
    pub async fn model(&self, model_id: &str) -> Result<Value, ClientError> {
        self.call(
            "GET",
            &format!("/v1/models/{}", encode_segment(model_id)),
            None,
        )
        .await
    }

    /// `GET /v1/providers`.
    pub async fn providers(&self) -> Result<Value, ClientError> {
        self.call("GET", "/v1/providers", None).await
    }

    /// `GET /v1/providers/{provider_id}`.
    pub async fn provider(&self, provider_id: &str) -> Result<Value, ClientError> {
        self.call(
            "GET",
            &format!("/v1/providers/{}", encode_segment(provider_id)),
            None,
        )
        .await
    }

    /// `GET /v1/chat/completions?{query}`: stored chat completions (e.g. `limit=2&order=asc`).
    pub async fn list_chat_completions(&self, query: &str) -> Result<Value, ClientError> {
        self.call("GET", &with_query("/v1/chat/completions", query), None)
            .await
    }

    /// `GET /v1/chat/completions/{completion_id}`: a stored chat completion with its
    /// `input_messages`.
    pub async fn get_chat_completion(&self, completion_id: &str) -> Result<Value, ClientError> {
        self.call(
            "GET",
            &format!("/v1/chat/completions/{}", encode_segment(completion_id)),
            None,
        )
        .await
    }

    /// `POST /v1/chat/completions`, non-streaming.
    pub async fn chat_completion(&self, body: Value) -> Result<Value, ClientError> {
        self.json(Endpoint::ChatCompletions, Some(body)).await
    }

    /// `POST /v1/chat/completions` with `"stream": true` (set by this method): the chunks.
    /// The request is sent when the stream is first polled; errors before the stream starts
    /// are its only item.
    pub fn chat_completion_stream(&self, body: Value) -> ClientStream {
        self.stream(Endpoint::ChatCompletions, body)
    }

    /// `POST /v1/completions`, non-streaming.
    pub async fn completion(&self, body: Value) -> Result<Value, ClientError> {
        self.json(Endpoint::Completions, Some(body)).await
    }

    /// `POST /v1/completions` with `"stream": true` (set by this method): the chunks.
    pub fn completion_stream(&self, body: Value) -> ClientStream {
        self.stream(Endpoint::Completions, body)
    }

    /// `POST /v1/embeddings`.
    pub async fn embeddings(&self, body: Value) -> Result<Value, ClientError> {
        self.json(Endpoint::Embeddings, Some(body)).await
    }

    /// `POST /v1/responses`, non-streaming: the response object.
    pub async fn create_response(&self, body: Value) -> Result<Value, ClientError> {
        self.json(Endpoint::CreateResponse, Some(body)).await
    }

    /// `POST /v1/responses` with `"stream": true` (set by this method): the events, up to and
    /// including `response.completed` (or `response.failed`).
    pub fn create_response_stream(&self, body: Value) -> ClientStream {
        self.stream(Endpoint::CreateResponse, body)
    }

    /// `GET /v1/responses/{id}`.
    pub async fn get_response(&self, id: &str) -> Result<Value, ClientError> {
        self.call(
            "GET",
            &format!("/v1/responses/{}", encode_segment(id)),
            None,
        )
        .await
    }

    /// `DELETE /v1/responses/{id}`.
    pub async fn delete_response(&self, id: &str) -> Result<Value, ClientError> {
        self.call(
            "DELETE",
            &format!("/v1/responses/{}", encode_segment(id)),
            None,
        )
        .await
    }

    /// `GET /v1/responses?{query}` (e.g. `limit=2&order=asc`; empty for the defaults).
    pub async fn list_responses(&self, query: &str) -> Result<Value, ClientError> {
        self.call("GET", &with_query("/v1/responses", query), None)
            .await
    }

    /// `GET /v1/responses/{id}/input_items?{query}`.
    pub async fn list_input_items(&self, id: &str, query: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/responses/{}/input_items", encode_segment(id));
        self.call("GET", &with_query(&path, query), None).await
    }

    /// Any method on any path with an optional JSON body, answered as JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let bytes = body.map(|b| Bytes::from(b.to_string()));
        match self
            .request(method, path, bytes, Captured::current())
            .await?
        {
            Answer::Json(v) => Ok(v),
            Answer::Stream(_) => Err(ClientError::Protocol(UNEXPECTED_STREAM.to_owned())),
        }
    }

    /// POSTs raw bytes to `path` (e.g. a malformed body to `/v1/chat/completions`). A streamed
    /// answer is returned as the JSON array of its chunks.
    pub async fn post_raw(&self, path: &str, body: impl Into<Bytes>) -> Result<Value, ClientError> {
        let answer = self
            .request("POST", path, Some(body.into()), Captured::current())
            .await?;
        match answer {
            Answer::Json(v) => Ok(v),
            Answer::Stream(s) => s
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
        }
    }

    async fn json(&self, endpoint: Endpoint, body: Option<Value>) -> Result<Value, ClientError> {
        let bytes = body.map(|b| Bytes::from(b.to_string()));
        match self
            .request(
                endpoint.method(),
                endpoint.path(),
                bytes,
                Captured::current(),
            )
            .await?
        {
            Answer::Json(v) => Ok(v),
            Answer::Stream(_) => Err(ClientError::Protocol(UNEXPECTED_STREAM.to_owned())),
        }
    }

    fn stream(&self, endpoint: Endpoint, mut body: Value) -> ClientStream {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("stream".into(), Value::Bool(true));
        }
        let this = self.clone();
        let captured = Captured::current();
        let open = async move {
            let bytes = Bytes::from(body.to_string());
            match this
                .request(endpoint.method(), endpoint.path(), Some(bytes), captured)
                .await
            {
                Ok(Answer::Stream(s)) => s,
                Ok(Answer::Json(_)) => {
                    stream::once(async { Err(ClientError::Protocol(UNEXPECTED_JSON.to_owned())) })
                        .boxed()
                }
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            }
        };
        stream::once(open).flatten().boxed()
    }

    /// Sends one request through the backend, inside the captured test context.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
        captured: Captured,
    ) -> Result<Answer, ClientError> {
        match &self.backend {
            Backend::Http(h) => {
                h.request(method, path, body, captured.provider_data())
                    .await
            }
            Backend::Library(stack) => {
                let body = body.unwrap_or_default();
                let reply = captured.scope(stack.handle(method, path, &body)).await;
                match reply {
                    Ok(Reply::Json(v)) => Ok(Answer::Json(v)),
                    Ok(Reply::Raw(o)) => Ok(Answer::Json(o.to_value())),
                    Ok(Reply::Stream(chunks) | Reply::Events(chunks)) => Ok(Answer::Stream(
                        chunks
                            .map(|item| {
                                item.map_err(|e| ClientError::Stream {
                                    error: e.error_object(),
                                })
                            })
                            .boxed(),
                    )),
                    Err(e) => Err(ClientError::from_api(&e)),
                }
            }
        }
    }
}
