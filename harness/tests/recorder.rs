//! Behaviour of the recorder against fake upstreams: modes, streams, errors, secrets, misses and
//! the index. (The integration suite exercises it against a real llama.cpp server.)

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use harness::context::TestContext;
use harness::recorder::format::{RecordedResponse, StreamEnd};
use harness::recorder::{
    Mode, RecordedTransportError, Recorder, RecorderConfig, ReplayMiss, ReplayTiming, Store,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn recorder(mode: Mode, dir: &Path) -> Recorder {
    Recorder::new(RecorderConfig::new(mode, dir).unwrap()).unwrap()
}

/// A recorder that stores transient failures too (`LLAMA_STACK_TEST_RECORD_ERRORS=1`), for the
/// tests of error paths.
fn recorder_of_errors(mode: Mode, dir: &Path) -> Recorder {
    let mut config = RecorderConfig::new(mode, dir).unwrap();
    config.record_errors = true;
    Recorder::new(config).unwrap()
}

fn client_of_errors(mode: Mode, dir: &Path) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(recorder_of_errors(mode, dir))
        .build()
}

fn client(mode: Mode, dir: &Path) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(recorder(mode, dir))
        .build()
}

fn chat(model: &str, temperature: f64) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "temperature": temperature})
}

async fn post(
    c: &ClientWithMiddleware,
    base: &str,
    body: &Value,
) -> reqwest_middleware::Result<reqwest::Response> {
    c.post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
}

fn blobs(dir: &Path) -> Vec<std::path::PathBuf> {
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

fn miss_of(e: &reqwest_middleware::Error) -> &ReplayMiss {
    match e {
        reqwest_middleware::Error::Middleware(a) => a
            .downcast_ref::<ReplayMiss>()
            .unwrap_or_else(|| panic!("not a miss: {a:#}")),
        other => panic!("not a miss: {other}"),
    }
}

async fn mock_json(server: &MockServer, body: Value, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/json"))
        .expect(times)
        .mount(server)
        .await;
}

/// The upstream answers `first` to the first POST and `then` to every later one.
async fn answer_once_then(server: &MockServer, first: &str, then: &str) {
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
fn the_stream(dir: &Path) -> (Vec<harness::recorder::format::StreamEvent>, StreamEnd) {
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

#[tokio::test]
async fn replay_never_touches_the_network_and_a_miss_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    mock_json(&server, json!({"ok": true}), 0).await;
    let c = client(Mode::Replay, dir.path());
    let err = TestContext::new("suite/chat.rs::basic[txt=m]")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap_err();
    let miss = miss_of(&err);
    let text = miss.to_string();
    for needle in [
        &miss.request_hash[..],
        "suite/chat.rs::basic[txt=m]",
        "POST /v1/chat/completions",
        "model:    m",
        "record-if-missing",
        "No recording exists",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[tokio::test]
async fn record_if_missing_records_once_then_replays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    // A body with unusual spacing and number spelling: replay must give back the same bytes.
    let raw = "{\"z\": 1.50, \"a\":[1,2],  \"id\":\"x\"}";
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(raw, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    for _ in 0..2 {
        let c = client(Mode::RecordIfMissing, dir.path());
        let resp = TestContext::new("t")
            .scope(post(&c, &server.uri(), &chat("m", 0.0)))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.text().await.unwrap(), raw);
    }
    // And in replay, from a fresh recorder.
    let c = client(Mode::Replay, dir.path());
    let resp = TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), raw);
    assert_eq!(blobs(dir.path()).len(), 1);
    let blob = std::fs::read_to_string(&blobs(dir.path())[0]).unwrap();
    assert!(blob.contains(raw), "the body is stored verbatim:\n{blob}");
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite")).unwrap();
    let (endpoint, model, streaming): (String, String, bool) = conn
        .query_row(
            "SELECT endpoint, model, is_streaming FROM recordings",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (endpoint.as_str(), model.as_str(), streaming),
        ("/v1/chat/completions", "m", false)
    );
}

#[tokio::test]
async fn record_replaces_and_live_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    answer_once_then(&server, "{\"n\":1}", "{\"n\":2}").await;
    for _ in 0..2 {
        let c = client(Mode::Record, dir.path());
        TestContext::new("t")
            .scope(post(&c, &server.uri(), &chat("m", 0.0)))
            .await
            .unwrap();
    }
    assert_eq!(blobs(dir.path()).len(), 1, "record replaces, never appends");
    let c = client(Mode::Replay, dir.path());
    let r = TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "{\"n\":2}");

    let live_dir = tempfile::tempdir().unwrap();
    let c = client(Mode::Live, live_dir.path());
    TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap();
    assert!(
        std::fs::read_dir(live_dir.path()).unwrap().next().is_none(),
        "live writes nothing"
    );
}

