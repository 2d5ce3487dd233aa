//! Server mode across processes: reading an [`OtlpReceiver`](super::OtlpReceiver) that runs in
//! another process (the server supervisor's, see
//! [`ServerSpec::telemetry`](crate::testkit::ServerSpec::telemetry)) through its JSON read API.
//!
//! Requests are blocking HTTP GETs ([`ureq`], no async runtime), so the synchronous calls work
//! from any thread, including a tokio runtime's; the async paths of [`Capture`](super::Capture)
//! run them on tokio's blocking pool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::TelemetryError;
use super::model::CapturedSpan;
use super::otlp_receiver::{
    METRICS_PATH, RECEIVER_ID_HEADER, ReceiverStatus, RemoteMetrics, SPANS_PATH,
    SPANS_TOTAL_HEADER, STATUS_PATH,
};
use super::store::lock;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A capture backend that reads an OTLP receiver running in another process over its read API
/// (`GET /harness/v1/spans`, `/harness/v1/metrics`, `/harness/v1/status`). Cheap to clone; the
/// clones share a cache of the spans read so far, so each poll fetches only the new ones.
///
/// Build it with [`Capture::remote`](super::Capture::remote) (or [`RemoteCapture::new`]) from
/// the receiver's base URL, e.g. [`ServerHandle::telemetry_url`](crate::testkit::ServerHandle).
#[derive(Clone)]
pub struct RemoteCapture {
    inner: Arc<RemoteInner>,
}

struct RemoteInner {
    /// `http://host:port`.
    base_url: String,
    /// The HTTP client, with the timeouts below.
    agent: ureq::Agent,
    cache: Mutex<SpanCache>,
}

#[derive(Default)]
struct SpanCache {
    /// The receiver the cached spans came from.
    receiver_id: Option<String>,
    spans: Vec<CapturedSpan>,
}

