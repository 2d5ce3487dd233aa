//! The recorder's error types.

use std::path::PathBuf;

use support::transport::TransportKind;

/// An error of the recorder itself (configuration or storage), as opposed to a provider error.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The mode variable holds an unknown value.
    #[error(
        "invalid {var}={value:?}: expected one of replay (the default), record-if-missing, \
         record, live"
    )]
    InvalidMode {
        /// The variable (the profile's [`EnvNames::mode`](crate::profile::EnvNames::mode)).
        var: &'static str,
        /// The value found.
        value: String,
    },
    /// A normalization rule could not be parsed.
    #[error("invalid normalization rule {rule:?}: {reason}")]
    InvalidRule {
        /// The rule as written.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment setting of the recorder has an invalid value.
    #[error("invalid {name}: {reason}")]
    InvalidSetting {
        /// The variable.
        name: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The request body is a stream, which cannot be keyed.
    #[error(
        "cannot record or replay {request}: its body is a stream; the recorder keys requests on \
         their body, so send a buffered body (e.g. `.json(...)` or `.body(Vec<u8>)`)"
    )]
    StreamingRequestBody {
        /// Method and path.
        request: String,
    },
    /// Reading or writing the recordings directory failed.
    #[error("recordings store at {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite index failed in a way a rebuild could not repair.
    #[error("recordings index {path}: {source}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// A recording would nest deeper than a blob can be read back (`serde_json` reads 128 levels):
    /// it is not written, so that no recording is stored that replay could not load.
    #[error(
        "{request}: not recorded: its recording would nest {depth} levels of JSON, and recordings \
         are read back up to {limit} (the request or response body nests {body} levels; at most \
         {max_body} fit). Send a body nested less deeply"
    )]
    TooDeep {
        /// The request (method, path, key, test).
        request: String,
        /// The blob's nesting depth.
        depth: usize,
        /// The deepest blob that loads.
        limit: usize,
        /// How deep the deepest body nests.
        body: usize,
        /// How deep a body may nest in a blob.
        max_body: usize,
    },
    /// The recorder's work on a large request was lost as its async runtime shut down (its
    /// blocking task was cancelled and the work could not be taken back to run in place): the
    /// request was not recorded. Not expected in practice.
    #[error(
        "the request was not recorded: its async runtime is shutting down. Let the test or \
         server finish before the runtime stops"
    )]
    ShuttingDown,
    /// A recording file could not be parsed.
    #[error("recording {path} is not a valid recording: {reason}. Delete it and record again")]
    BadRecording {
        /// The blob.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl RecorderError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RecorderError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A connection refusal, timeout or other transport failure that was recorded and is now
/// replayed, so error paths can be tested offline.
#[derive(Debug, Clone, thiserror::Error)]
#[error("replayed provider transport error ({kind}) for {method} {url}: {message}")]
pub struct RecordedTransportError {
    pub(crate) kind: TransportKind,
    pub(crate) message: String,
    pub(crate) method: String,
    pub(crate) url: String,
}

impl RecordedTransportError {
    /// How the recorded request failed.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// The original error's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}
