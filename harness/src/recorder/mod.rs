//! The recorder: a `reqwest-middleware` middleware that records provider traffic and replays it.
//!
//! Install it on the HTTP client a service uses to reach its providers:
//!
//! ```no_run
//! # fn main() -> Result<(), harness::recorder::RecorderError> {
//! let client = reqwest::Client::new();
//! let mut builder = reqwest_middleware::ClientBuilder::new(client);
//! if let Some(recorder) = harness::recorder::Recorder::from_env()? {
//!     builder = builder.with(recorder);
//! }
//! let client = builder.build();
//! # Ok(()) }
//! ```
//!
//! Modules: [`mode`] decides what to do, [`canonical`] computes the request key, [`normalize`]
//! holds the volatile-field rules, [`redact`] keeps secrets off disk, [`store`] keeps the
//! recordings, [`format`](mod@format) is the blob format, `stream` records and replays streams,
//! and [`miss`] explains a replay miss.

pub mod canonical;
mod draft;
mod error;
pub mod format;
mod jcs;
pub mod keep;
pub mod miss;
pub mod mode;
pub mod normalize;
pub mod redact;
mod replay_cache;
pub mod sse;
pub mod store;
mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use support::error::error_chain;
use support::sync::lock;
use support::transport::TransportKind;

use crate::context::TestContext;
pub use canonical::{CanonicalBody, CanonicalRequest};
use draft::Draft;
pub use error::{RecordedTransportError, RecorderError};
use format::{Body, RecordedResponse};
pub use miss::ReplayMiss;
pub use mode::{MODE_ENV, Mode};
pub use normalize::{Rule, Rules};
use sse::Framing;
pub use store::Store;
pub use stream::ReplayedStreamError;

/// Environment variable naming the recordings directory.
pub const RECORDING_DIR_ENV: &str = "LLAMA_STACK_TEST_RECORDING_DIR";
/// Environment variable choosing replay timing: `instant` (default) or `recorded`.
pub const REPLAY_TIMING_ENV: &str = "LLAMA_STACK_TEST_REPLAY_TIMING";
/// Environment variable holding the command a replay miss suggests (`{test_id}` is substituted).
pub const RECORD_COMMAND_ENV: &str = "LLAMA_STACK_TEST_RECORD_COMMAND";
/// Environment variable that makes the recorder log every key's inputs (`1`, `true`, `yes`).
pub const DEBUG_ENV: &str = "LLAMA_STACK_TEST_DEBUG";

const DEFAULT_RECORD_COMMAND: &str =
    "scripts/integration-tests.sh --inference-mode record-if-missing --pattern '{test_id}'";

/// A label the service attaches to a request (as a `reqwest-middleware` request extension) to say
/// which provider it is for. It becomes part of the request key, so two providers that serve the
/// same path and body (e.g. `GET /v1/models` at start-up) get separate recordings, while the
/// provider's host and port stay out of the key.
///
/// ```no_run
/// # async fn f(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
/// client.get("http://127.0.0.1:8080/v1/models")
///     .with_extension(harness::recorder::ProviderLabel("llamacpp".into()))
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderLabel(pub String);

/// How replayed streams are paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplayTiming {
    /// Every event at once (the default).
    #[default]
    Instant,
    /// Each event at its recorded offset from the request.
    Recorded,
}

impl std::str::FromStr for ReplayTiming {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "instant" => Ok(ReplayTiming::Instant),
            "recorded" => Ok(ReplayTiming::Recorded),
            other => Err(format!(
                "invalid {REPLAY_TIMING_ENV}={other:?}: expected instant (default) or recorded"
            )),
        }
    }
}

/// Everything the recorder needs to know.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// The mode.
    pub mode: Mode,
    /// The recordings directory.
    pub dir: PathBuf,
    /// Normalization rules for the key.
    pub rules: Rules,
    /// Replay pacing for streams.
    pub timing: ReplayTiming,
    /// The command a miss suggests; `{test_id}` is replaced by the test id.
    pub record_command: String,
    /// Log every key's inputs.
    pub debug: bool,
    /// Store transient failures (5xx, transport errors, broken streams) too
    /// ([`keep::RECORD_ERRORS_ENV`]); by default they are not stored.
    pub record_errors: bool,
}