#[tokio::test]
async fn repeated_requests_in_a_test_get_their_own_recordings_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    answer_once_then(&server, "{\"n\":1}", "{\"n\":2}").await;
    let c = client(Mode::RecordIfMissing, dir.path());
    let base = server.uri();
    TestContext::new("t")
        .scope(async {
            post(&c, &base, &chat("m", 0.0)).await.unwrap();
            post(&c, &base, &chat("m", 0.0)).await.unwrap();
        })
        .await;
    let c = client(Mode::Replay, dir.path());
    let got = TestContext::new("t")
        .scope(async {
            let a = post(&c, &base, &chat("m", 0.0))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let b = post(&c, &base, &chat("m", 0.0))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let third = post(&c, &base, &chat("m", 0.0)).await.unwrap_err();
            let text = miss_of(&third).to_string();
            assert!(text.contains("occurrence 2"), "{text}");
            assert!(text.contains("sends the request again"), "{text}");
            (a, b)
        })
        .await;
    assert_eq!(got, ("{\"n\":1}".to_owned(), "{\"n\":2}".to_owned()));
}

#[tokio::test]
async fn a_miss_shows_the_nearest_recording_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    mock_json(&server, json!({"ok": 1}), 1).await;
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap();
    let c = client(Mode::Replay, dir.path());
    let err = TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.5)))
        .await
        .unwrap_err();
    let text = miss_of(&err).to_string();
    assert!(text.contains("Nearest recordings"), "{text}");
    assert!(
        text.contains("-  \"temperature\": 0\n") || text.contains("-  \"temperature\": 0"),
        "{text}"
    );
    assert!(text.contains("+  \"temperature\": 0.5"), "{text}");
    assert!(text.contains("responses/"), "{text}");
}

#[tokio::test]
async fn provider_http_errors_and_connection_refusals_replay_as_the_same_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_raw(
            "{\"error\":{\"message\":\"slow down\"}}",
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let rec = client_of_errors(Mode::RecordIfMissing, dir.path());
    let (status, err) = TestContext::new("t")
        .scope(async {
            let r = post(&rec, &server.uri(), &chat("m", 0.0)).await.unwrap();
            let e = post(&rec, &closed, &chat("other", 0.0)).await.unwrap_err();
            (r.status(), e)
        })
        .await;
    assert_eq!(status, 429);
    assert!(
        matches!(err, reqwest_middleware::Error::Reqwest(ref e) if e.is_connect()),
        "{err}"
    );

    let c = client(Mode::Replay, dir.path());
    TestContext::new("t")
        .scope(async {
            let r = post(&c, &server.uri(), &chat("m", 0.0)).await.unwrap();
            assert_eq!(r.status(), 429);
            assert_eq!(
                r.text().await.unwrap(),
                "{\"error\":{\"message\":\"slow down\"}}"
            );
            let e = post(&c, &closed, &chat("other", 0.0)).await.unwrap_err();
            let reqwest_middleware::Error::Middleware(a) = e else {
                panic!("expected a replayed error")
            };
            let t = a
                .downcast_ref::<RecordedTransportError>()
                .expect("a recorded transport error");
            assert_eq!(t.kind(), "connect");
        })
        .await;
}

const SSE: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";

/// A one-shot HTTP/1.1 server that sends `parts` as chunks with `delay` between them, then
/// either ends the body properly or drops the connection mid-body.
async fn raw_stream_server(parts: Vec<&'static str>, delay: Duration, break_off: bool) -> String {
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

fn stream_body() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": true})
}

