//! Streams: recording a provider's stream while forwarding each chunk as it arrives, and
//! replaying recorded events with their boundaries, instantly or paced as recorded.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::stream::{BoxStream, Stream, StreamExt};

use super::draft::Draft;
use super::format::{RecordedResponse, StreamEnd, StreamEvent, ms_since};
use super::framing::{EventSplitter, Framing};
use super::keep::Keeper;

/// Error a stream yields where it fails: a live provider stream that broke off while being
/// recorded, or a replayed stream where the recorded one failed or was cut short.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StreamFailure(pub String);

/// Where a recorded stream goes when it ends.
pub(crate) struct StreamSink {
    pub keeper: Keeper,
    pub draft: Draft,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// Whether the request is large: its recording is then written on a blocking thread.
    pub large: bool,
}

/// Keeps a stream's recording; a failure is logged, since the caller has the stream.
fn keep_logged(keeper: Keeper, rec: &super::format::Recording) {
    if let Err(e) = keeper.keep(rec) {
        tracing::error!("could not store the recording of a stream: {e}");
    }
}

/// How long, and how many bytes, the rest of a stream the caller stopped reading is read for
/// (to record it whole); past either, nothing is recorded.
const DRAIN_TIME: Duration = Duration::from_secs(30);
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// The events of a stream being recorded, and where they go at its end.
struct Capture {
    splitter: Option<EventSplitter>,
    events: Vec<StreamEvent>,
    started: Instant,
    sink: Option<StreamSink>,
}

impl Capture {
    fn take_chunk(&mut self, chunk: &[u8]) {
        let events = match self.splitter.as_mut() {
            Some(s) => s.push(chunk),
            None => Vec::new(),
        };
        self.take_events(events);
    }

    fn take_events(&mut self, raw: Vec<Vec<u8>>) {
        let t_ms = ms_since(self.started);
        let Some(sink) = &self.sink else { return };
        for ev in raw {
            let event = match std::str::from_utf8(&ev) {
                Ok(text) => StreamEvent {
                    t_ms,
                    raw: sink.draft.sanitize_text(text),
                    raw_base64: None,
                },
                Err(_) => {
                    use base64::Engine;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&ev);
                    StreamEvent {
                        t_ms,
                        raw: String::new(),
                        raw_base64: Some(encoded),
                    }
                }
            };
            self.events.push(event);
        }
    }

    /// The stream failed: records the error end (if the policy keeps failures) and gives the
    /// sanitized message.
    fn fail(&mut self, e: &dyn std::error::Error) -> String {
        let message = self
            .sink
            .as_ref()
            .map(|s| s.draft.sanitize_text(&support::error::error_chain(e)))
            .unwrap_or_default();
        let t_ms = ms_since(self.started);
        self.finish(StreamEnd::Error {
            t_ms,
            message: message.clone(),
        });
        message
    }

    fn finish(&mut self, end: StreamEnd) {
        if let Some((keeper, rec)) = self.recording(end) {
            keep_logged(keeper, &rec);
        }
    }

    /// The stream's recording, once, with where it goes.
    fn recording(&mut self, end: StreamEnd) -> Option<(Keeper, super::format::Recording)> {
        if let Some(rest) = self.splitter.take().and_then(EventSplitter::finish) {
            self.take_events(vec![rest]);
        }
        let StreamSink {
            keeper,
            draft,
            status,
            headers,
            large: _,
        } = self.sink.take()?;
        let response = RecordedResponse::Stream {
            status,
            headers,
            events: std::mem::take(&mut self.events),
            end,
        };
        Some((keeper, draft.into_recording(response)))
    }
}

/// Forwards the provider's chunks unchanged and records them as events; the recording is kept
/// (see [`super::keep`]) when the stream ends or fails. When the caller stops reading first, the
/// rest of the stream is read in the background, within [`DRAIN_TIME`] and [`DRAIN_BYTES`], and
/// recorded whole, so that a replay can be read as far as any caller wants; past those bounds
/// nothing is recorded. Either way the log says which.
pub(crate) struct RecordingStream {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    capture: Capture,
    done: bool,
    /// A large request's recording being written on a blocking thread: the stream ends when it
    /// is written (the task writes it even if the stream is dropped meanwhile).
    writing: Option<tokio::task::JoinHandle<()>>,
}

impl RecordingStream {
    pub(crate) fn new(
        upstream: BoxStream<'static, reqwest::Result<Bytes>>,
        framing: Framing,
        started: Instant,
        sink: StreamSink,
    ) -> Self {
        RecordingStream {
            upstream,
            capture: Capture {
                splitter: Some(EventSplitter::new(framing)),
                events: Vec::new(),
                started,
                sink: Some(sink),
            },
            done: false,
            writing: None,
        }
    }
}

