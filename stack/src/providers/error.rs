//! What can go wrong talking to a provider (how callers see it is decided in `api::errors`).

use std::sync::Arc;

use serde_json::Value;
use support::error::error_chain;
use support::transport::TransportKind;

use crate::error::REPLAY_MISS;

/// `error.type` of a provider that could not be reached.
pub const ERROR_CONNECTION: &str = "connection_error";
/// `error.type` of a provider that did not answer in time.
pub const ERROR_TIMEOUT: &str = "timeout";
/// `error.type` of any other transport failure (e.g. a body that broke off).
pub const ERROR_TRANSPORT: &str = "transport_error";
/// `error.type` of a 2xx answer that is not what the API promises.
pub const ERROR_INVALID_RESPONSE: &str = "invalid_response";

/// A source error shared by the clones of a [`ProviderError`] (a stream's error goes to the
/// caller and to telemetry).
pub type SharedError = Arc<dyn std::error::Error + Send + Sync>;

/// A failed provider call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an HTTP error status.
    #[error("provider '{provider}' returned HTTP {status}: {message}")]
    Status {
        /// Provider id.
        provider: String,
        /// The provider's HTTP status.
        status: u16,
        /// The provider's error message.
        message: String,
        /// The provider's error object when it sent one (`{"message", "type", ...}`).
        error: Option<Value>,
    },
    /// The provider could not be reached (connection refused, DNS, ...).
    #[error("could not connect to provider '{provider}': {message}")]
    Connect {
        /// Provider id.
        provider: String,
        /// What failed (the source's chain as one line).
        message: String,
        /// The transport error, when the stack had it to keep.
        #[source]
        source: Option<SharedError>,
    },
    /// The provider did not answer in time.
    #[error("provider '{provider}' timed out: {message}")]
    Timeout {
        /// Provider id.
        provider: String,
        /// What failed (the source's chain as one line).
        message: String,
        /// The transport error, when the stack had it to keep.
        #[source]
        source: Option<SharedError>,
    },
    /// Any other transport failure, including a body that broke off.
    #[error("transport error talking to provider '{provider}': {message}")]
    Transport {
        /// Provider id.
        provider: String,
        /// What failed (the source's chain as one line).
        message: String,
        /// The transport error, when the stack had it to keep.
        #[source]
        source: Option<SharedError>,
    },
    /// The provider answered 2xx with something that is not what the API promises.
    #[error("provider '{provider}' sent an invalid response: {message}")]
    InvalidResponse {
        /// Provider id.
        provider: String,
        /// What was wrong with it.
        message: String,
    },
    /// The recorder (feature `replay`) has no recording for this request.
    #[error("{0}")]
    ReplayMiss(String),
    /// The recorder replayed a transport failure that happened when the recording was made.
    #[error("provider '{provider}' (replayed {kind} failure): {message}")]
    RecordedTransport {
        /// Provider id.
        provider: String,
        /// How the recorded request failed.
        kind: TransportKind,
        /// The recorded failure.
        message: String,
        /// The recorder's error, when the stack had it to keep.
        #[source]
        source: Option<SharedError>,
    },
}

impl ProviderError {
    /// Classifies an error of the middleware client: recorder errors (feature `replay`) first,
    /// then reqwest's connect/timeout kinds. The error is kept as the source.
    pub fn from_send(provider: &str, err: reqwest_middleware::Error) -> Self {
        match err {
            reqwest_middleware::Error::Reqwest(e) => Self::from_reqwest(provider, e),
            reqwest_middleware::Error::Middleware(e) => {
                let mut classified = Self::from_middleware(provider, &e);
                if let Self::Connect { source, .. }
                | Self::Timeout { source, .. }
                | Self::Transport { source, .. }
                | Self::RecordedTransport { source, .. } = &mut classified
                {
                    let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
                    *source = Some(Arc::from(boxed));
                }
                classified
            }
        }
    }

    /// [`ProviderError::from_send`] without taking the error (e.g. for a middleware that passes
    /// it on); the result has no source.
    pub fn classify_send(provider: &str, err: &reqwest_middleware::Error) -> Self {
        match err {
            reqwest_middleware::Error::Reqwest(e) => {
                Self::transport(provider, reqwest_kind(e), error_chain(e), None)
            }
            reqwest_middleware::Error::Middleware(e) => Self::from_middleware(provider, e),
        }
    }

