//! Helpers the recorder tests share: recorders and clients over a temporary directory, request
//! bodies, fake upstreams (wiremock and a raw chunked-stream server) and readers of what was
//! stored.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use harness::recorder::format::{RecordedResponse, StreamEnd};
use harness::recorder::{Mode, Recorder, RecorderConfig, ReplayMiss, Store};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A recorder in `mode` over the recordings directory `dir`.
pub(crate) fn recorder(mode: Mode, dir: &Path) -> Recorder {
    Recorder::new(RecorderConfig::new(mode, dir).unwrap()).unwrap()
}

/// A recorder that stores transient failures too (`LLAMA_STACK_TEST_RECORD_ERRORS=1`), for the
/// tests of error paths.
pub(crate) fn recorder_of_errors(mode: Mode, dir: &Path) -> Recorder {
    let mut config = RecorderConfig::new(mode, dir).unwrap();
    config.record_errors = true;
    Recorder::new(config).unwrap()
}

/// An HTTP client through [`recorder_of_errors`].
pub(crate) fn client_of_errors(mode: Mode, dir: &Path) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(recorder_of_errors(mode, dir))
        .build()
}

/// An HTTP client through [`recorder`].
pub(crate) fn client(mode: Mode, dir: &Path) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(recorder(mode, dir))
        .build()
}

/// A chat-completions body for `model` at `temperature`.
pub(crate) fn chat(model: &str, temperature: f64) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "temperature": temperature})
}

/// POSTs `body` to `{base}/v1/chat/completions`.
pub(crate) async fn post(
    c: &ClientWithMiddleware,
    base: &str,
    body: &Value,
) -> reqwest_middleware::Result<reqwest::Response> {
    c.post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
}

/// The recording blobs (`responses/*.json`) in `dir`, sorted.
pub(crate) fn blobs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("responses"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The replay miss inside a client error (panics on any other error).
pub(crate) fn miss_of(e: &reqwest_middleware::Error) -> &ReplayMiss {
    match e {
        reqwest_middleware::Error::Middleware(a) => a
            .downcast_ref::<ReplayMiss>()
            .unwrap_or_else(|| panic!("not a miss: {a:#}")),
        other => panic!("not a miss: {other}"),
    }
}

/// The upstream answers `body` to chat-completion POSTs, expecting `times` of them.
pub(crate) async fn mock_json(server: &MockServer, body: Value, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/json"))
        .expect(times)
        .mount(server)
        .await;
}

/// An upstream answering `{"ok": true}` to every POST, as often as asked.
pub(crate) async fn ok_upstream() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    server
}

/// The upstream answers `first` to the first POST and `then` to every later one.
pub(crate) async fn answer_once_then(server: &MockServer, first: &str, then: &str) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(first, "application/json"))
        .up_to_n_times(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(then, "application/json"))
        .mount(server)
        .await;
}

/// The one recording in `dir`, which must be a stream: its events and how it ended.
pub(crate) fn the_stream(dir: &Path) -> (Vec<harness::recorder::format::StreamEvent>, StreamEnd) {
    let store = Store::open(dir).unwrap();
    let rows = store.rows().unwrap();
    assert_eq!(rows.len(), 1, "one recording");
    assert!(rows[0].is_streaming, "indexed as a stream");
    let rec = store.get(&rows[0].request_hash).unwrap().unwrap();
    let RecordedResponse::Stream { events, end, .. } = rec.response else {
        panic!("not a stream: {:?}", rec.response)
    };
    (events, end)
}

/// A one-shot HTTP/1.1 server that sends `parts` as chunks with `delay` between them, then
/// either ends the body properly or drops the connection mid-body.
pub(crate) async fn raw_stream_server(
    parts: Vec<&'static str>,
    delay: Duration,
    break_off: bool,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let parts = parts.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for p in parts {
                    tokio::time::sleep(delay).await;
                    let chunk = format!("{:x}\r\n{p}\r\n", p.len());
                    if sock.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                if !break_off {
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A streaming chat-completions body.
pub(crate) fn stream_body() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": true})
}

/// The body chunks of a response as text, and the error chain that ended it early, if any.
pub(crate) async fn chunks(resp: reqwest::Response) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => out.push(String::from_utf8(b.to_vec()).unwrap()),
            // The whole chain: reqwest wraps the body error it got from the stream.
            Err(e) => return (out, Some(support::error::error_chain(&e))),
        }
    }
    (out, None)
}
