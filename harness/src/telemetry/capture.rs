//! The one test-facing API over both backends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::model::{CapturedSpan, MetricsSnapshot};
use super::trace_context::{TestSpan, test_root_span};
use super::{
    InMemoryTelemetry, OtlpReceiver, RemoteCapture, RemoteMetrics, TelemetryError, unix_nanos_now,
};

/// How often the waits look again. A look is cheap: a lock in process; in server mode a
/// loopback GET of the spans that arrived since the last look, or of the receiver's counters
/// (the metric totals are fetched once the export waited for is there).
const POLL: Duration = Duration::from_millis(5);
/// How long [`Capture::metrics_baseline`] waits, in server mode, for an export collected after
/// the call (twenty of a test server's export intervals,
/// [`METRIC_EXPORT_INTERVAL`](super::METRIC_EXPORT_INTERVAL)).
const BASELINE_SETTLE: Duration = Duration::from_secs(1);

/// Where a test reads the telemetry of the service under test, in library mode
/// ([`Capture::InMemory`]) or server mode ([`Capture::Otlp`], or [`Capture::Remote`] when the
/// receiver runs in another process) alike. Cheap to clone.
///
/// The waits are `async` and poll with `tokio::time::sleep`, so they need a tokio runtime with
/// timers enabled (any `#[tokio::test]` runtime has them). [`Capture::Remote`]'s waits read the
/// receiver on tokio's blocking pool; its synchronous calls ([`Capture::spans`],
/// [`Capture::spans_in_trace`]) make a plain blocking loopback request, which is fine from any
/// thread, a runtime's included.
#[derive(Clone, Debug)]
pub enum Capture {
    /// Library mode: the global in-memory providers of this process.
    InMemory(InMemoryTelemetry),
    /// Server mode: an OTLP/HTTP receiver the server exports to, in this process.
    Otlp(OtlpReceiver),
    /// Server mode: an OTLP/HTTP receiver in another process (the server supervisor's, see
    /// [`ServerSpec::telemetry`](crate::testkit::ServerSpec::telemetry)), read over its JSON
    /// read API.
    Remote(RemoteCapture),
}

impl From<InMemoryTelemetry> for Capture {
    fn from(value: InMemoryTelemetry) -> Self {
        Capture::InMemory(value)
    }
}

impl From<OtlpReceiver> for Capture {
    fn from(value: OtlpReceiver) -> Self {
        Capture::Otlp(value)
    }
}

impl From<RemoteCapture> for Capture {
    fn from(value: RemoteCapture) -> Self {
        Capture::Remote(value)
    }
}

impl Capture {
    /// Library mode: installs the in-memory providers (once per process) and captures from them.
    pub fn in_memory() -> Capture {
        Capture::InMemory(InMemoryTelemetry::install())
    }

    /// Server mode: starts an OTLP/HTTP receiver; give the server [`OtlpReceiver::env`].
    pub fn otlp() -> Result<Capture, TelemetryError> {
        OtlpReceiver::start().map(Capture::Otlp)
    }

    /// Server mode, receiver in another process: reads the OTLP receiver whose base URL is
    /// `base_url` (`http://host:port`, e.g.
    /// [`ServerHandle::telemetry_url`](crate::testkit::ServerHandle::telemetry_url)) over its
    /// read API. Checks the URL only; the receiver is first contacted when something is read.
    pub fn remote(base_url: &str) -> Result<Capture, TelemetryError> {
        RemoteCapture::new(base_url).map(Capture::Remote)
    }

