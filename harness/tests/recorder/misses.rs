//! Replay misses: what they say, the nearest recordings with a diff, the record command, bounds.

use harness::context::TestContext;
use harness::recorder::Mode;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::common::{chat, client, miss_of, mock_json, ok_upstream, post};

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
    // The recorded value, 0, on a line of its own (not the start of 0.5).
    assert!(
        text.lines()
            .any(|l| l.trim().trim_end_matches(',') == "-  \"temperature\": 0"),
        "{text}"
    );
    assert!(text.contains("+  \"temperature\": 0.5"), "{text}");
    assert!(text.contains("responses/"), "{text}");
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
async fn a_miss_on_a_huge_body_is_explained_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let server = ok_upstream().await;
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
