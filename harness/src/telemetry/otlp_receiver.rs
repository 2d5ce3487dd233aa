//! Server mode: an OTLP/HTTP receiver on loopback that the server under test exports to, with a
//! small JSON read API on the same port for test processes other than the one that runs it (see
//! [`RemoteCapture`](super::RemoteCapture)).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::convert;
use super::model::{CapturedSpan, MetricsSnapshot};
use super::store::{MetricStore, lock};
use super::{TelemetryError, unix_nanos_now};

/// Request bodies up to this size are accepted (exporters batch up to 512 spans by default).
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// At most this many decode errors are kept for diagnostics.
const MAX_ERRORS: usize = 20;

/// Read API: the spans received (`GET`, JSON array of [`CapturedSpan`] in arrival order; query
/// `from=N` skips the first `N`, `trace_id=T` keeps one trace's). The response headers
/// [`SPANS_TOTAL_HEADER`] and [`RECEIVER_ID_HEADER`] give the number of spans stored and the
/// receiver's identity.
pub const SPANS_PATH: &str = "/harness/v1/spans";
/// Read API: the metric totals received (`GET`, JSON [`RemoteMetrics`]: a [`MetricsSnapshot`]
/// plus the export counter and the latest collection time).
pub const METRICS_PATH: &str = "/harness/v1/metrics";
/// Read API: counters and diagnostics (`GET`, JSON [`ReceiverStatus`]).
pub const STATUS_PATH: &str = "/harness/v1/status";
/// Response header of [`SPANS_PATH`]: how many spans the receiver holds in all.
pub const SPANS_TOTAL_HEADER: &str = "x-harness-spans-total";
/// Response header of [`SPANS_PATH`]: the receiver's identity ([`ReceiverStatus::receiver_id`]).
pub const RECEIVER_ID_HEADER: &str = "x-harness-receiver-id";

/// The body of `GET /harness/v1/metrics`: the receiver's current totals (the `metrics` field, so
/// the body also reads as a plain [`MetricsSnapshot`]) and what a waiter needs to tell that an
/// export newer than a given moment has arrived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteMetrics {
    /// The totals per metric series received so far ([`OtlpReceiver::metrics`]).
    #[serde(flatten)]
    pub snapshot: MetricsSnapshot,
    /// How many metric exports have been received.
    pub exports: u64,
    /// The latest collection time (`time_unix_nano`, nanoseconds since the Unix epoch) of any
    /// data point received; 0 before the first.
    pub latest_collection_unix_nano: u64,
}

/// The body of `GET /harness/v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverStatus {
    /// Identifies this receiver instance (pid and start time): a client caching spans notices
    /// when another receiver answers on the same address.
    pub receiver_id: String,
    /// The OTLP endpoint ([`OtlpReceiver::endpoint`]), also the base URL of the read API.
    pub endpoint: String,
    /// How many export requests (of any signal) arrived, decodable or not.
    pub requests: u64,
    /// The requests that could not be decoded (the first few), as messages.
    pub errors: Vec<String>,
    /// How many spans are stored.
    pub spans: u64,
    /// How many metric exports have been received.
    pub metric_exports: u64,
    /// The latest collection time of any metric data point received (0 before the first).
    pub latest_collection_unix_nano: u64,
}

/// The batch span processor's schedule delay that [`OtlpReceiver::env`] gives a server
/// (`OTEL_BSP_SCHEDULE_DELAY`): a span reaches the receiver about this long after it ended (plus
/// one export), in the order the spans ended (one exporting thread, one batch at a time).
///
/// A test that waits for spans waits for exactly the spans it asserts on (one that ends later,
/// such as a server span ending after its GenAI child, can come in a later batch); a test that
/// checks that a span does not come must wait some multiple of this.
pub const SPAN_SCHEDULE_DELAY: Duration = Duration::from_millis(20);
/// The periodic metric reader's interval that [`OtlpReceiver::env`] gives a server
/// (`OTEL_METRIC_EXPORT_INTERVAL`): [`Capture::metrics_baseline`](super::Capture::metrics_baseline)
/// and [`Capture::metrics_delta_since`](super::Capture::metrics_delta_since) each wait for the next
/// export, up to this long.
pub const METRIC_EXPORT_INTERVAL: Duration = Duration::from_millis(50);

/// Environment variables that would override or disable what [`OtlpReceiver::env`] sets, if
/// the server inherited them: remove them from the server's environment.
pub const CONFLICTING_ENV: &[&str] = &[
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_SDK_DISABLED",
];

