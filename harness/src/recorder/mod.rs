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
//! and [`miss`] explains a replay miss. What belongs to the adopting project (variable names,
//! header lists, the index field, the rule set) comes from its [`Profile`](crate::profile::Profile)
//! ([`RecorderConfig::with_profile`], [`Recorder::from_env_with`]); `new` and `from_env` use
//! Llama Stack's.

mod blob_watch;
pub mod canonical;
mod draft;
mod error;
pub mod format;
pub mod framing;
mod jcs;
pub mod keep;
mod key_memo;
mod layout;
pub mod miss;
pub mod mode;
pub mod normalize;
pub mod redact;
mod replay_cache;
pub mod store;
mod stream;

use reqwest::ResponseBuilderExt as _;
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
use framing::Framing;
pub use miss::ReplayMiss;
use mode::Plan;
pub use mode::{MODE_ENV, Mode};
pub use normalize::{Rule, Rules};
pub use store::Store;
pub use stream::StreamFailure;

// Llama Stack's variable names, where its users find them; a profile names its own
// ([`crate::profile::EnvNames`]).
use crate::profile::Profile;
pub use crate::profile::llama_stack::{
    DEBUG_ENV, RECORD_COMMAND_ENV, RECORDING_DIR_ENV, REPLAY_TIMING_ENV,
};

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

impl ReplayTiming {
    /// The timing `s` names, read from the variable `var`; the error says what was expected.
    fn parse(var: &str, s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "instant" => Ok(ReplayTiming::Instant),
            "recorded" => Ok(ReplayTiming::Recorded),
            other => Err(format!(
                "invalid {var}={other:?}: expected instant (default) or recorded"
            )),
        }
    }
}

impl std::str::FromStr for ReplayTiming {
    type Err = String;
    /// Parses a timing name; the error names Llama Stack's [`REPLAY_TIMING_ENV`].
    fn from_str(s: &str) -> Result<Self, String> {
        ReplayTiming::parse(REPLAY_TIMING_ENV, s)
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
    /// ([`EnvNames::record_errors`](crate::profile::EnvNames::record_errors)); by default they
    /// are not stored.
    pub record_errors: bool,
    /// The adopting project's names, header lists, index field and rules.
    pub profile: Profile,
}

impl RecorderConfig {
    /// A configuration with the given mode and directory under Llama Stack's profile
    /// ([`RecorderConfig::with_profile`]).
    pub fn new(mode: Mode, dir: impl Into<PathBuf>) -> Result<Self, RecorderError> {
        RecorderConfig::with_profile(Profile::llama_stack(), mode, dir)
    }

    /// A configuration with the given profile, mode and directory: the profile's rules plus the
    /// directory's `normalization.toml`, instant replay and the profile's record command.
    ///
    /// ```
    /// use harness::profile::Profile;
    /// use harness::recorder::{Mode, RecorderConfig};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = RecorderConfig::with_profile(Profile::llama_stack(), Mode::Replay, dir.path())?;
    /// assert_eq!(config.mode, Mode::Replay);
    /// assert!(config.record_command.contains("{test_id}"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_profile(
        profile: Profile,
        mode: Mode,
        dir: impl Into<PathBuf>,
    ) -> Result<Self, RecorderError> {
        let dir = dir.into();
        Ok(RecorderConfig {
            mode,
            rules: Rules::for_recordings_dir_with(&dir, profile.rules)?,
            dir,
            timing: ReplayTiming::Instant,
            record_command: profile.default_record_command.to_owned(),
            debug: false,
            record_errors: false,
            profile,
        })
    }

    /// Reads the configuration from the environment under Llama Stack's profile; `Ok(None)`
    /// when `LLAMA_STACK_TEST_INFERENCE_MODE` is unset (no recorder).
    pub fn from_env() -> Result<Option<Self>, RecorderError> {
        RecorderConfig::from_env_with(Profile::llama_stack())
    }