impl Stream for RecordingStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(writing) = self.writing.as_mut() {
            // A panic there was the recorder's: it ends the stream as a failure to record does.
            if writing.poll_unpin(cx).is_pending() {
                return Poll::Pending;
            }
            self.writing = None;
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.upstream.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.capture.take_chunk(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let message = self.capture.fail(&e);
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(StreamFailure(message)))))
            }
            Poll::Ready(None) => {
                self.done = true;
                let large = self.capture.sink.as_ref().is_some_and(|s| s.large);
                let runtime = tokio::runtime::Handle::try_current();
                match (large, runtime) {
                    // Serializing and syncing megabytes must not hold an async worker.
                    (true, Ok(runtime)) => {
                        if let Some((keeper, rec)) = self.capture.recording(StreamEnd::Complete) {
                            self.writing =
                                Some(runtime.spawn_blocking(move || keep_logged(keeper, &rec)));
                            return self.poll_next(cx);
                        }
                    }
                    _ => self.capture.finish(StreamEnd::Complete),
                }
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for RecordingStream {
    fn drop(&mut self) {
        if self.capture.sink.is_none() {
            return;
        }
        let what = self
            .capture
            .sink
            .as_ref()
            .map(|s| s.draft.describe())
            .unwrap_or_default();
        let read = self.capture.events.len();
        let upstream = std::mem::replace(&mut self.upstream, futures::stream::empty().boxed());
        let capture = Capture {
            splitter: self.capture.splitter.take(),
            events: std::mem::take(&mut self.capture.events),
            started: self.capture.started,
            sink: self.capture.sink.take(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(drain(upstream, capture, what, read));
            }
            Err(_) => tracing::warn!(
                target: "harness::recorder",
                "{what}: the caller stopped reading after {read} events and no runtime is left to \
                 read the rest; nothing recorded"
            ),
        }
    }
}

/// Reads the rest of a stream whose caller stopped reading, and records it whole.
async fn drain(
    mut upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    mut capture: Capture,
    what: String,
    read: usize,
) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut bytes = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, upstream.next()).await {
            Err(_) => {
                tracing::warn!(
                    target: "harness::recorder",
                    "{what}: the caller stopped reading after {read} events and the stream did not \
                     end within {DRAIN_TIME:?}; nothing recorded"
                );
                return;
            }
            Ok(Some(Ok(chunk))) => {
                bytes += chunk.len();
                if bytes > DRAIN_BYTES {
                    tracing::warn!(
                        target: "harness::recorder",
                        "{what}: the caller stopped reading after {read} events and the rest of \
                         the stream passed {DRAIN_BYTES} bytes; nothing recorded"
                    );
                    return;
                }
                capture.take_chunk(&chunk);
            }
            Ok(Some(Err(e))) => {
                capture.fail(&e);
                return;
            }
            Ok(None) => {
                let total = capture.events.len();
                capture.finish(StreamEnd::Complete);
                tracing::info!(
                    target: "harness::recorder",
                    "{what}: the caller stopped reading after {read} events; the rest of the \
                     stream was read and it is recorded whole ({total} events)"
                );
                return;
            }
        }
    }
}

/// Replays recorded events, one chunk per event; then the recorded error, if any.
pub(crate) fn replay(
    events: &[StreamEvent],
    end: &StreamEnd,
    paced: bool,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, String> {
    let start = tokio::time::Instant::now();
    let total = events.len();
    let tail = match end {
        StreamEnd::Complete => None,
        StreamEnd::Error { t_ms, message } => Some((*t_ms, message.clone())),
        StreamEnd::CallerStopped { t_ms } => Some((
            *t_ms,
            format!(
                "the recording of this stream ends after {total} events: when it was recorded the caller \
                 stopped reading there. If the test now reads further, record it again with \
                 `--inference-mode record` (record-if-missing keeps the existing recording)"
            ),
        )),
    };
    let mut items = Vec::with_capacity(events.len() + 1);
    for e in events {
        items.push((e.t_ms, Ok(Bytes::from(e.bytes()?))));
    }
    items.extend(tail.map(|(t, m)| (t, Err(std::io::Error::other(StreamFailure(m))))));
    Ok(
        futures::stream::iter(items).then(move |(t_ms, item)| async move {
            if paced && t_ms.is_finite() && t_ms > 0.0 {
                tokio::time::sleep_until(start + std::time::Duration::from_secs_f64(t_ms / 1000.0))
                    .await;
            }
            item
        }),
    )
}