async fn chunks(resp: reqwest::Response) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => out.push(String::from_utf8(b.to_vec()).unwrap()),
            Err(e) => {
                // The whole chain: reqwest wraps the body error it got from the stream.
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(inner) = source {
                    text.push_str(&format!(": {inner}"));
                    source = inner.source();
                }
                return (out, Some(text));
            }
        }
    }
    (out, None)
}

#[tokio::test]
async fn streams_are_forwarded_as_they_arrive_and_replayed_with_their_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    // Two events split across three network chunks.
    let base = raw_stream_server(
        vec![
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"cho",
            "ices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: [DONE]\n\n",
        ],
        Duration::from_millis(30),
        false,
    )
    .await;
    let c = client(Mode::RecordIfMissing, dir.path());
    let recorded = TestContext::new("t")
        .scope(async {
            let resp = post(&c, &base, &stream_body()).await.unwrap();
            let mut s = resp.bytes_stream();
            // The first chunk reaches the caller before the provider has sent the rest.
            let first = s.next().await.unwrap().unwrap();
            assert!(first.starts_with(b"data: {\"choices\""));
            let mut all = first.to_vec();
            while let Some(b) = s.next().await {
                all.extend_from_slice(&b.unwrap());
            }
            String::from_utf8(all).unwrap()
        })
        .await;
    assert_eq!(recorded, SSE);
    let (events, end) = the_stream(dir.path());
    assert_eq!(end, StreamEnd::Complete);
    assert_eq!(events.len(), 3);
    assert!(events.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));

    let c = client(Mode::Replay, dir.path());
    let (got, err) = TestContext::new("t")
        .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
        .await;
    assert!(err.is_none());
    assert_eq!(
        got,
        vec![
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n".to_owned(),
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n".to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_stream_the_caller_drops_early_is_read_to_its_end_and_recorded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let base = raw_stream_server(
        vec![
            "data: {\"a\":1}\n\n",
            "data: {\"a\":2}\n\n",
            "data: [DONE]\n\n",
        ],
        Duration::from_millis(50),
        false,
    )
    .await;
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("t")
        .scope(async {
            let resp = post(&c, &base, &stream_body()).await.unwrap();
            let mut s = resp.bytes_stream();
            s.next().await.unwrap().unwrap();
            // dropped here, after one event
        })
        .await;
    // The rest is read in the background; the recording appears when the stream ends.
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..100 {
        if !store.rows().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (events, end) = the_stream(dir.path());
    assert_eq!(events.len(), 3);
    assert_eq!(end, StreamEnd::Complete);
    // Replay gives every event, to a caller that reads them all.
    let c = client(Mode::Replay, dir.path());
    let (got, err) = TestContext::new("t")
        .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
        .await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(err.is_none(), "{err:?}");
}

#[tokio::test]
async fn transient_failures_are_not_recorded_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .expect(2)
        .mount(&server)
        .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let broken =
        raw_stream_server(vec!["data: {\"a\":1}\n\n"], Duration::from_millis(5), true).await;
    // Twice in record-if-missing: nothing is stored, so the second run calls the provider again.
    for _ in 0..2 {
        let c = client(Mode::RecordIfMissing, dir.path());
        TestContext::new("t")
            .scope(async {
                assert_eq!(
                    post(&c, &server.uri(), &chat("m", 0.0))
                        .await
                        .unwrap()
                        .status(),
                    503
                );
                post(&c, &closed, &chat("other", 0.0)).await.unwrap_err();
                let (_, err) = chunks(post(&c, &broken, &stream_body()).await.unwrap()).await;
                assert!(err.is_some());
            })
            .await;
    }
    assert!(Store::open(dir.path()).unwrap().rows().unwrap().is_empty());
    // Asked for, they are.
    let c = client_of_errors(Mode::RecordIfMissing, dir.path());
    TestContext::new("t")
        .scope(async { post(&c, &closed, &chat("other", 0.0)).await.unwrap_err() })
        .await;
    assert_eq!(Store::open(dir.path()).unwrap().rows().unwrap().len(), 1);
}

#[tokio::test]
async fn record_mode_never_replaces_a_good_recording_with_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&server)
        .await;
    for errors in [false, true] {
        let c = if errors {
            client_of_errors(Mode::Record, dir.path())
        } else {
            client(Mode::Record, dir.path())
        };
        TestContext::new("t")
            .scope(post(&c, &server.uri(), &chat("m", 0.0)))
            .await
            .unwrap();
    }
    let c = client(Mode::Replay, dir.path());
    let r = TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the good recording is kept");
}

