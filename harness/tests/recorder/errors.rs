//! Errors: provider errors, refused connections, timeouts and broken streams, recorded (when
//! asked) and replayed as the same error.

use std::time::Duration;

use harness::context::TestContext;
use harness::recorder::format::StreamEnd;
use harness::recorder::{Mode, RecordedTransportError, Store};
use reqwest_middleware::ClientBuilder;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{
    chat, chunks, client, client_of_errors, ok_upstream, post, raw_stream_server,
    recorder_of_errors, stream_body, the_stream,
};

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

/// A body nested more deeply than a recording can be read back is refused with an error that
/// says so, and nothing is stored; one at the limit records and replays.
#[tokio::test]
async fn a_body_too_deep_to_load_back_is_refused_and_one_at_the_limit_replays() {
    fn nested(levels: usize) -> serde_json::Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    }
    let deepest = harness::recorder::store::MAX_BLOB_DEPTH;
    // serde_json's own limit: the blob's maximum is what it reads, one more it does not.
    let text = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
    assert!(serde_json::from_str::<serde_json::Value>(&text(deepest)).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(&text(deepest + 1)).is_err());

    let server = ok_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(Mode::Record, dir.path());
    // The canonical body sits three levels into the blob: model + messages, then the nesting.
    let deep = json!({"model": "m", "messages": nested(deepest)});
    let err = TestContext::new("deep")
        .scope(post(&c, &server.uri(), &deep))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("not recorded") && msg.contains("nested less deeply"),
        "{msg}"
    );
    assert!(Store::open(dir.path()).unwrap().rows().unwrap().is_empty());

    let fits = json!({"model": "m", "messages": nested(deepest - 4)});
    TestContext::new("fits")
        .scope(post(&c, &server.uri(), &fits))
        .await
        .unwrap();
    let replay = client(Mode::Replay, dir.path());
    let answer: serde_json::Value = TestContext::new("fits")
        .scope(post(&replay, &server.uri(), &fits))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({"ok": true}));
}