impl RecorderConfig {
    /// A configuration with the given mode and directory, the default LLM rules plus the
    /// directory's `normalization.toml`, instant replay and the default record command.
    pub fn new(mode: Mode, dir: impl Into<PathBuf>) -> Result<Self, RecorderError> {
        let dir = dir.into();
        Ok(RecorderConfig {
            mode,
            rules: Rules::for_recordings_dir(&dir)?,
            dir,
            timing: ReplayTiming::Instant,
            record_command: DEFAULT_RECORD_COMMAND.to_owned(),
            debug: false,
            record_errors: false,
        })
    }

    /// Reads the configuration from the environment; `Ok(None)` when
    /// `LLAMA_STACK_TEST_INFERENCE_MODE` is unset (no recorder).
    pub fn from_env() -> Result<Option<Self>, RecorderError> {
        let Some(mode) = Mode::from_env()? else {
            return Ok(None);
        };
        let dir = match std::env::var_os(RECORDING_DIR_ENV) {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => default_recordings_dir(),
        };
        let mut config = RecorderConfig::new(mode, dir)?;
        if let Ok(t) = std::env::var(REPLAY_TIMING_ENV) {
            config.timing = t.parse().map_err(|reason| RecorderError::InvalidSetting {
                name: REPLAY_TIMING_ENV.into(),
                reason,
            })?;
        }
        if let Ok(c) = std::env::var(RECORD_COMMAND_ENV)
            && !c.trim().is_empty()
        {
            config.record_command = c;
        }
        config.debug = env_flag(DEBUG_ENV);
        config.record_errors = env_flag(keep::RECORD_ERRORS_ENV);
        Ok(Some(config))
    }
}

/// Whether a yes/no variable says yes (`1`, `true`, `yes`, any case).
fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name)
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str(),
        "1" | "true" | "yes"
    )
}

/// `recordings/` at the root of the Cargo workspace the current directory belongs to
/// (or of the current directory when there is none).
pub fn default_recordings_dir() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    workspace_root(&cwd).join("recordings")
}

/// The nearest directory at or above `start` whose `Cargo.toml` declares a `[workspace]` (the
/// root of the workspace `start` belongs to), else `start`.
pub fn workspace_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map_or_else(|| start.to_path_buf(), Path::to_path_buf)
}

/// The store for `dir`, shared by every recorder of the process: opening a store lists and checks
/// the whole directory, which a process that builds many recorders (one stack per test) should
/// pay once, not once per test.
fn shared_store(dir: &Path) -> Result<Arc<Store>, RecorderError> {
    use std::sync::Weak;
    static OPEN: Mutex<Vec<(PathBuf, Weak<Store>)>> = Mutex::new(Vec::new());
    let key = std::fs::create_dir_all(dir)
        .and_then(|()| dir.canonicalize())
        .map_err(|e| RecorderError::io(dir, e))?;
    let mut open = lock(&OPEN);
    open.retain(|(_, w)| w.strong_count() > 0);
    if let Some(store) = open
        .iter()
        .find(|(d, _)| *d == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(store);
    }
    let store = Arc::new(Store::open(&key)?);
    open.push((key, Arc::downgrade(&store)));
    Ok(store)
}

/// The record/replay middleware. Cheap to clone; clones share the store and counters.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Inner>,
}

/// Test id -> (execution nonce being counted, base key -> next occurrence).
type Occurrences = HashMap<String, (String, HashMap<String, u32>)>;

#[derive(Debug)]
struct Inner {
    config: RecorderConfig,
    store: Option<Arc<Store>>,
    /// Per test id: the execution (run nonce) being counted and its counters. A new execution of
    /// a test resets them, so the map never grows past the number of distinct tests.
    occurrences: Mutex<Occurrences>,
}