    /// Reads the configuration from the profile's environment variables; `Ok(None)` when its
    /// mode variable is unset (no recorder).
    pub fn from_env_with(profile: Profile) -> Result<Option<Self>, RecorderError> {
        let env = profile.env;
        let Some(mode) = Mode::from_env_var(env.mode)? else {
            return Ok(None);
        };
        let dir = match std::env::var_os(env.recording_dir) {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => default_recordings_dir(),
        };
        let mut config = RecorderConfig::with_profile(profile, mode, dir)?;
        if let Ok(t) = std::env::var(env.replay_timing) {
            config.timing = ReplayTiming::parse(env.replay_timing, &t).map_err(|reason| {
                RecorderError::InvalidSetting {
                    name: env.replay_timing.into(),
                    reason,
                }
            })?;
        }
        if let Ok(c) = std::env::var(env.record_command)
            && !c.trim().is_empty()
        {
            config.record_command = c;
        }
        config.debug = env_flag(env.debug);
        config.record_errors = env_flag(env.record_errors);
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
///
/// Record a call, then replay it with the provider gone (see `harness/examples/weather.rs` for
/// the whole story, with a project profile and a provider of its own):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use harness::context::TestContext;
/// use harness::recorder::{Mode, Recorder, RecorderConfig};
///
/// let dir = tempfile::tempdir()?;
/// let replaying = Recorder::new(RecorderConfig::new(Mode::Replay, dir.path())?)?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(replaying.clone())
///     .build();
/// // Nothing is recorded yet: in replay mode the call fails with a miss, without any network.
/// let call = client.get("http://127.0.0.1:9/v1/models").send();
/// let err = TestContext::new("doc::recorder").scope(call).await.unwrap_err();
/// assert!(err.to_string().contains("Recording not found"));
/// assert_eq!(replaying.mode(), Mode::Replay);
/// # Ok(()) }
/// ```
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
    /// Canonical forms of requests already keyed ([`key_memo`]).
    key_memo: key_memo::KeyMemo,
}

impl Recorder {
    /// A recorder with an explicit configuration. Opens (and repairs) the store unless the mode
    /// is `live`.
    pub fn new(config: RecorderConfig) -> Result<Self, RecorderError> {
        let store = if config.mode.uses_store() {
            Some(shared_store(&config.dir)?)
        } else {
            None
        };
        Ok(Recorder {
            inner: Arc::new(Inner {
                config,
                store,
                occurrences: Mutex::new(HashMap::new()),
                key_memo: key_memo::KeyMemo::default(),
            }),
        })
    }

    /// The recorder the environment asks for, or `None` when `LLAMA_STACK_TEST_INFERENCE_MODE`
    /// is unset (Llama Stack's profile).
    pub fn from_env() -> Result<Option<Self>, RecorderError> {
        RecorderConfig::from_env()?.map(Recorder::new).transpose()
    }