#[tokio::test]
async fn a_provider_error_mid_stream_replays_after_the_chunks_that_came_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = raw_stream_server(
        vec!["data: {\"a\":1}\n\n", "data: {\"a\":2}\n\n"],
        Duration::from_millis(5),
        true,
    )
    .await;
    let c = client_of_errors(Mode::RecordIfMissing, dir.path());
    let (live_chunks, live_err) = TestContext::new("t")
        .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
        .await;
    assert_eq!(
        live_chunks.concat(),
        "data: {\"a\":1}\n\ndata: {\"a\":2}\n\n"
    );
    assert!(live_err.is_some(), "the caller sees the provider's failure");
    let (events, end) = the_stream(dir.path());
    assert_eq!(events.len(), 2);
    let StreamEnd::Error {
        message: recorded, ..
    } = end
    else {
        panic!("recorded as {end:?}")
    };
    let c = client(Mode::Replay, dir.path());
    let (got, err) = TestContext::new("t")
        .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
        .await;
    assert_eq!(
        got,
        vec![
            "data: {\"a\":1}\n\n".to_owned(),
            "data: {\"a\":2}\n\n".to_owned()
        ]
    );
    let err = err.expect("the recorded error is replayed");
    assert!(
        err.contains(&recorded),
        "replayed {err:?}, recorded {recorded:?}"
    );
}

#[test]
fn paced_replay_follows_the_recorded_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = raw_stream_server(
            vec!["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"],
            Duration::from_millis(80),
            false,
        )
        .await;
        let c = client(Mode::RecordIfMissing, dir.path());
        TestContext::new("t")
            .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
            .await;
    });
    let (events, _) = the_stream(dir.path());
    let last = events.last().unwrap().t_ms;
    // Replay on a paused clock: virtual time advances exactly as far as the pacing sleeps.
    for (timing, paced) in [
        (ReplayTiming::Recorded, true),
        (ReplayTiming::Instant, false),
    ] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let elapsed = rt.block_on(async {
            let mut cfg = RecorderConfig::new(Mode::Replay, dir.path()).unwrap();
            cfg.timing = timing;
            let c = ClientBuilder::new(reqwest::Client::new())
                .with(Recorder::new(cfg).unwrap())
                .build();
            let start = tokio::time::Instant::now();
            let (got, _) = TestContext::new("t")
                .scope(async {
                    chunks(
                        post(&c, "http://127.0.0.1:9", &stream_body())
                            .await
                            .unwrap(),
                    )
                    .await
                })
                .await;
            assert_eq!(got.len(), 3);
            start.elapsed().as_secs_f64() * 1000.0
        });
        if paced {
            assert!(
                elapsed >= last - 1.0,
                "paced replay took {elapsed} ms, recording spans {last} ms"
            );
            assert!(
                last >= 200.0,
                "events were recorded ~80 ms apart, last at {last} ms"
            );
        } else {
            assert!(
                elapsed < 1.0,
                "instant replay slept {elapsed} ms of virtual time"
            );
        }
    }
}