impl Recorder {
    /// A recorder with an explicit configuration. Opens (and repairs) the store unless the mode
    /// is `live`.
    pub fn new(config: RecorderConfig) -> Result<Self, RecorderError> {
        let store = match config.mode {
            Mode::Live => None,
            _ => Some(shared_store(&config.dir)?),
        };
        Ok(Recorder {
            inner: Arc::new(Inner {
                config,
                store,
                occurrences: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The recorder the environment asks for, or `None` when `LLAMA_STACK_TEST_INFERENCE_MODE`
    /// is unset.
    pub fn from_env() -> Result<Option<Self>, RecorderError> {
        RecorderConfig::from_env()?.map(Recorder::new).transpose()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.config.mode
    }

    /// The configuration.
    pub fn config(&self) -> &RecorderConfig {
        &self.inner.config
    }

    /// The store (none in `live` mode).
    pub fn store(&self) -> Option<&Store> {
        self.inner.store.as_deref()
    }

    /// Occurrence index of a request: counted per test execution; calls outside a test are
    /// always occurrence 0 (shared by everyone).
    fn occurrence(&self, ctx: Option<&TestContext>, canonical: &CanonicalRequest) -> u32 {
        let Some(ctx) = ctx else { return 0 };
        // A client that sends only `__test_id` (Llama Stack's own clients) gives no way to tell
        // one execution of a test from the next: such calls get Llama Stack's semantics, where
        // identical requests in a test share one recording.
        if ctx.run().is_empty() {
            return 0;
        }
        let mut map = lock(&self.inner.occurrences);
        let (run, counters) = map.entry(ctx.test_id().to_owned()).or_default();
        if run != ctx.run() {
            *run = ctx.run().to_owned();
            counters.clear();
        }
        let n = counters.entry(canonical.base_key()).or_insert(0);
        let current = *n;
        *n += 1;
        current
    }

    fn replay(
        &self,
        hash: &str,
        rec: &format::Replayable,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let format::RequestLine { method, path } = &rec.request;
        let blob = self.store().map(|s| s.blob_path(hash)).unwrap_or_default();
        let bad = |reason: String| {
            reqwest_middleware::Error::middleware(RecorderError::BadRecording {
                path: blob.clone(),
                reason,
            })
        };
        match &rec.response {
            RecordedResponse::Http {
                status,
                headers,
                body,
                ..
            } => build_response(
                &blob,
                *status,
                headers,
                reqwest::Body::from(body.to_bytes().map_err(bad)?),
            ),
            RecordedResponse::Stream {
                status,
                headers,
                events,
                end,
            } => {
                let paced = self.inner.config.timing == ReplayTiming::Recorded;
                let s = stream::replay(events, end, paced).map_err(bad)?;
                build_response(&blob, *status, headers, reqwest::Body::wrap_stream(s))
            }
            RecordedResponse::TransportError {
                error_kind,
                message,
            } => Err(reqwest_middleware::Error::middleware(
                RecordedTransportError {
                    kind: *error_kind,
                    message: message.clone(),
                    method: method.clone(),
                    url: path.clone(),
                },
            )),
        }
    }
}

fn build_response(
    blob: &std::path::Path,
    status: u16,
    headers: &std::collections::BTreeMap<String, String>,
    body: reqwest::Body,
) -> reqwest_middleware::Result<reqwest::Response> {
    let mut builder = http::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let resp = builder.body(body).map_err(|e| {
        reqwest_middleware::Error::middleware(RecorderError::BadRecording {
            path: blob.to_path_buf(),
            reason: format!("cannot rebuild the response: {e}"),
        })
    })?;
    Ok(reqwest::Response::from(resp))
}

/// A response builder with the provider's status and headers. A buffered body is handed back
/// whole, so its `content-length` is left to the new body; a stream keeps every header.
fn response_builder(
    resp: &reqwest::Response,
    status: u16,
    keep_length: bool,
) -> http::response::Builder {
    let mut builder = http::Response::builder().status(status);
    for (k, v) in resp.headers() {
        if keep_length || k != http::header::CONTENT_LENGTH {
            builder = builder.header(k, v);
        }
    }
    builder
}

/// Records a request that got no response (refused, timed out, broken body) as the same error,
/// when the policy keeps failures ([`keep`]).
fn record_failure(
    store: &Store,
    policy: keep::KeepPolicy,
    draft: Draft,
    kind: TransportKind,
    message: &str,
) -> reqwest_middleware::Result<()> {
    let message = draft.sanitize_text(message);
    let rec = draft.into_recording(RecordedResponse::TransportError {
        error_kind: kind,
        message,
    });
    keep::keep(store, policy, &rec).map_err(reqwest_middleware::Error::middleware)
}

/// Bodies at least this large are canonicalized on a blocking thread.
const BLOCKING_BODY_BYTES: usize = 256 * 1024;

/// The canonical form of a large request, with its body's key text computed, on a blocking
/// thread (parsing, normalizing and serializing a body takes milliseconds a megabyte, which must
/// not hold the async workers).
async fn canonicalize_off_workers(
    method: String,
    url: url::Url,
    body: Option<Vec<u8>>,
    test_id: Option<String>,
    rules: Rules,
    provider: Option<String>,
) -> CanonicalRequest {
    let make = move |body: Option<Vec<u8>>| {
        let canonical =
            CanonicalRequest::new(&method, &url, body.as_deref(), test_id.as_deref(), &rules)
                .with_provider(provider.as_deref());
        // Computes (and keeps) the body's part of the key.
        let _ = canonical.base_key();
        canonical
    };
    let (make_there, body_there) = (make.clone(), body.clone());
    match tokio::task::spawn_blocking(move || make_there(body_there)).await {
        Ok(canonical) => canonical,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled (the runtime is shutting down): here, then.
        Err(_) => make(body),
    }
}

/// The [`ReplayMiss`] of a request, computed on a blocking thread when a tokio runtime runs
/// (reading nearby recordings and diffing them must not hold an async worker, whatever the
/// body's size; its time is bounded too, see [`miss`]).
async fn explain_miss(
    store: Arc<Store>,
    canonical: CanonicalRequest,
    hash: String,
    occurrence: u32,
    record_command: String,
) -> ReplayMiss {
    if tokio::runtime::Handle::try_current().is_err() {
        return ReplayMiss::new(&store, &canonical, hash, occurrence, &record_command);
    }
    let fallback = (canonical.clone(), hash.clone());
    let explained = tokio::task::spawn_blocking(move || {
        ReplayMiss::new(&store, &canonical, hash, occurrence, &record_command)
    })
    .await;
    explained.unwrap_or_else(|e| {
        tracing::error!("explaining a replay miss failed: {e}");
        ReplayMiss::without_neighbours(&fallback.0, fallback.1, occurrence)
    })
}

fn transport_kind(e: &reqwest::Error) -> TransportKind {
    if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else if e.is_body() || e.is_decode() {
        TransportKind::Body
    } else {
        TransportKind::Other
    }
}

#[async_trait::async_trait]
impl Middleware for Recorder {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let config = &self.inner.config;
        let Some(store) = self.inner.store.clone() else {
            return next.run(req, extensions).await;
        };
        let ctx = TestContext::current();
        let url = req.url().clone();
        let method = req.method().as_str().to_owned();
        let body: Option<Vec<u8>> = match req.body() {
            None => None,
            Some(b) => match b.as_bytes() {
                Some(bytes) => Some(bytes.to_vec()),
                None => {
                    return Err(reqwest_middleware::Error::middleware(
                        RecorderError::StreamingRequestBody {
                            request: format!("{method} {}", url.path()),
                        },
                    ));
                }
            },
        };
        let provider = extensions.get::<ProviderLabel>().map(|l| l.0.clone());
        let test_id = ctx.as_ref().map(TestContext::test_id);
        let large = body
            .as_ref()
            .is_some_and(|b| b.len() >= BLOCKING_BODY_BYTES);
        // The common case borrows everything; only a large body is copied to a blocking thread.
        let canonical = if large && tokio::runtime::Handle::try_current().is_ok() {
            canonicalize_off_workers(
                method.clone(),
                url.clone(),
                body.clone(),
                test_id.map(str::to_owned),
                config.rules.clone(),
                provider,
            )
            .await
        } else {
            CanonicalRequest::new(&method, &url, body.as_deref(), test_id, &config.rules)
                .with_provider(provider.as_deref())
        };
        let occurrence = self.occurrence(ctx.as_ref(), &canonical);
        let hash = canonical.key(occurrence);
        if config.debug {
            tracing::info!(target: "harness::recorder", "[RECORDING DEBUG] mode={} hash={hash} key={}", config.mode, canonical.key_text(occurrence));
        }
        if config.mode.reads_recordings() {
            match store.get_replayable(&hash) {
                Ok(Some(rec)) => return self.replay(&hash, &rec),
                Ok(None) => {}
                Err(e) => return Err(reqwest_middleware::Error::middleware(e)),
            }
        }
        if !config.mode.may_call_provider() {
            let miss = explain_miss(
                store,
                canonical,
                hash,
                occurrence,
                config.record_command.clone(),
            )
            .await;
            return Err(reqwest_middleware::Error::middleware(miss));
        }
        // Single flight: in record-if-missing, one recorder at a time (across processes) records
        // a missing key; one that waited finds the recording made meanwhile and replays it.
        let lock = if config.mode == Mode::RecordIfMissing {
            let lock = store
                .lock_key(&hash)
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            match store.get_replayable(&hash) {
                Ok(Some(rec)) => {
                    drop(lock);
                    return self.replay(&hash, &rec);
                }
                Ok(None) => Some(lock),
                Err(e) => return Err(reqwest_middleware::Error::middleware(e)),
            }
        } else {
            None
        };
        let draft = Draft::new(
            hash,
            occurrence,
            &canonical,
            &url,
            req.headers(),
            body.as_deref(),
        );
        let policy = keep::KeepPolicy {
            mode: config.mode,
            record_errors: config.record_errors,
        };
        let started = Instant::now();
        let resp = match next.run(req, extensions).await {
            Ok(r) => r,
            Err(e) => {
                let (kind, message) = match &e {
                    reqwest_middleware::Error::Reqwest(re) => (transport_kind(re), error_chain(re)),
                    reqwest_middleware::Error::Middleware(me) => {
                        (TransportKind::Other, format!("{me:#}"))
                    }
                };
                record_failure(&store, policy, draft, kind, &message)?;
                return Err(e);
            }
        };
        let status = resp.status().as_u16();
        let headers = draft.response_headers(resp.headers());
        let framing = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Framing::for_content_type);
        if let Some(framing) = framing {
            let builder = response_builder(&resp, status, true);
            let sink = stream::StreamSink {
                store,
                draft,
                status,
                headers,
                policy,
                _lock: lock,
            };
            let upstream = resp.bytes_stream().boxed();
            let recording = stream::RecordingStream::new(upstream, framing, started, sink);
            let out = builder
                .body(reqwest::Body::wrap_stream(recording))
                .map_err(reqwest_middleware::Error::middleware)?;
            return Ok(reqwest::Response::from(out));
        }
        let builder = response_builder(&resp, status, false);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                record_failure(&store, policy, draft, transport_kind(&e), &error_chain(&e))?;
                return Err(reqwest_middleware::Error::Reqwest(e));
            }
        };
        let t_ms = format::ms_since(started);
        let stored_body = Body::from_bytes(&bytes, |t| draft.sanitize_text(t));
        let rec = draft.into_recording(RecordedResponse::Http {
            status,
            headers,
            body: stored_body,
            t_ms,
        });
        keep::keep(&store, policy, &rec).map_err(reqwest_middleware::Error::middleware)?;
        let out = builder
            .body(reqwest::Body::from(bytes))
            .map_err(reqwest_middleware::Error::middleware)?;
        Ok(reqwest::Response::from(out))
    }
}