    /// The recorder the profile's environment variables ask for, or `None` when its mode
    /// variable is unset.
    pub fn from_env_with(profile: Profile) -> Result<Option<Self>, RecorderError> {
        RecorderConfig::from_env_with(profile)?
            .map(Recorder::new)
            .transpose()
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

    /// The recorded answer to the request for `url`, as a response from `url`.
    fn replay(
        &self,
        hash: &str,
        rec: &format::Replayable,
        url: &url::Url,
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
                url,
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
                build_response(&blob, url, *status, headers, reqwest::Body::wrap_stream(s))
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

/// A response from `url` (what `Response::url` tells; reqwest would otherwise parse a
/// placeholder URL for every response built by hand).
fn build_response(
    blob: &std::path::Path,
    url: &url::Url,
    status: u16,
    headers: &std::collections::BTreeMap<String, String>,
    body: reqwest::Body,
) -> reqwest_middleware::Result<reqwest::Response> {
    let mut builder = http::Response::builder().status(status).url(url.clone());
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
    let mut builder = http::Response::builder()
        .status(status)
        .url(resp.url().clone());
    for (k, v) in resp.headers() {
        if keep_length || k != http::header::CONTENT_LENGTH {
            builder = builder.header(k, v);
        }
    }
    builder
}

/// Records a request that got no response (refused, timed out, broken body) as the same error,
/// when the policy keeps failures ([`keep`]).
async fn record_failure(
    keeper: keep::Keeper,
    draft: Draft,
    large: bool,
    kind: TransportKind,
    message: &str,
) -> reqwest_middleware::Result<()> {
    let message = draft.sanitize_text(message);
    let rec = draft.into_recording(RecordedResponse::TransportError {
        error_kind: kind,
        message,
    });
    keep_recording(keeper, rec, large)
        .await
        .map_err(reqwest_middleware::Error::middleware)
}

/// [`keep::Keeper::keep`]s `rec`. A large one is written on a blocking thread (serializing,
/// writing and syncing megabytes must not hold an async worker), then freed on another: a tree
/// of thousands of allocations takes milliseconds to free, which the caller need not wait for.
/// The key's lock goes along: it is held until the recording is written, even if the caller
/// stops waiting meanwhile.
async fn keep_recording(
    keeper: keep::Keeper,
    rec: format::Recording,
    large: bool,
) -> Result<(), RecorderError> {
    if !(large && in_runtime()) {
        return keeper.keep(&rec);
    }
    let (kept, rec) = off_workers(move || (keeper.keep(&rec), rec)).await?;
    drop(tokio::task::spawn_blocking(move || drop(rec)));
    kept
}

/// Bodies at least this large are canonicalized on a blocking thread.
const BLOCKING_BODY_BYTES: usize = 256 * 1024;

/// Whether a request body is large enough to be keyed and drafted on a blocking thread.
fn is_large(body: Option<&[u8]>) -> bool {
    body.is_some_and(|b| b.len() >= BLOCKING_BODY_BYTES)
}

/// Whether a tokio runtime runs here (blocking threads are then at hand).
fn in_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Runs `work` on a blocking thread (parsing, normalizing and serializing a large body takes
/// milliseconds a megabyte, which must not hold the async workers); a panic there is resumed
/// here. When the runtime is shutting down and refuses blocking work, `work` runs here instead.
async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RecorderError> {
    // Held where both sides can take it: a blocking task cancelled before it started gives its
    // work back.
    let slot = Arc::new(Mutex::new(Some(work)));
    let there = slot.clone();
    let done = tokio::task::spawn_blocking(move || lock(&there).take().map(|work| work())).await;
    match done {
        Ok(Some(done)) => Ok(done),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the work never started.
        Ok(None) | Err(_) => lock(&slot)
            .take()
            .map(|work| work())
            .ok_or(RecorderError::ShuttingDown),
    }
}

/// The [`ReplayMiss`] of a request, computed on a blocking thread when a tokio runtime runs
/// (reading nearby recordings and diffing them must not hold an async worker, whatever the
/// body's size; its time is bounded too, see [`miss`]).
async fn explain_miss(
    store: Arc<Store>,
    canonical: Arc<CanonicalRequest>,
    hash: String,
    occurrence: u32,
    record_command: String,
    index_field: &'static str,
) -> ReplayMiss {
    let fallback = (canonical.clone(), hash.clone());
    let explain = move || {
        ReplayMiss::new(
            &store,
            &canonical,
            hash,
            occurrence,
            &record_command,
            index_field,
        )
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return explain();
    }
    let explained = tokio::task::spawn_blocking(explain).await;
    explained.unwrap_or_else(|e| {
        tracing::error!("explaining a replay miss failed: {e}");
        ReplayMiss::without_neighbours(&fallback.0, fallback.1, occurrence, index_field)
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

/// A request's key: its canonical form, its occurrence in the test, and the key hash; with the
/// buffered body it was computed from.
struct Keyed {
    canonical: Arc<CanonicalRequest>,
    occurrence: u32,
    hash: String,
    body: Option<BufferedBody>,
}

/// A request's buffered body: a small one copied, a large one shared with the request
/// (reqwest keeps it as reference-counted bytes; copying a 4 MB body cost a millisecond and a
/// thousand page faults, while sharing clones the whole request, which costs a small body more
/// than its copy).
enum BufferedBody {
    Copied(Vec<u8>),
    Shared(reqwest::Body),
}

impl BufferedBody {
    /// The body's bytes.
    fn bytes(&self) -> &[u8] {
        match self {
            BufferedBody::Copied(bytes) => bytes,
            BufferedBody::Shared(body) => body.as_bytes().unwrap_or_default(),
        }
    }
}

/// The buffered body of a request; a streaming body cannot be keyed.
fn buffered_body(req: &reqwest::Request) -> reqwest_middleware::Result<Option<BufferedBody>> {
    let Some(body) = req.body() else {
        return Ok(None);
    };
    let Some(bytes) = body.as_bytes() else {
        return Err(reqwest_middleware::Error::middleware(
            RecorderError::StreamingRequestBody {
                request: format!("{} {}", req.method().as_str(), req.url().path()),
            },
        ));
    };
    if !is_large(Some(bytes)) {
        return Ok(Some(BufferedBody::Copied(bytes.to_vec())));
    }
    // A request with a buffered body always clones, its body by reference.
    Ok(Some(
        match req.try_clone().and_then(|mut copy| copy.body_mut().take()) {
            Some(shared) => BufferedBody::Shared(shared),
            None => BufferedBody::Copied(bytes.to_vec()),
        },
    ))
}

impl Recorder {
    /// Keys a request: canonical form (on a blocking thread when the body is large), occurrence
    /// in the current test, hash.
    async fn key(
        &self,
        method: &str,
        url: &url::Url,
        body: Option<BufferedBody>,
        provider: Option<String>,
        ctx: Option<&TestContext>,
    ) -> Result<Keyed, RecorderError> {
        let config = &self.inner.config;
        let test_id = ctx.map(TestContext::test_id);
        // Replay only looks the key up: the body's secret values serve recordings only.
        let for_recording = config.mode != Mode::Replay;
        // The common case borrows everything; only a large body goes to a blocking thread.
        let (canonical, body) = if is_large(body.as_ref().map(BufferedBody::bytes)) && in_runtime()
        {
            let (method, url, rules) = (method.to_owned(), url.clone(), config.rules.clone());
            let test_id = test_id.map(str::to_owned);
            off_workers(move || {
                let canonical = CanonicalRequest::keyed(
                    &method,
                    &url,
                    body.as_ref().map(BufferedBody::bytes),
                    test_id.as_deref(),
                    &rules,
                    for_recording,
                )
                .with_provider(provider.as_deref());
                // Computes (and keeps) the body's part of the key.
                let _ = canonical.base_key();
                (Arc::new(canonical), body)
            })
            .await?
        } else {
            let make = || {
                CanonicalRequest::keyed(
                    method,
                    url,
                    body.as_ref().map(BufferedBody::bytes),
                    test_id,
                    &config.rules,
                    for_recording,
                )
                .with_provider(provider.as_deref())
            };
            let inputs = key_memo::Inputs::of(
                method,
                url,
                body.as_ref().map(BufferedBody::bytes),
                test_id,
                provider.as_deref(),
                for_recording,
            );
            let canonical = match inputs {
                Some(inputs) => self.inner.key_memo.get_or_make(inputs, make),
                None => Arc::new(make()),
            };
            (canonical, body)
        };
        let occurrence = self.occurrence(ctx, &canonical);
        let hash = canonical.key(occurrence);
        if config.debug {
            tracing::info!(target: "harness::recorder", "[RECORDING DEBUG] mode={} hash={hash} key={}", config.mode, canonical.key_text(occurrence));
        }
        Ok(Keyed {
            canonical,
            occurrence,
            hash,
            body,
        })
    }

    /// The request half of the recording of a keyed request (on a blocking thread when the
    /// body is large: it is scrubbed as text and its canonical value sorted).
    async fn draft(
        &self,
        keyed: Keyed,
        url: url::Url,
        headers: http::HeaderMap,
    ) -> Result<Draft, RecorderError> {
        let profile = self.inner.config.profile;
        let large = is_large(keyed.body.as_ref().map(BufferedBody::bytes));
        let make = move || {
            let mut draft = Draft::new(
                keyed.hash,
                keyed.occurrence,
                keyed.canonical,
                &url,
                &headers,
                keyed.body.as_ref().map(BufferedBody::bytes),
                &profile,
            );
            if large {
                draft.lay_out_request();
            }
            draft
        };
        if large && in_runtime() {
            off_workers(make).await
        } else {
            Ok(make())
        }
    }

    /// [`Recorder::forward_and_store`] for a request keyed before it is sent: its draft is made
    /// while the provider works.
    async fn forward_and_store_keyed(
        &self,
        store: Arc<Store>,
        keyed: Keyed,
        lock: Option<store::KeyLock>,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let large = is_large(keyed.body.as_ref().map(BufferedBody::bytes));
        let drafting = self.draft(keyed, req.url().clone(), req.headers().clone());
        self.forward_and_store(store, drafting, large, lock, req, extensions, next)
            .await
    }

    /// Forwards the request to the provider and hands the answer back, storing it (whole, or as
    /// the stream ends) as the [`keep`] policy says. The request half of the recording is
    /// `drafting` while the provider works; `lock` is the key's recording lock, held until the
    /// recording is written.
    #[allow(clippy::too_many_arguments)]
    async fn forward_and_store(
        &self,
        store: Arc<Store>,
        drafting: impl std::future::Future<Output = Result<Draft, RecorderError>> + Send,
        large: bool,
        lock: Option<store::KeyLock>,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let config = &self.inner.config;
        let keeper = keep::Keeper {
            store,
            policy: keep::KeepPolicy {
                mode: config.mode,
                record_errors: config.record_errors,
                record_errors_env: config.profile.env.record_errors,
            },
            lock,
        };
        let sending = async {
            // Timed from here: a small request's draft is made in the first poll of `drafting`,
            // before this one's.
            let started = Instant::now();
            let sent = next.run(req, extensions).await;
            (sent, started, Instant::now())
        };
        let (draft, (sent, started, answered)) = tokio::join!(drafting, sending);
        let draft = draft.map_err(reqwest_middleware::Error::middleware)?;
        // The provider's clock: a wait for the draft after the answer came is not its time.
        let started = started + answered.elapsed();
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let (kind, message) = match &e {
                    reqwest_middleware::Error::Reqwest(re) => (transport_kind(re), error_chain(re)),
                    reqwest_middleware::Error::Middleware(me) => {
                        (TransportKind::Other, format!("{me:#}"))
                    }
                };
                record_failure(keeper, draft, large, kind, &message).await?;
                return Err(e);
            }
        };
        let status = resp.status().as_u16();
        let headers = draft.response_headers(resp.headers(), config.profile.response_headers);
        let framing = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Framing::for_content_type);
        if let Some(framing) = framing {
            let builder = response_builder(&resp, status, true);
            let sink = stream::StreamSink {
                keeper,
                draft,
                status,
                headers,
                large,
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
                record_failure(keeper, draft, large, transport_kind(&e), &error_chain(&e)).await?;
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
        keep_recording(keeper, rec, large)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let out = builder
            .body(reqwest::Body::from(bytes))
            .map_err(reqwest_middleware::Error::middleware)?;
        Ok(reqwest::Response::from(out))
    }
}

#[async_trait::async_trait]
impl Middleware for Recorder {
    /// Keys the request, asks [`mode::plan`] what to do, and does it.
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let mode = self.inner.config.mode;
        // Without a store (`live`) every plan is `Forward`: nothing is keyed.
        let Some(store) = self.inner.store.clone() else {
            return next.run(req, extensions).await;
        };
        let body = buffered_body(&req)?;
        let provider = extensions.get::<ProviderLabel>().map(|l| l.0.clone());
        let ctx = TestContext::current();
        if !mode.reads_recordings() {
            // No lookup: nothing needs the key before the provider is called, so the request
            // is keyed and drafted while the provider works (keying a large body takes as long
            // as a fast provider's answer).
            return match mode::plan::<()>(mode, None) {
                Plan::ForwardAndStore => {
                    let large = is_large(body.as_ref().map(BufferedBody::bytes));
                    let (method, url) = (req.method().clone(), req.url().clone());
                    let headers = req.headers().clone();
                    let drafting = async {
                        let keyed = self
                            .key(method.as_str(), &url, body, provider, ctx.as_ref())
                            .await?;
                        self.draft(keyed, url.clone(), headers).await
                    };
                    self.forward_and_store(store, drafting, large, None, req, extensions, next)
                        .await
                }
                _ => next.run(req, extensions).await,
            };
        }
        let keyed = self
            .key(
                req.method().as_str(),
                req.url(),
                body,
                provider,
                ctx.as_ref(),
            )
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let recorded = store
            .get_replayable(&keyed.hash)
            .map_err(reqwest_middleware::Error::middleware)?;
        match mode::plan(mode, recorded) {
            Plan::Forward => next.run(req, extensions).await,
            Plan::Replay(rec) => self.replay(&keyed.hash, &rec, req.url()),
            Plan::Miss => {
                let Keyed {
                    canonical,
                    occurrence,
                    hash,
                    ..
                } = keyed;
                let config = &self.inner.config;
                let command = config.record_command.clone();
                let field = config.profile.index_field;
                let miss = explain_miss(store, canonical, hash, occurrence, command, field).await;
                Err(reqwest_middleware::Error::middleware(miss))
            }
            Plan::RecordIfMissing => {
                let lock = store
                    .lock_key(&keyed.hash)
                    .await
                    .map_err(reqwest_middleware::Error::middleware)?;
                // One that waited for the lock finds the recording made meanwhile.
                match store
                    .get_replayable(&keyed.hash)
                    .map_err(reqwest_middleware::Error::middleware)?
                {
                    Some(rec) => {
                        drop(lock);
                        self.replay(&keyed.hash, &rec, req.url())
                    }
                    None => {
                        self.forward_and_store_keyed(
                            store,
                            keyed,
                            Some(lock),
                            req,
                            extensions,
                            next,
                        )
                        .await
                    }
                }
            }
            Plan::ForwardAndStore => {
                self.forward_and_store_keyed(store, keyed, None, req, extensions, next)
                    .await
            }
        }
    }
}