/// The server-mode backend: an OTLP/HTTP receiver on `127.0.0.1:<random port>`.
///
/// It accepts `POST /v1/traces` and `POST /v1/metrics` as `application/x-protobuf` (what
/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` sends) or `application/json` (`http/json`), plain
/// or `content-encoding: gzip`, and answers 200 with an empty export response; `POST /v1/logs`
/// is accepted and ignored. Bodies it cannot decode get a 400 and are reported in the errors of
/// the waits ([`OtlpReceiver::errors`]).
///
/// It also serves a read API for other processes, as JSON: `GET /harness/v1/spans`,
/// `GET /harness/v1/metrics` and `GET /harness/v1/status` (see [`SPANS_PATH`], [`METRICS_PATH`],
/// [`STATUS_PATH`]); [`Capture::remote`](super::Capture::remote) reads it. It listens on
/// loopback only.
///
/// It runs on a thread of its own, so it outlives the tokio runtimes of individual tests, and
/// stops when the last clone is dropped. Start it before the server, and give the server
/// [`OtlpReceiver::env`].
#[derive(Clone)]
pub struct OtlpReceiver {
    inner: Arc<ReceiverInner>,
}

struct ReceiverInner {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
}

impl Drop for ReceiverInner {
    fn drop(&mut self) {
        if let Some(tx) = lock(&self.shutdown).take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Default)]
struct Shared {
    /// The spans received, in arrival order.
    spans: Mutex<Vec<CapturedSpan>>,
    metrics: Mutex<MetricStore>,
    errors: Mutex<Vec<String>>,
    requests: AtomicU64,
    /// `<pid>-<start time in ns>`: see [`ReceiverStatus::receiver_id`].
    id: String,
    /// `http://127.0.0.1:<port>`.
    endpoint: String,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// Binds `127.0.0.1:0` and starts serving on a dedicated thread. Works from synchronous
    /// code and from inside any tokio runtime.
    pub fn start() -> Result<OtlpReceiver, TelemetryError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(TelemetryError::Bind)?;
        listener
            .set_nonblocking(true)
            .map_err(TelemetryError::Bind)?;
        let addr = listener.local_addr().map_err(TelemetryError::Bind)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TelemetryError::Start)?;
        let shared = Arc::new(Shared {
            id: format!("{}-{}", std::process::id(), unix_nanos_now()),
            endpoint: format!("http://{addr}"),
            ..Shared::default()
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .route("/v1/logs", post(logs))
            .route(SPANS_PATH, get(read_spans))
            .route(METRICS_PATH, get(read_metrics))
            .route(STATUS_PATH, get(read_status))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(shared.clone());
        std::thread::Builder::new()
            .name(format!("otlp-receiver-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .map_err(TelemetryError::Start)?;
        Ok(OtlpReceiver {
            inner: Arc::new(ReceiverInner {
                addr,
                shared,
                shutdown: Mutex::new(Some(tx)),
            }),
        })
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The base URL to export to, e.g. `http://127.0.0.1:43567` (the value of
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; exporters append `/v1/traces` and `/v1/metrics`).
    pub fn endpoint(&self) -> String {
        self.inner.shared.endpoint.clone()
    }

    /// The environment a server needs to export here, quickly: `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`, `OTEL_BSP_SCHEDULE_DELAY` (ms between span
    /// batches, [`SPAN_SCHEDULE_DELAY`]) and `OTEL_METRIC_EXPORT_INTERVAL` (ms between metric
    /// exports, [`METRIC_EXPORT_INTERVAL`]). Remove [`CONFLICTING_ENV`] from the server's
    /// environment too ([`OtlpReceiver::configure`] does both).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), self.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
            (
                "OTEL_BSP_SCHEDULE_DELAY".into(),
                SPAN_SCHEDULE_DELAY.as_millis().to_string(),
            ),
            (
                "OTEL_METRIC_EXPORT_INTERVAL".into(),
                METRIC_EXPORT_INTERVAL.as_millis().to_string(),
            ),
        ]
    }

    /// Points a server command at this receiver: removes [`CONFLICTING_ENV`] and sets
    /// [`OtlpReceiver::env`]. For a `tokio::process::Command`, pass `command.as_std_mut()`.
    pub fn configure(&self, command: &mut std::process::Command) {
        for name in CONFLICTING_ENV {
            command.env_remove(name);
        }
        command.envs(self.env());
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.with_spans(<[CapturedSpan]>::to_vec)
    }

    /// Runs `f` over the spans received so far, in arrival order.
    pub(crate) fn with_spans<T>(&self, f: impl FnOnce(&[CapturedSpan]) -> T) -> T {
        f(&lock(&self.inner.shared.spans))
    }

    /// The totals per metric series received so far (see [`MetricsSnapshot`]).
    pub fn metrics(&self) -> MetricsSnapshot {
        lock(&self.inner.shared.metrics).snapshot()
    }

    /// What `GET /harness/v1/metrics` answers: the totals with the export counter and the
    /// latest collection time.
    pub(crate) fn remote_metrics(&self) -> RemoteMetrics {
        self.inner.shared.remote_metrics()
    }

    /// How many export requests (of any signal) arrived, decodable or not.
    pub fn requests(&self) -> u64 {
        self.inner.shared.requests.load(Ordering::Relaxed)
    }

    /// The requests that could not be decoded (the first few), as messages.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.inner.shared.errors).clone()
    }

    /// What `GET /harness/v1/status` answers.
    pub fn status(&self) -> ReceiverStatus {
        self.inner.shared.status()
    }
}

