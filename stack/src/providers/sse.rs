//! Server-sent events from a provider: each `data:` payload, in order, up to `[DONE]`.
//!
//! After `[DONE]` the rest of the provider's body is still read to its end and discarded before
//! the stream ends, so the provider's response is consumed whole (the recorder records it as
//! complete, not as cut short by the caller). That drain is bounded by [`DRAIN_TIMEOUT`] and
//! [`DRAIN_LIMIT`]: a provider that keeps the connection open after `[DONE]` cannot hold a
//! request up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::stream::{BoxStream, StreamExt};
use serde_json::json;

use super::ProviderError;

/// How long the body may go on after `[DONE]` before the stream is ended without it.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How many bytes after `[DONE]` are read (and discarded) before the stream is ended without
/// the rest.
pub const DRAIN_LIMIT: usize = 64 * 1024;

/// The `data:` payloads of a provider's event stream, one item per event, ending before
/// `[DONE]` (or when the provider closes the stream). A transport failure is the last item.
pub type DataStream = BoxStream<'static, Result<String, ProviderError>>;

/// Turns a provider's streaming response into its sequence of `data:` payloads.
///
/// Events named `error` whose data is not already an `{"error": ...}` object are wrapped into
/// one, so that the API layer sees every in-stream error the same way. After `[DONE]` the body is
/// drained (see the module documentation) before the stream ends.
pub fn data_events(provider: String, response: reqwest::Response) -> DataStream {
    // Bytes the body may still deliver: unlimited until `[DONE]`, then `DRAIN_LIMIT`. The body
    // ends early (dropping the rest) once that budget is spent.
    let budget = Arc::new(AtomicUsize::new(usize::MAX));
    let bytes = response
        .bytes_stream()
        .scan(Arc::clone(&budget), |budget, item| {
            let left = budget.load(Ordering::Relaxed);
            if left == 0 {
                return futures::future::ready(None);
            }
            let used = item.as_ref().map_or(0, bytes::Bytes::len);
            budget.store(left.saturating_sub(used), Ordering::Relaxed);
            futures::future::ready(Some(item))
        });
    let events = bytes.eventsource();
    futures::stream::unfold(Some((events, provider)), move |state| {
        let budget = Arc::clone(&budget);
        async move {
            let (mut events, provider) = state?;
            loop {
                match events.next().await {
                    None => {
                        tracing::debug!(provider, "provider stream ended without [DONE]");
                        return None;
                    }
                    Some(Ok(event)) => {
                        let data = event.data;
                        if data.trim() == "[DONE]" {
                            drain(&provider, &mut events, &budget).await;
                            return None;
                        }
                        if data.is_empty() {
                            continue;
                        }
                        let data = if event.event == "error" && !is_error_object(&data) {
                            json!({"error": {"message": data, "type": "provider_error"}})
                                .to_string()
                        } else {
                            data
                        };
                        return Some((Ok(data), Some((events, provider))));
                    }
                    Some(Err(e)) => {
                        let err = match e {
                            eventsource_stream::EventStreamError::Transport(t) => {
                                ProviderError::from_reqwest(&provider, t)
                            }
                            other => ProviderError::InvalidResponse {
                                provider: provider.clone(),
                                message: format!("malformed event stream: {other}"),
                            },
                        };
                        return Some((Err(err), None));
                    }
                }
            }
        }
    })
    .boxed()
}

/// Reads what follows `[DONE]` to the end of the body, discarding it (errors included), for at
/// most [`DRAIN_TIMEOUT`] and [`DRAIN_LIMIT`] bytes (`budget` is the body's byte budget).
async fn drain<S>(provider: &str, events: &mut S, budget: &AtomicUsize)
where
    S: futures::Stream + Unpin,
{
    budget.store(DRAIN_LIMIT, Ordering::Relaxed);
    let to_end = async {
        let mut discarded = 0usize;
        while events.next().await.is_some() {
            discarded += 1;
        }
        discarded
    };
    match tokio::time::timeout(DRAIN_TIMEOUT, to_end).await {
        Ok(_) if budget.load(Ordering::Relaxed) == 0 => tracing::warn!(
            provider,
            "provider sent more than {DRAIN_LIMIT} bytes after [DONE]; closing its stream"
        ),
        Ok(0) => {}
        Ok(discarded) => tracing::debug!(
            provider,
            discarded,
            "provider sent events after [DONE]; ignored"
        ),
        Err(_) => tracing::warn!(
            provider,
            "provider kept its stream open {DRAIN_TIMEOUT:?} after [DONE]; closing it"
        ),
    }
}

fn is_error_object(data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .map(|v| v.get("error").is_some())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// What a raw provider does after sending one event and `[DONE]`.
    #[derive(Clone, Copy)]
    enum After {
        /// Sends one more event, then ends the body.
        OneMoreEvent,
        /// Keeps the connection open, sending nothing.
        Hang,
        /// Sends events without end.
        Flood,
    }

    fn chunk(text: &str) -> Vec<u8> {
        format!("{:x}\r\n{text}\r\n", text.len()).into_bytes()
    }

    /// Serves one streamed response (chunked) and returns the URL.
    async fn raw_provider(after: After) -> String {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket
                .write_all(&chunk("data: {\"a\":1}\n\ndata: [DONE]\n\n"))
                .await;
            match after {
                After::OneMoreEvent => {
                    let _ = socket.write_all(&chunk("data: {\"late\":1}\n\n")).await;
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                }
                After::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
                After::Flood => {
                    let event = format!("data: {}\n\n", "x".repeat(4096));
                    while socket.write_all(&chunk(&event)).await.is_ok() {}
                }
            }
        });
        format!("http://{addr}/v1/chat/completions")
    }

    /// The payloads `data_events` yields for `after`, and how long the stream took to end.
    async fn read_all(after: After) -> (Vec<String>, Duration) {
        let url = raw_provider(after).await;
        let response = reqwest::get(url).await.unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let items: Vec<String> = data_events("p".into(), response)
            .map(|item| item.unwrap_or_else(|e| panic!("{e}")))
            .collect()
            .await;
        (items, started.elapsed())
    }

    #[tokio::test]
    async fn what_follows_done_is_read_and_discarded() {
        let (items, took) = read_all(After::OneMoreEvent).await;
        assert_eq!(items, ["{\"a\":1}"]);
        assert!(took < DRAIN_TIMEOUT, "{took:?}");
    }

    #[tokio::test]
    async fn a_provider_that_hangs_after_done_is_left_after_the_drain_timeout() {
        let (items, took) = read_all(After::Hang).await;
        assert_eq!(items, ["{\"a\":1}"]);
        assert!(
            took >= DRAIN_TIMEOUT && took < DRAIN_TIMEOUT * 3,
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_provider_that_floods_after_done_is_left_after_the_drain_limit() {
        let (items, took) = read_all(After::Flood).await;
        assert_eq!(items, ["{\"a\":1}"]);
        assert!(took < DRAIN_TIMEOUT, "{took:?}");
    }
}
