//! Provider calls through the harness recorder (feature `replay`): what gets recorded under which
//! key, and how streams end.

use std::path::Path;

use futures::StreamExt;
use harness::recorder::format::{RecordedResponse, StreamEnd};
use harness::recorder::{Mode, Store};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::testutil::{
    chat_chunks, chat_reply, fake_provider_listing, recorded_stack, renamed, sse, sse_body,
};
use crate::{RunConfig, Stack, StackClient};

/// A provider listing `models` whose chat completions (plain and streamed) answer `text`.
async fn provider(models: &[&str], text: &str) -> MockServer {
    let server = fake_provider_listing(models).await;
    let mut chunks = chat_chunks("m");
    chunks[1]["choices"][0]["delta"]["content"] = json!(text);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(wiremock::matchers::body_partial_json(
            json!({"stream": true}),
        ))
        .respond_with(sse(sse_body(&chunks)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_reply("m", text)))
        .mount(&server)
        .await;
    server
}

/// Two OpenAI-compatible providers `one` and `two` at the given URLs.
fn two_providers(one: &str, two: &str) -> RunConfig {
    let text = format!(
        r#"
[[providers]]
provider_id = "one"
provider_type = "remote::vllm"
base_url = "{one}/v1"

[[providers]]
provider_id = "two"
provider_type = "remote::vllm"
base_url = "{two}/v1"
"#
    );
    RunConfig::from_toml_str(&text, "two providers").unwrap_or_else(|e| panic!("{e}"))
}

fn model_ids(stack: &Stack) -> Vec<String> {
    let mut ids: Vec<String> = stack
        .registry()
        .models()
        .iter()
        .map(|m| m.id.clone())
        .collect();
    ids.sort();
    ids
}

/// The answers of both providers to the same chat request, plain and streamed.
async fn ask_both(stack: &Stack) -> Vec<Value> {
    let client = StackClient::library(stack.clone());
    let mut answers = Vec::new();
    for model in ["one/m", "two/m"] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let plain = client
            .chat_completion(body.clone())
            .await
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        answers.push(plain["choices"][0]["message"]["content"].clone());
        let mut stream_body = body;
        stream_body["stream"] = json!(true);
        let chunks: Vec<Value> = client
            .chat_completion_stream(stream_body)
            .map(|c| c.unwrap_or_else(|e| panic!("{model} stream: {e}")))
            .collect()
            .await;
        answers.push(chunks[1]["choices"][0]["delta"]["content"].clone());
    }
    answers
}

#[tokio::test]
async fn providers_asked_the_same_thing_get_their_own_recordings() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = provider(&["m", "only-a"], "from A").await;
    let b = provider(&["m", "only-b"], "from B").await;
    let config = two_providers(&a.uri(), &b.uri());
    let want_models = ["one/m", "one/only-a", "two/m", "two/only-b"];
    let want_answers = [
        json!("from A"),
        json!("from A"),
        json!("from B"),
        json!("from B"),
    ];

    let recording = recorded_stack(Mode::RecordIfMissing, dir.path(), config.clone()).await;
    assert_eq!(model_ids(&recording), want_models);
    assert_eq!(ask_both(&recording).await, want_answers);
    drop(recording);
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let rows = store.rows().unwrap_or_else(|e| panic!("{e}"));
    let count = |endpoint: &str| rows.iter().filter(|r| r.endpoint == endpoint).count();
    assert_eq!(
        count("/v1/models"),
        2,
        "one discovery per provider: {rows:#?}"
    );
    assert_eq!(
        count("/v1/chat/completions"),
        4,
        "plain and streamed chat per provider: {rows:#?}"
    );

    // Offline: each provider gets its own models and answers back.
    drop((a, b));
    let replaying = recorded_stack(Mode::Replay, dir.path(), config).await;
    assert_eq!(model_ids(&replaying), want_models);
    assert_eq!(ask_both(&replaying).await, want_answers);
}

/// The recorded response of the only streamed recording in `dir`.
fn recorded_stream(dir: &Path) -> RecordedResponse {
    let store = Store::open(dir).unwrap_or_else(|e| panic!("{e}"));
    let rows = store.rows().unwrap_or_else(|e| panic!("{e}"));
    let streams: Vec<_> = rows.iter().filter(|r| r.is_streaming).collect();
    assert_eq!(streams.len(), 1, "{rows:#?}");
    store
        .get(&streams[0].request_hash)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no blob for {}", streams[0].request_hash))
        .response
}

#[tokio::test]
async fn a_recorded_stream_ends_complete_and_replays_to_its_end() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let upstream = crate::testutil::fake_provider().await;
    let chunks = chat_chunks("smollm2-135m");
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse(sse_body(&chunks)))
        .mount(&upstream)
        .await;
    let config = crate::testutil::config_for(&upstream.uri());
    let body = json!({"model": "llamacpp/smollm2-135m", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let want = renamed(&chunks, "llamacpp/smollm2-135m");

    let stack = recorded_stack(Mode::RecordIfMissing, dir.path(), config.clone()).await;
    let got: Vec<Value> = StackClient::library(stack)
        .chat_completion_stream(body.clone())
        .map(|c| c.unwrap_or_else(|e| panic!("{e}")))
        .collect()
        .await;
    assert_eq!(got, want);
    match recorded_stream(dir.path()) {
        RecordedResponse::Stream { end, events, .. } => {
            assert_eq!(end, StreamEnd::Complete);
            assert!(
                events.last().is_some_and(|e| e.raw.contains("[DONE]")),
                "{events:#?}"
            );
        }
        other => panic!("not a stream: {other:?}"),
    }

    // A replay reads the recording to its end without an error.
    drop(upstream);
    let stack = recorded_stack(Mode::Replay, dir.path(), config).await;
    let replayed: Vec<_> = StackClient::library(stack)
        .chat_completion_stream(body)
        .collect()
        .await;
    let replayed: Vec<Value> = replayed
        .into_iter()
        .map(|c| c.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(replayed, want);
}
