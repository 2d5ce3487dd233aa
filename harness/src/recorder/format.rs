//! The recording file format (one JSON blob per recording, laid out by [`super::layout`]; format version 1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Version of the blob format written by this harness.
pub const FORMAT_VERSION: u32 = 1;

/// One recorded request and its response.
#[derive(Debug, Serialize, Deserialize)]
pub struct Recording {
    /// Blob format version.
    pub format_version: u32,
    /// The request key (also the file name).
    pub request_hash: String,
    /// The test identity, `null` for calls outside a test.
    pub test_id: Option<String>,
    /// Index of this request among identical ones in the same test execution.
    pub occurrence: u32,
    /// The request.
    pub request: RecordedRequest,
    /// The response.
    pub response: RecordedResponse,
    /// Where and when it was recorded.
    pub metadata: Metadata,
    /// `request` already in the blob's layout, when it was laid out while the provider worked
    /// (a large request: see [`super::Recorder`]); always `request`'s own text.
    #[serde(skip)]
    pub(crate) laid_out_request: Option<Vec<u8>>,
}

/// The request, minus secrets.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// URL path (the endpoint).
    pub path: String,
    /// Non-secret query parameters as hashed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<(String, String)>,
    /// The `model` field of the body, if any.
    pub model: Option<String>,
    /// The provider label the service attached (part of the key), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Headers as sent, allow-listed; secret ones show as `<redacted>`.
    pub headers: BTreeMap<String, String>,
    /// The body as hashed (normalized, keys sorted).
    pub canonical_body: Value,
    /// The body as sent, minus secrets; for a JSON body, `same_as_canonical` (the JSON body is
    /// recorded once, as `canonical_body`).
    pub body: Body,
}

/// A body, kept as the peer sent it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// No body.
    Empty,
    /// JSON, embedded verbatim (never re-serialized through a key-sorting map).
    Json(Box<RawValue>),
    /// UTF-8 text that is not JSON.
    Text(String),
    /// Anything else, base64.
    Base64(String),
    /// A request's JSON body, not stored twice: its `canonical_body` is the body as hashed.
    SameAsCanonical,
}

impl Body {
    /// Builds a body from bytes, applying `scrub` to text before it is stored.
    pub fn from_bytes(bytes: &[u8], scrub: impl Fn(&str) -> String) -> Body {
        if bytes.is_empty() {
            return Body::Empty;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                let text = scrub(text);
                match RawValue::from_string(text.trim().to_owned()) {
                    Ok(raw) if text.trim() == text => Body::Json(raw),
                    _ => Body::Text(text),
                }
            }
            Err(_) => {
                use base64::Engine;
                Body::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }

    /// The bytes to hand back to the caller; an error says why a `base64` body does not decode.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Body::Empty => Ok(Vec::new()),
            Body::SameAsCanonical => Err("its body is recorded as canonical_body only".into()),
            Body::Json(raw) => Ok(raw.get().as_bytes().to_vec()),
            Body::Text(s) => Ok(s.as_bytes().to_vec()),
            Body::Base64(s) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| format!("its base64 body does not decode ({e})"))
            }
        }
    }
}

/// The `t_ms` of something that happens now, `start` being when the request was sent:
/// milliseconds, rounded to the microsecond.
pub(crate) fn ms_since(start: std::time::Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// One event of a recorded stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamEvent {
    /// Milliseconds from the moment the request was sent to the moment this event completed.
    pub t_ms: f64,
    /// The event's raw text as received, terminator included (e.g. `data: {...}\n\n`); empty
    /// when the event is not UTF-8 (then `raw_base64` holds its bytes).
    pub raw: String,
    /// The event's bytes, base64, for an event that is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

impl StreamEvent {
    /// The event's bytes, as received.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        match &self.raw_base64 {
            None => Ok(self.raw.as_bytes().to_vec()),
            Some(b) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("a stream event's base64 does not decode ({e})"))
            }
        }
    }
}

/// How a recorded stream ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamEnd {
    /// The provider finished the stream.
    Complete,
    /// The provider's stream failed after the events above.
    Error {
        /// Milliseconds from the request.
        t_ms: f64,
        /// The error message.
        message: String,
    },
    /// The caller stopped reading before the end; replay ends here with an error.
    CallerStopped {
        /// Milliseconds from the request.
        t_ms: f64,
    },
}

/// The recorded response. Externally tagged (`{"http": {...}}`): an internally tagged enum would
/// make serde buffer the body and lose the verbatim JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedResponse {
    /// A complete HTTP response (any status).
    Http {
        /// HTTP status.
        status: u16,
        /// Allow-listed response headers.
        headers: BTreeMap<String, String>,
        /// The body as sent.
        body: Body,
        /// Milliseconds until the whole body arrived.
        t_ms: f64,
    },
    /// A streamed response (`text/event-stream` or `application/x-ndjson`).
    Stream {
        /// HTTP status.
        status: u16,
        /// Allow-listed response headers.
        headers: BTreeMap<String, String>,
        /// The events, in order, with their time offsets.
        events: Vec<StreamEvent>,
        /// How the stream ended.
        end: StreamEnd,
    },
    /// No HTTP response: the connection was refused, timed out or broke.
    TransportError {
        /// `connect`, `timeout`, `body` or `other` (other text reads as `other`).
        error_kind: support::transport::TransportKind,
        /// The error message.
        message: String,
    },
}

impl RecordedResponse {
    /// Whether the response is a stream.
    pub fn is_streaming(&self) -> bool {
        matches!(self, RecordedResponse::Stream { .. })
    }

    /// The HTTP status, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            RecordedResponse::Http { status, .. } | RecordedResponse::Stream { status, .. } => {
                Some(*status)
            }
            RecordedResponse::TransportError { .. } => None,
        }
    }
}

/// What replay reads of a recording: the request line (for error messages) and the response.
/// Deserializing only this skips the request's bodies and headers on the measured replay path.
#[derive(Debug, Deserialize)]
pub struct Replayable {
    /// Method and path of the recorded request.
    pub request: RequestLine,
    /// The recorded response.
    pub response: RecordedResponse,
}

/// Method and path of a recorded request.
#[derive(Debug, Deserialize)]
pub struct RequestLine {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
}

/// Where and when a recording was made.
#[derive(Debug, Serialize, Deserialize)]
pub struct Metadata {
    /// RFC 3339 UTC time of recording.
    pub recorded_at: String,
    /// The provider's base URL (scheme, host, port) without credentials.
    pub provider_base_url: String,
    /// Version of the harness that wrote the recording.
    pub harness_version: String,
}

/// A request in a log line: method, path, key prefix and test id.
pub(crate) fn describe_request(
    method: &str,
    path: &str,
    hash: &str,
    test_id: Option<&str>,
) -> String {
    format!(
        "{method} {path} (key {}, test {})",
        hash.get(..12).unwrap_or(hash),
        test_id.unwrap_or("none")
    )
}
