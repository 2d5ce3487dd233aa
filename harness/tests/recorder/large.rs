//! Large requests: from 256 KiB the recorder keys and drafts a request on a blocking thread,
//! in `record` mode while the provider works, and lays its half of the blob out beforehand.

use std::time::Duration;

use harness::context::TestContext;
use harness::recorder::Mode;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{blobs, client, post};

/// A chat request of about 400 KB.
fn big_chat() -> Value {
    let messages: Vec<Value> = (0..4_000)
        .map(|i| json!({"role": "user", "content": format!("message {i}: the quick brown fox \"jumps\"\n over the lazy dog")}))
        .collect();
    json!({"model": "m", "messages": messages, "temperature": 0.5})
}

/// The answer's text to `body`, sent through a recorder in `mode` over `dir`, in test `t`.
async fn answer_text(
    mode: Mode,
    dir: &std::path::Path,
    server: &MockServer,
    body: &Value,
) -> String {
    let c = client(mode, dir);
    let resp = TestContext::new("t")
        .scope(post(&c, &server.uri(), body))
        .await
        .unwrap();
    resp.text().await.unwrap()
}

fn answer(id: u32) -> String {
    format!(
        r#"{{"id":"chatcmpl-{id}","created":{id},"object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}}}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_is_recorded_rerecorded_without_rewriting_its_blob_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::builder().start().await;
    let body = big_chat();
    assert!(serde_json::to_vec(&body).unwrap().len() > 256 * 1024);
    for id in [1, 2] {
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(answer(id), "application/json")
                    .set_delay(Duration::from_millis(30)),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    let mut written = None;
    for id in [1, 2] {
        let text = answer_text(Mode::Record, dir.path(), &server, &body).await;
        assert_eq!(text, answer(id));
        let [blob] = &blobs(dir.path())[..] else {
            panic!("one blob: {:?}", blobs(dir.path()))
        };
        let text = std::fs::read(blob).unwrap();
        match &written {
            None => written = Some(text),
            // The same exchange but for its id and time: the blob keeps its bytes.
            Some(first) => assert!(first == &text, "the blob was rewritten"),
        }
    }
    let blob: Value = serde_json::from_slice(written.as_ref().unwrap()).unwrap();
    let messages = blob["request"]["canonical_body"]["messages"]
        .as_array()
        .unwrap();
    assert_eq!(messages.len(), 4_000);
    assert_eq!(
        messages[7],
        json!({"content": "message 7: the quick brown fox \"jumps\"\n over the lazy dog", "role": "user"})
    );
    assert_eq!(blob["response"]["http"]["body"]["json"]["id"], "chatcmpl-1");
    let t_ms = blob["response"]["http"]["t_ms"].as_f64().unwrap();
    assert!(
        (30.0..10_000.0).contains(&t_ms),
        "the provider's time: {t_ms}"
    );

    let text = answer_text(Mode::Replay, dir.path(), &server, &body).await;
    assert_eq!(text, answer(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_records_once_if_missing_and_its_stream_replays() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"o\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"k\"}}]}\n\ndata: [DONE]\n\n";
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;
    let mut body = big_chat();
    body["stream"] = json!(true);
    for _ in 0..2 {
        let text = answer_text(Mode::RecordIfMissing, dir.path(), &server, &body).await;
        assert_eq!(text, sse);
    }
    let text = answer_text(Mode::Replay, dir.path(), &server, &body).await;
    assert_eq!(text, sse);
    let blob: Value =
        serde_json::from_slice(&std::fs::read(&blobs(dir.path())[0]).unwrap()).unwrap();
    assert_eq!(
        blob["request"]["canonical_body"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        4_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_refused_is_recorded_and_replayed_as_the_same_error() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let body = big_chat();
    for mode in [Mode::Record, Mode::Replay] {
        let c = crate::common::client_of_errors(mode, dir.path());
        let err = TestContext::new("t")
            .scope(post(&c, &closed, &body))
            .await
            .unwrap_err();
        match mode {
            Mode::Record => assert!(
                matches!(err, reqwest_middleware::Error::Reqwest(ref e) if e.is_connect()),
                "{err}"
            ),
            _ => {
                let reqwest_middleware::Error::Middleware(e) = err else {
                    panic!("expected a replayed error, got {err}")
                };
                let t = e
                    .downcast_ref::<harness::recorder::RecordedTransportError>()
                    .expect("a recorded transport error");
                assert_eq!(t.kind(), "connect");
            }
        }
        // Written before the error reached the caller.
        assert_eq!(blobs(dir.path()).len(), 1, "{mode:?}");
    }
}