#[tokio::test]
async fn secrets_never_reach_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    // The provider echoes the key in an error and returns a token field.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            "{\"error\":{\"message\":\"Incorrect API key provided: sk-planted-bearer-1111\"},\"session_token\":\"resp-planted-2222\",\"password\":\"resp-planted-pw\"}",
            "application/json",
        ))
        .mount(&server)
        .await;
    let planted = [
        "sk-planted-bearer-1111",
        "planted-api-key-3333",
        "planted-x-api-key-4444",
        "planted-cookie-5555",
        "planted-provider-data-6666",
        "planted-query-key-7777",
        "planted-query-apikey-8888",
        "planted-query-token-9999",
        "planted-body-apikey-aaaa",
        "planted-body-token-bbbb",
        "planted-body-password-cccc",
        "planted-body-secret-dddd",
        "planted-body-auth-eeee",
        "resp-planted-2222",
        "resp-planted-pw",
    ];
    let c = client(Mode::RecordIfMissing, dir.path());
    let url = format!(
        "{}/v1/chat/completions?key=planted-query-key-7777&api_key=planted-query-apikey-8888&token=planted-query-token-9999&api-version=1",
        server.uri()
    );
    let body = json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "api_key": "planted-body-apikey-aaaa",
        "extra_body": {"token": "planted-body-token-bbbb", "password": "planted-body-password-cccc", "client_secret": "planted-body-secret-dddd"},
        "authorization": "planted-body-auth-eeee",
    });
    let resp = TestContext::new("t")
        .scope(
            c.post(url)
                .header("Authorization", "Bearer sk-planted-bearer-1111")
                .header("api-key", "planted-api-key-3333")
                .header("x-api-key", "planted-x-api-key-4444")
                .header("cookie", "session=planted-cookie-5555")
                .header(
                    "X-LlamaStack-Provider-Data",
                    "{\"__test_id\":\"t\",\"openai_api_key\":\"planted-provider-data-6666\"}",
                )
                .json(&body)
                .send(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The caller still gets the provider's own words; only the disk is scrubbed.
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("sk-planted-bearer-1111")
    );
    let mut files = 0;
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        files += 1;
        for p in planted {
            assert!(!text.contains(p), "{p} found in {}", entry.display());
        }
    }
    assert!(files >= 2, "the blob and the index were checked");
    let blob = std::fs::read_to_string(&blobs(dir.path())[0]).unwrap();
    assert!(
        blob.contains("<redacted>") && blob.contains("api-version"),
        "{blob}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn record_three(dir: &Path, server: &MockServer) {
    let c = client(Mode::RecordIfMissing, dir);
    for (i, t) in ["a", "b", "c"].into_iter().enumerate() {
        TestContext::new(t)
            .scope(post(&c, &server.uri(), &chat("m", i as f64)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_index_is_rebuilt_when_deleted_truncated_conflicted_or_stale() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    mock_json(&server, json!({"ok": 1}), 3).await;
    record_three(dir.path(), &server).await;
    let expected = Store::open(dir.path()).unwrap().rows().unwrap();
    assert_eq!(expected.len(), 3);
    let index = dir.path().join("index.sqlite");

    std::fs::remove_file(&index).unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.rows().unwrap(), expected, "deleted");
    drop(s);

    let len = std::fs::metadata(&index).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let _ = std::fs::remove_file(dir.path().join("index.sqlite-wal"));
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.rows().unwrap(), expected, "truncated");
    drop(s);

    std::fs::write(
        &index,
        "<<<<<<< HEAD\nbinary\n=======\nother\n>>>>>>> branch\n",
    )
    .unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert!(s.sync_report().recreated);
    assert_eq!(s.rows().unwrap(), expected, "merge-conflicted");
    drop(s);

    // Stale: an index from before a blob was added (e.g. the other side of a merge), and one
    // that still lists a blob that is gone.
    let old_index = std::fs::read(&index).unwrap();
    let extra = MockServer::start().await;
    mock_json(&extra, json!({"ok": 2}), 1).await;
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("d")
        .scope(post(&c, &extra.uri(), &chat("m", 9.0)))
        .await
        .unwrap();
    drop(c);
    let with_four = Store::open(dir.path()).unwrap().rows().unwrap();
    assert_eq!(with_four.len(), 4);
    std::fs::write(&index, &old_index).unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.sync_report().added, 1);
    assert_eq!(s.rows().unwrap(), with_four, "stale (missing row)");
    drop(s);
    std::fs::remove_file(dir.path().join(&expected[0].response_file)).unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.sync_report().removed, 1);
    assert_eq!(s.rows().unwrap().len(), 3, "stale (row without blob)");
}