impl std::fmt::Debug for RemoteCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCapture")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl RemoteCapture {
    /// A reader of the receiver at `base_url` (`http://host:port`, as
    /// [`OtlpReceiver::endpoint`](super::OtlpReceiver::endpoint) gives it). Checks the URL only:
    /// the receiver is first contacted when something is read.
    pub fn new(base_url: &str) -> Result<RemoteCapture, TelemetryError> {
        let invalid = |message: String| TelemetryError::Remote {
            url: base_url.to_owned(),
            message,
        };
        let url =
            url::Url::parse(base_url.trim()).map_err(|e| invalid(format!("not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(invalid("only http:// URLs are supported".to_owned()));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(invalid(
                "give the receiver's base URL (http://host:port), without a path".to_owned(),
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid("the URL has no host".to_owned()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| invalid("the URL has no port".to_owned()))?;
        let addrs = url
            .socket_addrs(|| None)
            .map_err(|e| invalid(format!("cannot resolve the host: {e}")))?;
        if addrs.is_empty() {
            return Err(invalid("the host resolves to no address".to_owned()));
        }
        let agent = crate::blocking_http::agent(CONNECT_TIMEOUT, IO_TIMEOUT);
        Ok(RemoteCapture {
            inner: Arc::new(RemoteInner {
                base_url: format!("http://{host}:{port}"),
                agent,
                cache: Mutex::new(SpanCache::default()),
            }),
        })
    }

    /// The receiver's base URL, `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Every span the receiver has received so far, in arrival order (fetches the new ones).
    pub fn spans(&self) -> Result<Vec<CapturedSpan>, TelemetryError> {
        self.refresh()?;
        Ok(self.with_cached(<[CapturedSpan]>::to_vec))
    }

    /// The receiver's metric totals now, with its export counter and latest collection time.
    pub fn metrics(&self) -> Result<RemoteMetrics, TelemetryError> {
        self.get_json(METRICS_PATH)
    }

    /// The receiver's counters and diagnostics.
    pub fn status(&self) -> Result<ReceiverStatus, TelemetryError> {
        self.get_json(STATUS_PATH)
    }

    /// Runs `f` over the spans fetched so far (no request).
    pub(crate) fn with_cached<R>(&self, f: impl FnOnce(&[CapturedSpan]) -> R) -> R {
        f(&lock(&self.inner.cache).spans)
    }

    /// Fetches the spans that arrived since the last fetch into the cache. Starts over when
    /// another receiver answers (a different id, or fewer spans than cached).
    pub(crate) fn refresh(&self) -> Result<(), TelemetryError> {
        let mut cache = lock(&self.inner.cache);
        let from = cache.spans.len();
        let response = self.get(&format!("{SPANS_PATH}?from={from}"))?;
        let receiver_id = response.receiver_id.clone();
        let total = response
            .spans_total
            .as_deref()
            .and_then(|t| t.parse::<usize>().ok());
        let same_receiver = cache.receiver_id.is_none() || cache.receiver_id == receiver_id;
        if same_receiver && total.is_none_or(|t| t >= from) {
            let new: Vec<CapturedSpan> = self.parse(SPANS_PATH, &response.body)?;
            cache.spans.extend(new);
            cache.receiver_id = receiver_id;
            return Ok(());
        }
        let response = self.get(SPANS_PATH)?;
        cache.spans = self.parse(SPANS_PATH, &response.body)?;
        cache.receiver_id = response.receiver_id;
        Ok(())
    }

    /// [`RemoteCapture::refresh`] on tokio's blocking pool.
    pub(crate) async fn refresh_async(&self) -> Result<(), TelemetryError> {
        self.off_runtime(|remote| remote.refresh()).await
    }

    /// [`RemoteCapture::metrics`] on tokio's blocking pool.
    pub(crate) async fn metrics_async(&self) -> Result<RemoteMetrics, TelemetryError> {
        self.off_runtime(|remote| remote.metrics()).await
    }

    /// [`RemoteCapture::status`] on tokio's blocking pool.
    pub(crate) async fn status_async(&self) -> Result<ReceiverStatus, TelemetryError> {
        self.off_runtime(|remote| remote.status()).await
    }

    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RemoteCapture) -> Result<T, TelemetryError> + Send + 'static,
    ) -> Result<T, TelemetryError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| self.error(format!("the reading task failed: {e}")))?
    }

    fn error(&self, message: String) -> TelemetryError {
        TelemetryError::Remote {
            url: self.inner.base_url.clone(),
            message,
        }
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, TelemetryError> {
        let response = self.get(path)?;
        self.parse(path, &response.body)
    }

    fn parse<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<T, TelemetryError> {
        serde_json::from_slice(body)
            .map_err(|e| self.error(format!("GET {path}: cannot decode the answer: {e}")))
    }

    /// `GET path`; any status but 200 is an error.
    fn get(&self, path: &str) -> Result<HttpResponse, TelemetryError> {
        let url = format!("{}{path}", self.inner.base_url);
        let read = || -> Result<HttpResponse, ureq::Error> {
            let response = self
                .inner
                .agent
                .get(&url)
                .header("Accept", "application/json")
                .call()?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let receiver_id = header(RECEIVER_ID_HEADER);
            let spans_total = header(SPANS_TOTAL_HEADER);
            // The span list has no size bound of its own; ureq's default body limit is 10 MB.
            let body = response
                .into_body()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()?;
            Ok(HttpResponse {
                status,
                receiver_id,
                spans_total,
                body,
            })
        };
        match read() {
            Ok(response) if response.status == 200 => Ok(response),
            Ok(response) => Err(self.error(format!(
                "GET {path}: status {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body).trim()
            ))),
            Err(e) => Err(self.error(format!(
                "GET {path}: {e} (is the process that runs the receiver, the server's \
                 supervisor, still running?)"
            ))),
        }
    }
}

/// An HTTP response, read whole: its status, the receiver's headers and its body.
struct HttpResponse {
    status: u16,
    /// [`RECEIVER_ID_HEADER`].
    receiver_id: Option<String>,
    /// [`SPANS_TOTAL_HEADER`].
    spans_total: Option<String>,
    body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        let remote = RemoteCapture::new("http://127.0.0.1:4318/").unwrap();
        assert_eq!(remote.base_url(), "http://127.0.0.1:4318");
        for bad in [
            "127.0.0.1:4318",
            "https://127.0.0.1:4318",
            "http://127.0.0.1:4318/v1/traces",
        ] {
            let err = RemoteCapture::new(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn an_unreachable_receiver_is_a_clear_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let remote = RemoteCapture::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let message = remote.spans().unwrap_err().to_string();
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(message.contains("supervisor"), "{message}");
    }
}
