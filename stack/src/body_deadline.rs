//! The deadline for a request's body: the time a client has, from when the server starts
//! reading the body, to send all of it ([`crate::listen::Limits::body_read`]), extended by the
//! time the bytes already received would take at a minimum rate
//! ([`crate::listen::Limits::body_min_rate`]): a large body that keeps coming at a steady pace
//! is read whole, while a client that drips a byte now and then is cut off. (Kestrel guards
//! request bodies the same way: a minimum data rate after a grace period.) The time a body may
//! go without sending anything stays bounded by the limit too, so bytes sent fast early do not
//! buy a long silence later.
//!
//! tower-http's `RequestBodyTimeout` was used before. It differs in two ways that matter here:
//! - it is an idle timeout per frame, reset by every frame that comes, so a client dripping a
//!   byte now and then holds a connection (and a task) for ever;
//! - it registers a timer for every frame, even one that is already there: the body of almost
//!   every request comes with its headers, and the timer's registration and removal were a few
//!   percent of a replayed request's CPU. Here the clock is read when the body is first polled,
//!   and a timer is set only once the body has to be waited for.
//!
//! No crate offers a whole-body deadline armed lazily, hence this one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error a body gives once its deadline has passed; the server answers it with a 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
pub struct BodyDeadlineElapsed(pub Duration);

/// Whether `err`, or an error it comes from, is a body's [`BodyDeadlineElapsed`] (the server
/// answers such a failed read with a 408).
pub fn is_elapsed(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source()).any(|e| e.is::<BodyDeadlineElapsed>())
}

/// Wraps a request's body so that reading it fails with [`BodyDeadlineElapsed`] once its
/// deadline has passed (see [`DeadlineBody::new`]).
pub fn with_deadline(
    request: axum::extract::Request,
    limit: Duration,
    min_rate: u64,
) -> axum::extract::Request {
    request.map(|body| Body::new(DeadlineBody::new(body, limit, min_rate)))
}

/// A body with a deadline (see the module docs).
#[derive(Debug)]
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    min_rate: u64,
    /// Bytes received so far.
    received: u64,
    /// When the last data came.
    last_data: Option<Instant>,
    /// When the body was first polled.
    started: Option<Instant>,
    /// Set once the body had to be waited for.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be read within `limit` of its first read, plus the time its bytes received
    /// so far take at `min_rate` bytes a second (0: no extension).
    pub fn new(inner: B, limit: Duration, min_rate: u64) -> Self {
        DeadlineBody {
            inner,
            limit,
            min_rate,
            received: 0,
            last_data: None,
            started: None,
            timer: None,
        }
    }

    /// When the body must be whole by, given what came so far (at most a year away: sums
    /// that would overflow the clock are capped, never a panic).
    fn deadline(&self, started: Instant) -> Instant {
        const CAP: Duration = Duration::from_secs(365 * 24 * 3600);
        let extension = match self.min_rate {
            0 => Duration::ZERO,
            rate => Duration::try_from_secs_f64(self.received as f64 / rate as f64).unwrap_or(CAP),
        };
        let whole = started + self.limit.saturating_add(extension).min(CAP);
        let silent = self.last_data.unwrap_or(started) + self.limit.min(CAP);
        whole.min(silent)
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let started = *this.started.get_or_insert_with(Instant::now);
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(Ok(Some(data))) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                this.received += data.len() as u64;
                this.last_data = Some(Instant::now());
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline(started);
        let timer = match &mut this.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            unset => unset.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Some(Err(Box::new(BodyDeadlineElapsed(deadline - started)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// A body whose frames come from a channel, as a client sends them.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let frames = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
        (tx, Body::from_stream(frames))
    }

    async fn read(body: DeadlineBody<Body>) -> Result<Bytes, axum::Error> {
        axum::body::to_bytes(Body::new(body), usize::MAX).await
    }

    #[test]
    fn a_deadline_too_far_for_the_clock_is_capped() {
        let mut body = DeadlineBody::new(Body::empty(), Duration::MAX, 1);
        body.received = u64::MAX;
        let now = Instant::now();
        assert_eq!(
            body.deadline(now),
            now + Duration::from_secs(365 * 24 * 3600)
        );
    }

    #[tokio::test]
    async fn a_body_that_is_there_is_read_whole() {
        // Even with no time at all: a body already there never waits for its timer.
        let body = DeadlineBody::new(Body::from("hello"), Duration::ZERO, 0);
        assert_eq!(&read(body).await.unwrap()[..], b"hello");
    }

    #[tokio::test]
    async fn a_body_that_drips_fails_at_the_deadline_though_frames_keep_coming() {
        let (tx, inner) = channel_body();
        tokio::spawn(async move {
            // A frame every 100 ms: an idle timeout of 300 ms would never fire.
            for _ in 0..100 {
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        // At most 1,000 bytes a second: the drip's 10 a second add a few milliseconds.
        let err = read(DeadlineBody::new(inner, Duration::from_millis(300), 1_000))
            .await
            .unwrap_err();
        assert!(is_elapsed(&err), "{err}");
        let took = started.elapsed();
        assert!(
            // A loaded machine may be late, never early.
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_keeps_coming_above_the_minimum_rate_is_read_past_the_limit() {
        let (tx, inner) = channel_body();
        tokio::spawn(async move {
            // 1 KB every 20 ms (50 KB a second) for 600 ms, twice the 300 ms limit.
            for _ in 0..30 {
                tx.send(Bytes::from(vec![b'x'; 1_000])).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        // Each kilobyte at 5 KB a second buys 200 ms more.
        let bytes = read(DeadlineBody::new(inner, Duration::from_millis(300), 5_000))
            .await
            .unwrap();
        assert_eq!(bytes.len(), 30_000);
    }

    #[tokio::test]
    async fn a_body_sent_fast_then_silent_fails_after_the_limit_of_silence() {
        let (tx, inner) = channel_body();
        tokio::spawn(async move {
            // 100 KB at once earn 100 s at 1 KB a second; then nothing, the sender kept open.
            tx.send(Bytes::from(vec![b'x'; 100_000])).await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(tx);
        });
        let started = Instant::now();
        let err = read(DeadlineBody::new(inner, Duration::from_millis(300), 1_000))
            .await
            .unwrap_err();
        assert!(is_elapsed(&err), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_body_that_comes_in_time_in_pieces_is_read_whole() {
        let (tx, inner) = channel_body();
        tokio::spawn(async move {
            for piece in ["a", "b", "c"] {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send(Bytes::from_static(piece.as_bytes())).await.unwrap();
            }
        });
        let bytes = read(DeadlineBody::new(inner, Duration::from_secs(10), 0))
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abc");
    }
}