    fn from_middleware(provider: &str, e: &anyhow::Error) -> Self {
        #[cfg(feature = "replay")]
        if let Some(found) = Self::from_recorder(provider, e) {
            return found;
        }
        if let Some(r) = e.chain().find_map(|c| c.downcast_ref::<reqwest::Error>()) {
            return Self::transport(provider, reqwest_kind(r), error_chain(r), None);
        }
        Self::transport(provider, TransportKind::Other, format!("{e:#}"), None)
    }

    #[cfg(feature = "replay")]
    fn from_recorder(provider: &str, e: &anyhow::Error) -> Option<Self> {
        use harness::recorder::{RecordedTransportError, ReplayMiss};
        if let Some(miss) = e.chain().find_map(|c| c.downcast_ref::<ReplayMiss>()) {
            return Some(Self::ReplayMiss(miss.to_string()));
        }
        e.chain()
            .find_map(|c| c.downcast_ref::<RecordedTransportError>())
            .map(|t| Self::RecordedTransport {
                provider: provider.to_owned(),
                kind: t.kind(),
                message: t.to_string(),
                source: None,
            })
    }

    /// Classifies a reqwest error, keeping it as the source.
    pub fn from_reqwest(provider: &str, e: reqwest::Error) -> Self {
        let kind = reqwest_kind(&e);
        let message = error_chain(&e);
        Self::transport(provider, kind, message, Some(Arc::new(e)))
    }

    /// A [`ProviderError::Connect`], [`ProviderError::Timeout`] or [`ProviderError::Transport`]
    /// by `kind`.
    fn transport(
        provider: &str,
        kind: TransportKind,
        message: String,
        source: Option<SharedError>,
    ) -> Self {
        let provider = provider.to_owned();
        match kind {
            TransportKind::Timeout => Self::Timeout {
                provider,
                message,
                source,
            },
            TransportKind::Connect => Self::Connect {
                provider,
                message,
                source,
            },
            TransportKind::Body | TransportKind::Other => Self::Transport {
                provider,
                message,
                source,
            },
        }
    }

    /// Builds the error for a non-2xx provider answer from its status and body, reading the
    /// common error shapes: `{"error": {...}}`, `{"error": "..."}`, `{"detail": ...}`,
    /// `{"message": ...}`, or plain text.
    pub fn from_status(provider: &str, status: u16, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let (message, error) = match &parsed {
            Some(Value::Object(obj)) => match obj.get("error") {
                Some(err @ Value::Object(e)) => (
                    e.get("message")
                        .map(text_of)
                        .unwrap_or_else(|| err.to_string()),
                    Some(err.clone()),
                ),
                Some(other) => (text_of(other), None),
                None => match obj.get("detail").or_else(|| obj.get("message")) {
                    Some(d) => (text_of(d), None),
                    None => (Value::Object(obj.clone()).to_string(), None),
                },
            },
            Some(other) => (text_of(other), None),
            None => (
                String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(4000)
                    .collect(),
                None,
            ),
        };
        let message = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            message
        };
        Self::Status {
            provider: provider.to_owned(),
            status,
            message,
            error,
        }
    }

    /// The `error.type` of this failure on spans and metrics: the provider's HTTP status as a
    /// string (`"500"`), or one of `connection_error`, `timeout`, `transport_error`,
    /// `invalid_response`, `replay_miss`. A replayed transport failure has the class of the
    /// failure that was recorded.
    pub fn error_type(&self) -> String {
        match self {
            Self::Status { status, .. } => status.to_string(),
            Self::Connect { .. } => ERROR_CONNECTION.to_owned(),
            Self::Timeout { .. } => ERROR_TIMEOUT.to_owned(),
            Self::Transport { .. } => ERROR_TRANSPORT.to_owned(),
            Self::InvalidResponse { .. } => ERROR_INVALID_RESPONSE.to_owned(),
            Self::ReplayMiss(_) => REPLAY_MISS.to_owned(),
            Self::RecordedTransport { kind, .. } => match kind {
                TransportKind::Connect => ERROR_CONNECTION.to_owned(),
                TransportKind::Timeout => ERROR_TIMEOUT.to_owned(),
                TransportKind::Body | TransportKind::Other => ERROR_TRANSPORT.to_owned(),
            },
        }
    }
}

/// A JSON value as message text: strings as they are, anything else serialized.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How a reqwest error failed, as the recorder classifies it (connect and timeout apart).
fn reqwest_kind(e: &reqwest::Error) -> TransportKind {
    if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    }
}