    /// `"in-memory"`, `"otlp"` or `"remote"`, for messages.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Capture::InMemory(_) => "in-memory",
            Capture::Otlp(_) => "otlp",
            Capture::Remote(_) => "remote",
        }
    }

    /// The OTLP receiver, in server mode with the receiver in this process.
    pub fn receiver(&self) -> Option<&OtlpReceiver> {
        match self {
            Capture::Otlp(receiver) => Some(receiver),
            Capture::InMemory(_) | Capture::Remote(_) => None,
        }
    }

    /// The reader of a receiver in another process ([`Capture::Remote`]).
    pub fn as_remote(&self) -> Option<&RemoteCapture> {
        match self {
            Capture::Remote(remote) => Some(remote),
            Capture::InMemory(_) | Capture::Otlp(_) => None,
        }
    }

    /// Every span captured so far (by every test of the process, or of the run with
    /// [`Capture::Remote`]), in arrival order.
    ///
    /// # Panics
    ///
    /// With [`Capture::Remote`], if the receiver cannot be read (it is gone, or answers
    /// garbage); [`RemoteCapture::spans`] returns the error instead.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        match self {
            Capture::InMemory(memory) => memory.spans(),
            Capture::Otlp(receiver) => receiver.spans(),
            Capture::Remote(remote) => remote.spans().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// The spans of one trace captured so far.
    ///
    /// # Panics
    ///
    /// With [`Capture::Remote`], if the receiver cannot be read.
    pub fn spans_in_trace(&self, trace_id: &str) -> Vec<CapturedSpan> {
        if let Capture::Remote(remote) = self {
            remote.refresh().unwrap_or_else(|e| panic!("{e}"));
        }
        self.filtered(|s| s.trace_id == trace_id)
    }

    /// Brings [`Capture::Remote`]'s span cache up to date (nothing to do for the others).
    async fn refresh(&self) -> Result<(), TelemetryError> {
        match self {
            Capture::Remote(remote) => remote.refresh_async().await,
            Capture::InMemory(_) | Capture::Otlp(_) => Ok(()),
        }
    }

    /// Runs `f` over the spans captured so far; for [`Capture::Remote`], fetched so far.
    fn with_spans<T>(&self, f: impl FnOnce(&[CapturedSpan]) -> T) -> T {
        match self {
            Capture::InMemory(memory) => memory.with_spans(f),
            Capture::Otlp(receiver) => receiver.with_spans(f),
            Capture::Remote(remote) => remote.with_cached(f),
        }
    }

    /// The spans kept by `keep`; for [`Capture::Remote`], of those fetched so far.
    fn filtered(&self, keep: impl Fn(&CapturedSpan) -> bool) -> Vec<CapturedSpan> {
        self.with_spans(|spans| spans.iter().filter(|s| keep(s)).cloned().collect())
    }

    /// A root span for one test (see [`test_root_span`]): run the test's calls in its context,
    /// then filter with [`Capture::spans_in_trace`] or [`Capture::wait_for_trace`].
    pub fn test_root_span(&self, name: &str) -> TestSpan {
        test_root_span(name)
    }

    /// Polls until `predicate` holds for all the spans captured so far and returns them; on
    /// timeout the error lists the names of the spans seen.
    pub async fn wait_for_spans<F>(
        &self,
        predicate: F,
        timeout: Duration,
    ) -> Result<Vec<CapturedSpan>, TelemetryError>
    where
        F: FnMut(&[CapturedSpan]) -> bool,
    {
        self.wait_filtered(|_| true, predicate, timeout, String::new())
            .await
    }

    /// Polls until `predicate` holds for the spans of trace `trace_id` and returns those spans;
    /// on timeout the error lists the names of the spans seen in that trace.
    pub async fn wait_for_trace<F>(
        &self,
        trace_id: &str,
        predicate: F,
        timeout: Duration,
    ) -> Result<Vec<CapturedSpan>, TelemetryError>
    where
        F: FnMut(&[CapturedSpan]) -> bool,
    {
        self.wait_filtered(
            |s| s.trace_id == trace_id,
            predicate,
            timeout,
            format!(" in trace {trace_id}"),
        )
        .await
    }

    async fn wait_filtered<F>(
        &self,
        keep: impl Fn(&CapturedSpan) -> bool,
        mut predicate: F,
        timeout: Duration,
        what: String,
    ) -> Result<Vec<CapturedSpan>, TelemetryError>
    where
        F: FnMut(&[CapturedSpan]) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.refresh().await?;
            let spans = self.filtered(&keep);
            if predicate(&spans) {
                return Ok(spans);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TelemetryError::SpansTimeout {
                    timeout,
                    what,
                    count: spans.len(),
                    seen: span_names(&spans),
                    notes: self.notes().await,
                });
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    /// Waits until no new span has arrived for `quiet` (at least `quiet` from the call), then
    /// returns every span captured. In server mode pick `quiet` above the server's batch delay
    /// (`OTEL_BSP_SCHEDULE_DELAY`; [`SPAN_SCHEDULE_DELAY`](super::SPAN_SCHEDULE_DELAY) with
    /// [`OtlpReceiver::env`]). Every span counts, other tests' too: while other tests run, use
    /// [`Capture::wait_quiet_in_trace`].
    pub async fn wait_quiet(
        &self,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Vec<CapturedSpan>, TelemetryError> {
        self.quiet_filtered(|_| true, quiet, timeout).await
    }

    /// Waits until no new span of trace `trace_id` has arrived for `quiet` (at least `quiet`
    /// from the call), then returns the spans of that trace. Spans of other traces (tests running
    /// beside this one) do not count. Pick `quiet` as for [`Capture::wait_quiet`].
    pub async fn wait_quiet_in_trace(
        &self,
        trace_id: &str,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Vec<CapturedSpan>, TelemetryError> {
        self.quiet_filtered(|s| s.trace_id == trace_id, quiet, timeout)
            .await
    }

    async fn quiet_filtered(
        &self,
        keep: impl Fn(&CapturedSpan) -> bool,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Vec<CapturedSpan>, TelemetryError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let count_kept = || self.with_spans(|spans| spans.iter().filter(|s| keep(s)).count());
        self.refresh().await?;
        let mut count = count_kept();
        let mut last_change = start;
        loop {
            let now = Instant::now();
            if now.duration_since(last_change) >= quiet {
                return Ok(self.filtered(&keep));
            }
            if now >= deadline {
                return Err(TelemetryError::NotQuiet {
                    quiet,
                    timeout,
                    count,
                });
            }
            let until_quiet = quiet.saturating_sub(now.duration_since(last_change));
            tokio::time::sleep(POLL.min(until_quiet).min(deadline - now)).await;
            self.refresh().await?;
            let new_count = count_kept();
            if new_count != count {
                count = new_count;
                last_change = Instant::now();
            }
        }
    }

    /// The metric totals now, to compare a later [`Capture::metrics_delta_since`] against.
    ///
    /// In library mode this flushes the meter provider. In server mode it waits (up to 1 s) for
    /// an export collected after this call, so that what the server recorded before the call is
    /// in the baseline; when none comes (the server exports no metrics, or it uses delta
    /// temporality, whose exporter sends nothing while nothing changes) the totals received so
    /// far are the baseline.
    pub async fn metrics_baseline(&self) -> Result<MetricsSnapshot, TelemetryError> {
        match self
            .wait_for_collection_after(unix_nanos_now(), BASELINE_SETTLE)
            .await
        {
            Err(TelemetryError::MetricsTimeout { .. }) => Ok(self.metrics_now().await?.snapshot),
            other => other,
        }
    }

    /// What the metrics did since `baseline`: per series, sums and histograms minus the
    /// baseline (unchanged series left out), gauges as they are now.
    ///
    /// In library mode this flushes the meter provider (`wait` is not used). In server mode it
    /// waits up to `wait` for a metrics export collected after this call (a data point whose
    /// `time_unix_nano` is later than the call), so that everything recorded before the call is
    /// in it; with [`OtlpReceiver::env`] that takes at most one export interval
    /// ([`METRIC_EXPORT_INTERVAL`](super::METRIC_EXPORT_INTERVAL)). No such
    /// export within `wait` is a [`TelemetryError::MetricsTimeout`] (note that a delta-temporality
    /// exporter sends nothing when no metric changed).
    pub async fn metrics_delta_since(
        &self,
        baseline: &MetricsSnapshot,
        wait: Duration,
    ) -> Result<MetricsSnapshot, TelemetryError> {
        let now = self
            .wait_for_collection_after(unix_nanos_now(), wait)
            .await?;
        Ok(now.delta_since(baseline))
    }

    /// Server mode: polls until the receiver holds a metric data point collected after
    /// `after_unix_nano`, and returns its totals then. Library mode: flushes and returns the
    /// totals at once.
    async fn wait_for_collection_after(
        &self,
        after_unix_nano: u64,
        wait: Duration,
    ) -> Result<MetricsSnapshot, TelemetryError> {
        if let Capture::InMemory(memory) = self {
            return memory.flush_metrics();
        }
        let deadline = Instant::now() + wait;
        loop {
            let (exports, latest_collection_unix_nano) = self.metric_exports().await?;
            if latest_collection_unix_nano > after_unix_nano {
                // The totals now hold that export, or a later one.
                return Ok(self.metrics_now().await?.snapshot);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TelemetryError::MetricsTimeout {
                    waited: wait,
                    exports,
                    notes: self.notes().await,
                });
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    /// Server mode: how many metric exports the receiver has had, and the latest collection
    /// time of any data point (the counters alone, not the totals). Library mode: none.
    async fn metric_exports(&self) -> Result<(u64, u64), TelemetryError> {
        match self {
            Capture::InMemory(_) => Ok((0, 0)),
            Capture::Otlp(receiver) => {
                let status = receiver.status();
                Ok((status.metric_exports, status.latest_collection_unix_nano))
            }
            Capture::Remote(remote) => {
                let status = remote.status_async().await?;
                Ok((status.metric_exports, status.latest_collection_unix_nano))
            }
        }
    }

    /// The metric totals now, with (server mode) the receiver's export counter and latest
    /// collection time; library mode flushes and reports no exports.
    async fn metrics_now(&self) -> Result<RemoteMetrics, TelemetryError> {
        match self {
            Capture::InMemory(memory) => Ok(RemoteMetrics {
                snapshot: memory.flush_metrics()?,
                ..RemoteMetrics::default()
            }),
            Capture::Otlp(receiver) => Ok(receiver.remote_metrics()),
            Capture::Remote(remote) => remote.metrics_async().await,
        }
    }

    /// Diagnostics for error messages: requests the receiver could not decode.
    async fn notes(&self) -> String {
        let (endpoint, requests, errors) = match self {
            Capture::Otlp(receiver) => {
                (receiver.endpoint(), receiver.requests(), receiver.errors())
            }
            Capture::Remote(remote) => match remote.status_async().await {
                Ok(status) => (remote.base_url().to_owned(), status.requests, status.errors),
                Err(e) => return format!(" [{e}]"),
            },
            Capture::InMemory(_) => return String::new(),
        };
        let mut notes = format!(
            " [{} receiver at {endpoint}: {requests} request(s) received",
            self.backend_name()
        );
        if !errors.is_empty() {
            notes.push_str(&format!(", undecodable: {}", errors.join("; ")));
        }
        notes.push(']');
        notes
    }
}

/// `name xN, other xM` for an error message, most frequent first, at most 40 names.
fn span_names(spans: &[CapturedSpan]) -> String {
    if spans.is_empty() {
        return "none".to_owned();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for span in spans {
        *counts.entry(span.name.as_str()).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = counts
        .iter()
        .take(40)
        .map(|(name, n)| format!("{name:?} x{n}"))
        .collect();
    let mut out = shown.join(", ");
    if counts.len() > 40 {
        out.push_str(&format!(", ... ({} more names)", counts.len() - 40));
    }
    out
}
