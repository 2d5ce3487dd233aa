//! The deadline for a request's body: the time a client has, from when the server starts
//! reading the body, to send all of it ([`crate::listen::Limits::body_read`]).
//!
//! tower-http's `RequestBodyTimeout` was used before. It differs in two ways that matter here:
//! - it is an idle timeout per frame, reset by every frame that comes, so a client dripping a
//!   byte now and then holds a connection (and a task) forever; this is one deadline for the
//!   whole body;
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

/// Wraps a request's body so that reading it fails with [`BodyDeadlineElapsed`] once `limit`
/// has passed since it was first read.
pub fn with_deadline(request: axum::extract::Request, limit: Duration) -> axum::extract::Request {
    request.map(|body| Body::new(DeadlineBody::new(body, limit)))
}

/// A body with a deadline (see the module docs).
#[derive(Debug)]
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    /// When the body was first polled.
    started: Option<Instant>,
    /// Set once the body had to be waited for.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be read within `limit` of its first read.
    pub fn new(inner: B, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            limit,
            started: None,
            timer: None,
        }
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
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyDeadlineElapsed(limit))))),
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

    fn elapsed(err: &axum::Error) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if e.is::<BodyDeadlineElapsed>() {
                return true;
            }
            source = e.source();
        }
        false
    }

    #[tokio::test]
    async fn a_body_that_is_there_is_read_whole() {
        let body = DeadlineBody::new(Body::from("hello"), Duration::from_millis(1));
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
        let err = read(DeadlineBody::new(inner, Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(elapsed(&err), "{err}");
        let took = started.elapsed();
        assert!(
            // A loaded machine may be late, never early.
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
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
        let bytes = read(DeadlineBody::new(inner, Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abc");
    }
}
