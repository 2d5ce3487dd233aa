//! The server's accept loop, with the limits that keep it answering whatever clients do (axum's
//! `serve` has none of them): a timeout for a request's headers (which also closes a keep-alive
//! connection left idle that long), a timeout for its body, a cap on open connections, and
//! accept errors (too many open files) that pause the loop instead of ending it.
//!
//! Written on hyper-util's connection builder, as axum's `serve` is, because `serve` exposes
//! none of these settings.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The slowest pace a body may come at past its time limit: Kestrel's default minimum request
/// body data rate, 240 bytes a second.
pub const BODY_MIN_RATE: u64 = 240;

/// The server's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's headers, counted from the connection (or the end of
    /// the previous request on a keep-alive connection, so it is also the idle timeout).
    pub header_read: Duration,
    /// Time a client has to send a request's whole body, counted from when the server starts
    /// reading it: one deadline, not reset by each piece that comes, but extended by
    /// [`Limits::body_min_rate`]; also the longest the body may go without data
    /// ([`crate::body_deadline`]).
    pub body_read: Duration,
    /// The slowest pace, in bytes a second, that a body may come at once past
    /// [`Limits::body_read`]: each byte received adds the time it takes at that pace.
    pub body_min_rate: u64,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    /// 10 s for headers, 60 s for a body (more for one that keeps coming at 240 bytes a second
    /// or faster), and as many connections as the process's open-file
    /// limit leaves room for (128 descriptors kept for everything else), at most 16,384.
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(60),
            body_min_rate: BODY_MIN_RATE,
            max_connections: connection_cap(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The connection cap the open-file limit allows: past it, `accept` would fail with "too many
/// open files" and the server would stop answering anyone.
fn connection_cap() -> usize {
    const SPARE: u64 = 128;
    const MOST: u64 = 16_384;
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    usize::try_from(soft.saturating_sub(SPARE).clamp(64, MOST)).unwrap_or(512)
}

/// The answer to a connection over the cap, where HTTP allows one: a 503 in OpenAI's error shape.
fn over_capacity() -> String {
    let body = crate::error::ApiError::new(
        503,
        "server_error",
        "The server has too many open connections; retry shortly.",
        None,
        Some("overloaded"),
    )
    .body()
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
         retry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting
/// and gives in-flight requests [`Limits::shutdown_grace`] to finish.
pub async fn serve<F>(
    app: Router,
    listener: TcpListener,
    limits: Limits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (body_read, body_min_rate) = (limits.body_read, limits.body_min_rate);
    let app = app.layer(tower::util::MapRequestLayer::new(
        move |request: axum::extract::Request| {
            crate::body_deadline::with_deadline(request, body_read, body_min_rate)
        },
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and the like: the listener is fine, the process is out of something;
                // pause instead of spinning or giving up.
                tracing::warn!("accept failed ({e}); pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if last_refusal_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                tracing::warn!(
                    "{} connections open, the cap: answering new ones 503 until some close",
                    limits.max_connections
                );
                last_refusal_log = Some(Instant::now());
            }
            tokio::spawn(refuse(tcp));
            continue;
        };
        // TCP_NODELAY: without it, small SSE writes on a keep-alive connection wait for the
        // client's delayed ACK (Nagle), 40 ms a streamed answer.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on an accepted connection: {e}");
        }
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests did not finish within {:?}; stopping anyway",
            limits.shutdown_grace
        );
    }
    Ok(())
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(over_capacity().as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncRead, AsyncReadExt};

    use super::*;
    use crate::testutil::*;

    async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let server = fake_provider().await;
        let stack = stack_for(&server).await;
        // The fake provider lives as long as the test's runtime.
        std::mem::forget(server);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(crate::server::app(stack), listener, limits, async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The first bytes the server sends on `conn`, which must come `within`.
    async fn answer_within(conn: &mut (impl AsyncRead + Unpin), within: Duration) -> String {
        let mut out = vec![0u8; 4096];
        let n = tokio::time::timeout(within, conn.read(&mut out))
            .await
            .expect("an answer in time")
            .unwrap();
        String::from_utf8_lossy(&out[..n]).into_owned()
    }

    const HEALTH: &str = "GET /v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

    #[tokio::test]
    async fn half_sent_requests_are_dropped_and_the_server_keeps_answering() {
        let limits = Limits {
            header_read: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, _stop) = start(limits).await;
        let mut slow = Vec::new();
        for _ in 0..200 {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
                .await
                .unwrap();
            slow.push(tcp);
        }
        let answer = exchange(addr, HEALTH).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Past the header timeout, every half-sent connection has been closed by the server.
        tokio::time::sleep(Duration::from_millis(600)).await;
        for tcp in &mut slow {
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
                .await
                .expect("the server closes it")
                .unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
        }
    }

    #[tokio::test]
    async fn connections_over_the_cap_get_a_503_in_openai_shape() {
        let limits = Limits {
            max_connections: 3,
            ..Limits::default()
        };
        let (addr, _stop) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = exchange(addr, HEALTH).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "overloaded");
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(exchange(addr, HEALTH).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_is_a_408() {
        let limits = Limits {
            body_read: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, _stop) = start(limits).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\"",
        )
        .await
        .unwrap();
        let answer = answer_within(&mut tcp, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }

    #[tokio::test]
    async fn a_body_that_drips_is_a_408_at_the_deadline() {
        let limits = Limits {
            body_read: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, _stop) = start(limits).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut rx, mut tx) = tcp.into_split();
        tx.write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n",
        )
        .await
        .unwrap();
        // A byte every 50 ms: never idle for long, never done.
        let drip = tokio::spawn(async move {
            for _ in 0..900 {
                if tx.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        // Before the body could have been sent whole (900 bytes at 20 a second).
        let answer = answer_within(&mut rx, Duration::from_secs(10)).await;
        drip.abort();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
}
