//! No secret reaches disk, wherever it is planted: a property test records requests carrying a
//! random secret in a random place (a header, the query, a JSON field at any depth and of any
//! type, a key name written with an escape, a form body, the provider's answer or stream, an
//! error message quoting the URL) and asserts that no file under the recordings directory
//! contains it.

use std::path::Path;

use harness::context::TestContext;
use harness::recorder::{Mode, Recorder, RecorderConfig};
use proptest::prelude::*;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(dir: &Path) -> ClientWithMiddleware {
    let mut config = RecorderConfig::new(Mode::RecordIfMissing, dir).unwrap();
    // Failures are recorded too, so that error messages reach disk and are checked.
    config.record_errors = true;
    ClientBuilder::new(reqwest::Client::new())
        .with(Recorder::new(config).unwrap())
        .build()
}

/// Every file under `dir`, as text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((
                    p.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out
}

/// Where a secret is planted.
#[derive(Debug, Clone)]
enum Place {
    /// An `Authorization: Bearer` header, echoed by the provider's error.
    Header,
    /// A secret query parameter, echoed in the answer.
    Query(&'static str),
    /// A secret-named field of the request body, `depth` objects deep, as a string, an array or
    /// an object.
    Body {
        name: &'static str,
        depth: usize,
        shape: u8,
    },
    /// A key name written with a JSON escape (`secr\u0065t`).
    EscapedName,
    /// A form-encoded request body.
    Form(&'static str),
    /// A secret-named field of the provider's answer.
    Answer(&'static str),
    /// A field of a streamed answer.
    Stream(&'static str),
    /// A JWT anywhere in the answer's text.
    Jwt,
    /// The query of a request to a closed port (the transport error quotes the URL).
    TransportError,
}

fn place() -> impl Strategy<Value = Place> {
    let names = prop::sample::select(vec![
        "api_key",
        "apiKey",
        "password",
        "pwd",
        "passphrase",
        "auth",
        "client_secret",
        "private_key",
        "credentials",
        "credential",
        "session",
        "access_token",
        "secret",
        "api_keys",
    ]);
    prop_oneof![
        Just(Place::Header),
        prop::sample::select(vec!["api_key", "key", "token", "sig", "code"]).prop_map(Place::Query),
        (names.clone(), 0usize..4, 0u8..3).prop_map(|(name, depth, shape)| Place::Body {
            name,
            depth,
            shape
        }),
        Just(Place::EscapedName),
        prop::sample::select(vec!["client_secret", "password", "api_key"]).prop_map(Place::Form),
        names.clone().prop_map(Place::Answer),
        names.prop_map(Place::Stream),
        Just(Place::Jwt),
        Just(Place::TransportError),
    ]
}

fn nested(name: &str, value: serde_json::Value, depth: usize) -> serde_json::Value {
    let mut v = serde_json::json!({ name: value });
    for i in 0..depth {
        v = serde_json::json!({ format!("level{i}"): v, "model": "m" });
    }
    v
}

async fn plant(place: &Place, secret: &str, dir: &Path) {
    let server = MockServer::start().await;
    let c = client(dir);
    let base = server.uri();
    let answer = |body: String, content_type: &str| {
        ResponseTemplate::new(200).set_body_raw(body, content_type)
    };
    let ok = || answer("{\"ok\":true}".into(), "application/json");
    let scope = TestContext::new("secrets");
    match place {
        Place::Header => {
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(401).set_body_string(format!(
                    "{{\"error\":{{\"message\":\"Incorrect API key provided: {secret}\"}}}}"
                )))
                .mount(&server)
                .await;
            scope
                .scope(
                    c.post(format!("{base}/v1/chat/completions"))
                        .bearer_auth(secret)
                        .json(&serde_json::json!({"model": "m"}))
                        .send(),
                )
                .await
                .unwrap();
        }
        Place::Query(name) => {
            Mock::given(method("GET"))
                .respond_with(answer(
                    format!("{{\"url\":\"{base}/v1/models?{name}={secret}\"}}"),
                    "application/json",
                ))
                .mount(&server)
                .await;
            scope
                .scope(c.get(format!("{base}/v1/models?{name}={secret}")).send())
                .await
                .unwrap();
        }
        Place::Body { name, depth, shape } => {
            Mock::given(method("POST"))
                .respond_with(ok())
                .mount(&server)
                .await;
            let value = match shape {
                0 => serde_json::json!(secret),
                1 => serde_json::json!(["other-value", secret]),
                _ => serde_json::json!({"value": secret, "kind": "x"}),
            };
            let body = nested(name, value, *depth);
            scope
                .scope(c.post(format!("{base}/v1/embeddings")).json(&body).send())
                .await
                .unwrap();
        }
        Place::EscapedName => {
            Mock::given(method("POST"))
                .respond_with(ok())
                .mount(&server)
                .await;
            let body = format!("{{\"model\":\"m\",\"secr\\u0065t\":\"{secret}\"}}");
            scope
                .scope(
                    c.post(format!("{base}/v1/embeddings"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send(),
                )
                .await
                .unwrap();
        }
        Place::Form(name) => {
            Mock::given(method("POST"))
                .respond_with(ok())
                .mount(&server)
                .await;
            scope
                .scope(
                    c.post(format!("{base}/oauth/token"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(format!("grant_type=client_credentials&{name}={secret}"))
                        .send(),
                )
                .await
                .unwrap();
        }
        Place::Answer(name) => {
            Mock::given(method("POST"))
                .respond_with(answer(
                    nested(name, serde_json::json!([secret]), 1).to_string(),
                    "application/json",
                ))
                .mount(&server)
                .await;
            scope
                .scope(
                    c.post(format!("{base}/v1/x"))
                        .json(&serde_json::json!({"a": 1}))
                        .send(),
                )
                .await
                .unwrap();
        }
        Place::Stream(name) => {
            let event = serde_json::json!({"choices": [], (*name): {"value": secret}});
            Mock::given(method("POST"))
                .respond_with(answer(
                    format!("data: {event}\n\ndata: [DONE]\n\n"),
                    "text/event-stream",
                ))
                .mount(&server)
                .await;
            let resp = scope
                .scope(
                    c.post(format!("{base}/v1/chat/completions"))
                        .json(&serde_json::json!({"stream": true}))
                        .send(),
                )
                .await
                .unwrap();
            resp.bytes().await.unwrap();
        }
        Place::Jwt => {
            let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx{secret}.c2lnbmF0dXJlXzEyMzQ1Ng");
            Mock::given(method("POST"))
                .respond_with(answer(
                    format!("{{\"note\":\"use {jwt} next time\"}}"),
                    "application/json",
                ))
                .mount(&server)
                .await;
            scope
                .scope(
                    c.post(format!("{base}/v1/x"))
                        .json(&serde_json::json!({"a": 2}))
                        .send(),
                )
                .await
                .unwrap();
        }
        Place::TransportError => {
            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                format!("http://{}", l.local_addr().unwrap())
            };
            let _ = scope
                .scope(
                    c.get(format!("{closed}/v1/models?api_key={secret}%2Fx"))
                        .send(),
                )
                .await;
        }
    }
    // Streams and drained responses are written when they end.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_planted_secret_reaches_disk(place in place(), tail in "[A-Za-z0-9]{12,24}") {
        let secret = format!("Zq9{tail}");
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(plant(&place, &secret, dir.path()));
        let written = files(dir.path());
        prop_assert!(written.iter().any(|(p, _)| p.ends_with(".json")), "nothing recorded for {place:?}");
        for (path, text) in written {
            prop_assert!(!text.contains(&secret), "{place:?}: {secret} in {path}:\n{text}");
        }
    }
}
