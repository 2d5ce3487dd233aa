//! Secrets: planted keys, tokens and passwords never reach the recordings directory.

use std::path::Path;

use harness::context::TestContext;
use harness::recorder::Mode;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{blobs, client};

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
    let walked = walk(dir.path());
    for entry in &walked {
        let bytes = std::fs::read(entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for p in planted {
            assert!(!text.contains(p), "{p} found in {}", entry.display());
        }
    }
    let blob_path = &blobs(dir.path())[0];
    assert!(
        walked.contains(blob_path) && walked.iter().any(|p| p.ends_with("index.sqlite")),
        "the blob and the index were checked: {walked:?}"
    );
    let blob = std::fs::read_to_string(blob_path).unwrap();
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
