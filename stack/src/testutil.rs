//! Test helpers: a fake OpenAI-compatible provider (wiremock) and a stack pointed at it.

use futures::StreamExt;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{ApiError, Reply, RunConfig, Stack};

/// Provider model ids the fake provider lists.
pub const LISTED: [&str; 2] = ["smollm2-135m", "all-minilm-l6-v2"];

/// A fake provider that lists [`LISTED`] at `GET /v1/models`.
pub async fn fake_provider() -> MockServer {
    fake_provider_listing(&LISTED).await
}

/// A fake provider that lists `models` at `GET /v1/models`.
pub async fn fake_provider_listing(models: &[&str]) -> MockServer {
    let server = MockServer::start().await;
    let data: Vec<Value> = models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "llamacpp"}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data})),
        )
        .mount(&server)
        .await;
    server
}

/// A run config with one llama.cpp provider at `base_url` (given without `/v1`), the embedding
/// model registered with its dimension, and a registered-only model `extra`.
pub fn config_for(base_url: &str) -> RunConfig {
    let text = r#"
[[providers]]
provider_id = "llamacpp"
provider_type = "remote::llamacpp"
base_url = "${env.URL}"

[[models]]
provider_id = "llamacpp"
provider_model_id = "all-minilm-l6-v2"
model_type = "embedding"
metadata = { embedding_dimension = 384 }

[[models]]
provider_id = "llamacpp"
provider_model_id = "extra"
"#;
    let url = base_url.to_owned();
    let env = move |name: &str| (name == "URL").then(|| url.clone());
    match RunConfig::from_toml_str_with_env(text, "test config", &env) {
        Ok(mut c) => {
            c.storage.db_path = test_db_path();
            c
        }
        Err(e) => panic!("test config: {e}"),
    }
}

/// A stack routed to `server`, built without the environment's recorder.
pub async fn stack_for(server: &MockServer) -> Stack {
    stack_with(config_for(&server.uri()), plain_client()).await
}

/// A provider client with no middleware (no recorder, no client spans).
pub fn plain_client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build()
}

/// A stack of `config` reaching its providers through `client`.
pub async fn stack_with(config: RunConfig, client: ClientWithMiddleware) -> Stack {
    match Stack::from_config_with_client(config, client).await {
        Ok(s) => s,
        Err(e) => panic!("stack: {e}"),
    }
}

/// A stack of `config` whose provider client records into (or replays from) `dir`.
#[cfg(feature = "replay")]
pub async fn recorded_stack(
    mode: harness::recorder::Mode,
    dir: &std::path::Path,
    config: RunConfig,
) -> Stack {
    recorded_stack_over(mode, dir, config, reqwest::Client::new()).await
}

/// [`recorded_stack`] over a given reqwest client (e.g. one trusting a test CA).
#[cfg(feature = "replay")]
pub async fn recorded_stack_over(
    mode: harness::recorder::Mode,
    dir: &std::path::Path,
    config: RunConfig,
    http: reqwest::Client,
) -> Stack {
    use harness::recorder::{Recorder, RecorderConfig};
    let recorder_config = RecorderConfig::new(mode, dir).unwrap_or_else(|e| panic!("{e}"));
    let recorder = Recorder::new(recorder_config).unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest_middleware::ClientBuilder::new(http)
        .with(recorder)
        .build();
    stack_with(config, client).await
}

/// The JSON of a reply that must be JSON.
pub fn json_reply(reply: Result<Reply, ApiError>) -> Value {
    match reply {
        Ok(Reply::Json(v)) => v,
        Ok(Reply::Raw(o)) => o.to_value(),
        other => panic!("expected JSON, got {other:?}"),
    }
}

/// Every item of a reply that must be a stream.
pub async fn stream_reply(reply: Result<Reply, ApiError>) -> Vec<Result<Value, ApiError>> {
    match reply {
        Ok(Reply::Stream(s)) => s.collect().await,
        other => panic!("expected a stream, got {other:?}"),
    }
}

/// A chat completion as llama.cpp sends it, for provider model `model`.
pub fn chat_reply(model: &str, text: &str) -> Value {
    json!({
        "choices": [{"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": text}}],
        "created": 1_763_000_000,
        "model": model,
        "system_fingerprint": "b1-0c1e570",
        "object": "chat.completion",
        "usage": {"completion_tokens": 2, "prompt_tokens": 5, "total_tokens": 7},
        "id": "chatcmpl-abc",
        "timings": {"prompt_n": 5, "predicted_per_second": 123.25}
    })
}

/// Streamed chat chunks for provider model `model`, the last one carrying usage.
pub fn chat_chunks(model: &str) -> Vec<Value> {
    let chunk = |delta: Value, finish: Value| {
        json!({"choices": [{"finish_reason": finish, "index": 0, "delta": delta}], "created": 1,
               "id": "chatcmpl-s", "model": model, "system_fingerprint": "b1", "object": "chat.completion.chunk"})
    };
    vec![
        chunk(json!({"role": "assistant", "content": null}), Value::Null),
        chunk(json!({"content": "Hello"}), Value::Null),
        chunk(json!({"content": ",\n\ndata: not an event"}), Value::Null),
        chunk(json!({}), json!("stop")),
        json!({"choices": [], "created": 1, "id": "chatcmpl-s", "model": model, "object": "chat.completion.chunk",
               "usage": {"completion_tokens": 3, "prompt_tokens": 5, "total_tokens": 8}}),
    ]
}

/// The SSE body a provider sends for `chunks`, with a comment and `[DONE]`.
pub fn sse_body(chunks: &[Value]) -> String {
    let mut body = String::from(": keep-alive comment\n\n");
    for c in chunks {
        body.push_str(&format!("data: {c}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    body
}

/// A response template for an SSE body.
pub fn sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into_bytes(), "text/event-stream")
}

/// `chunks` with `model` set to `model_id` where present (what the stack sends on).
pub fn renamed(chunks: &[Value], model_id: &str) -> Vec<Value> {
    chunks
        .iter()
        .cloned()
        .map(|mut c| {
            if c.get("model").is_some() {
                c["model"] = json!(model_id);
            }
            c
        })
        .collect()
}

/// A local port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => panic!("addr: {e}"),
    }
}

/// A database file of this test process, under the system's temporary directory.
pub fn test_db_path() -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!("llama-stack-rs-unit-{}", std::process::id()))
        .join("sql_store.db")
}
