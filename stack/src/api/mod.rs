//! The API the stack offers, independent of transport: endpoints, request handling and replies.
//! The HTTP server and the in-process client both call [`crate::Stack::handle`], so both give the
//! same answers, errors included.

pub mod embeddings;
pub mod inference;
pub mod validate;

use futures::stream::BoxStream;
use serde_json::Value;

use crate::error::ApiError;

/// The chunks of a streamed answer. An `Err` item is the last one: the stream failed after it
/// started (the server sends it as a `data: {"error": ...}` event and no `[DONE]`).
pub type ChunkStream = BoxStream<'static, Result<Value, ApiError>>;

/// A successful answer.
pub enum Reply {
    /// A JSON body.
    Json(Value),
    /// A stream of JSON chunks (server-sent events on the wire).
    Stream(ChunkStream),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(v) => f.debug_tuple("Json").field(v).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// The endpoints of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v1/health`
    Health,
    /// `GET /v1/version`
    Version,
    /// `GET /v1/models`
    Models,
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 6] = [
        Self::Health,
        Self::Version,
        Self::Models,
        Self::ChatCompletions,
        Self::Completions,
        Self::Embeddings,
    ];

    /// The URL path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Health => "/v1/health",
            Self::Version => "/v1/version",
            Self::Models => "/v1/models",
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
        }
    }

    /// The HTTP method.
    pub fn method(self) -> &'static str {
        match self {
            Self::Health | Self::Version | Self::Models => "GET",
            Self::ChatCompletions | Self::Completions | Self::Embeddings => "POST",
        }
    }

    /// The endpoint at a path (query string ignored).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.split('?').next().unwrap_or(path);
        Self::ALL.into_iter().find(|e| e.path() == path)
    }
}