impl Shared {
    fn remote_metrics(&self) -> RemoteMetrics {
        let store = lock(&self.metrics);
        RemoteMetrics {
            snapshot: store.snapshot(),
            exports: store.exports,
            latest_collection_unix_nano: store.latest_collection_unix_nano,
        }
    }

    fn status(&self) -> ReceiverStatus {
        let spans = lock(&self.spans).len() as u64;
        let (metric_exports, latest_collection_unix_nano) = {
            let metrics = lock(&self.metrics);
            (metrics.exports, metrics.latest_collection_unix_nano)
        };
        ReceiverStatus {
            receiver_id: self.id.clone(),
            endpoint: self.endpoint.clone(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: lock(&self.errors).clone(),
            spans,
            metric_exports,
            latest_collection_unix_nano,
        }
    }
}

/// How the body of a request was encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

struct Rejection(StatusCode, String);

fn format(headers: &HeaderMap) -> Result<Format, Rejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" | "" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        other => Err(Rejection(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content-type {other:?}"),
        )),
    }
}

fn decompress(headers: &HeaderMap, body: Bytes) -> Result<Bytes, Rejection> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .read_to_end(&mut out)
                .map_err(|e| Rejection(StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
            Ok(out.into())
        }
        other => Err(Rejection(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content-encoding {other:?}"),
        )),
    }
}

fn decode<M: Message + Default + serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(M, Format), Rejection> {
    let format = format(headers)?;
    let body = decompress(headers, body)?;
    let message = match format {
        Format::Protobuf => M::decode(body)
            .map_err(|e| Rejection(StatusCode::BAD_REQUEST, format!("bad protobuf body: {e}")))?,
        Format::Json => serde_json::from_slice(&body)
            .map_err(|e| Rejection(StatusCode::BAD_REQUEST, format!("bad OTLP JSON body: {e}")))?,
    };
    Ok((message, format))
}

/// A successful export response: an empty `Export*ServiceResponse` in the request's format.
fn success(format: Format) -> Response {
    let (content_type, body) = match format {
        Format::Protobuf => ("application/x-protobuf", Bytes::new()),
        Format::Json => ("application/json", Bytes::from_static(b"{}")),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn reject(shared: &Shared, path: &str, Rejection(status, message): Rejection) -> Response {
    let mut errors = lock(&shared.errors);
    if errors.len() < MAX_ERRORS {
        errors.push(format!("{path}: {message}"));
    }
    (status, message).into_response()
}

async fn traces(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match decode::<ExportTraceServiceRequest>(&headers, body) {
        Ok((request, format)) => {
            lock(&shared.spans).extend(convert::trace_request(&request));
            success(format)
        }
        Err(rejection) => reject(&shared, "/v1/traces", rejection),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match decode::<ExportMetricsServiceRequest>(&headers, body) {
        Ok((request, format)) => {
            lock(&shared.metrics).apply(convert::metrics_request(&request));
            success(format)
        }
        Err(rejection) => reject(&shared, "/v1/metrics", rejection),
    }
}

async fn logs(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match format(&headers) {
        Ok(format) => success(format),
        Err(rejection) => reject(&shared, "/v1/logs", rejection),
    }
}

/// The query of `GET /harness/v1/spans`.
#[derive(Deserialize)]
struct SpansQuery {
    /// Skip the first `from` spans (in arrival order).
    #[serde(default)]
    from: usize,
    /// Keep only the spans of this trace.
    trace_id: Option<String>,
}

async fn read_spans(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<SpansQuery>,
) -> Response {
    let (total, spans) = {
        let store = lock(&shared.spans);
        let spans: Vec<CapturedSpan> = store
            .iter()
            .skip(query.from)
            .filter(|s| query.trace_id.as_deref().is_none_or(|t| s.trace_id == t))
            .cloned()
            .collect();
        (store.len(), spans)
    };
    let mut response = Json(spans).into_response();
    let headers = response.headers_mut();
    headers.insert(SPANS_TOTAL_HEADER, HeaderValue::from(total));
    if let Ok(id) = HeaderValue::from_str(&shared.id) {
        headers.insert(RECEIVER_ID_HEADER, id);
    }
    response
}

async fn read_metrics(State(shared): State<Arc<Shared>>) -> Json<RemoteMetrics> {
    Json(shared.remote_metrics())
}

async fn read_status(State(shared): State<Arc<Shared>>) -> Json<ReceiverStatus> {
    Json(shared.status())
}