#[tokio::test]
async fn provider_labels_keep_identical_requests_to_two_providers_apart() {
    use harness::recorder::ProviderLabel;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (MockServer::start().await, MockServer::start().await);
    for (server, body) in [
        (&a, "{\"data\":[{\"id\":\"from-a\"}]}"),
        (&b, "{\"data\":[{\"id\":\"from-b\"}]}"),
    ] {
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .expect(1)
            .mount(server)
            .await;
    }
    // Outside any test, as model discovery is: same method, path and (empty) body.
    let get = |c: &ClientWithMiddleware, base: String, label: &str| {
        c.get(format!("{base}/v1/models"))
            .with_extension(ProviderLabel(label.into()))
            .send()
    };
    let c = client(Mode::RecordIfMissing, dir.path());
    get(&c, a.uri(), "a").await.unwrap();
    get(&c, b.uri(), "b").await.unwrap();
    assert_eq!(blobs(dir.path()).len(), 2, "one recording per provider");
    let c = client(Mode::Replay, dir.path());
    let from_b = get(&c, "http://127.0.0.1:9".into(), "b")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(from_b.contains("from-b"), "{from_b}");
}

#[tokio::test]
async fn a_client_without_an_execution_nonce_can_run_a_test_again() {
    // Llama Stack's clients send only __test_id: every identical request is occurrence 0.
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    mock_json(&server, json!({"ok": 1}), 1).await;
    let rec = recorder(Mode::RecordIfMissing, dir.path());
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(rec.clone())
        .build();
    let ctx = TestContext::from_provider_data(r#"{"__test_id": "llama-stack-client::t"}"#).unwrap();
    for _ in 0..2 {
        // The same test run twice against one long-lived recorder (a server).
        ctx.clone()
            .scope(post(&c, &server.uri(), &chat("m", 0.0)))
            .await
            .unwrap();
    }
    assert_eq!(blobs(dir.path()).len(), 1);
}

#[tokio::test]
async fn a_timeout_replays_as_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(5))
                .set_body_raw("{}", "application/json"),
        )
        .mount(&server)
        .await;
    let rec = recorder_of_errors(Mode::RecordIfMissing, dir.path());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let c = ClientBuilder::new(http).with(rec).build();
    let err = TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, reqwest_middleware::Error::Reqwest(ref e) if e.is_timeout()),
        "{err}"
    );
    let c = client(Mode::Replay, dir.path());
    let err = TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(a) = err else {
        panic!("expected a replayed error")
    };
    assert_eq!(
        a.downcast_ref::<RecordedTransportError>()
            .expect("recorded")
            .kind(),
        "timeout"
    );
}

#[tokio::test]
async fn a_miss_outside_any_test_suggests_a_command_without_a_test_filter() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(Mode::Replay, dir.path());
    let err = c
        .get("http://127.0.0.1:9/v1/models")
        .send()
        .await
        .unwrap_err();
    let text = miss_of(&err).to_string();
    assert!(
        text.contains("record-if-missing") && !text.contains("--pattern ''"),
        "{text}"
    );
}

#[tokio::test]
async fn killed_writers_leftovers_are_removed_at_open_and_blobs_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap();
    let responses = dir.path().join("responses");
    let stale = responses.join(".abc123.tmp");
    let fresh = responses.join(".def456.tmp");
    std::fs::write(&stale, "{\"half\": ").unwrap();
    std::fs::write(&fresh, "{\"in flight\": ").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.sync_report().stale_temp_files, 1);
    assert!(
        !stale.exists() && fresh.exists(),
        "only the old leftover goes"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let blob = std::fs::read_dir(&responses)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .unwrap();
        assert_eq!(blob.metadata().unwrap().permissions().mode() & 0o777, 0o644);
    }
}

#[tokio::test]
async fn a_miss_on_a_huge_body_is_explained_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let messages = |changed: usize| -> Value {
        let m: Vec<Value> = (0..20_000)
            .map(|i| json!({"role": "user", "content": if i == changed { format!("edited {i}") } else { format!("message {i} {}", "z".repeat(40)) }}))
            .collect();
        json!({"model": "m", "messages": m})
    };
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("big")
        .scope(post(&c, &server.uri(), &messages(usize::MAX)))
        .await
        .unwrap();
    let c = client(Mode::Replay, dir.path());
    let err = TestContext::new("big")
        .scope(post(&c, &server.uri(), &messages(10_000)))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.len() <= 66 * 1024, "{} bytes", text.len());
    assert!(
        text.contains("Nearest recordings"),
        "{}",
        &text[..2000.min(text.len())]
    );
    assert!(
        text.contains("\"content\": \"edited 10000\""),
        "the change is shown: {}",
        &text[..4000.min(text.len())]
    );
}
