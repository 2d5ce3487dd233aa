//! Recording modes: record-if-missing, record, live and replay; occurrences within a test;
//! provider labels.

use harness::context::TestContext;
use harness::recorder::Mode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{answer_once_then, blobs, chat, client, miss_of, mock_json, post, recorder};

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
