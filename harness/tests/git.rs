//! The recordings directory under git: two branches that each record merge without conflict,
//! the index is rebuilt on the other side of a clone (and answers the seed README's query), and
//! re-recording an unchanged answer leaves the blob's bytes alone (no noisy diff).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use harness::context::TestContext;
use harness::recorder::{Mode, Recorder, RecorderConfig, Store};
use reqwest_middleware::ClientBuilder;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A provider whose answers carry a new id and timestamp each time, like a real one.
struct FreshIds(AtomicU64);

impl Respond for FreshIds {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(200).set_body_json(json!({
            "id": format!("chatcmpl-{n}"), "created": 1_700_000_000 + n, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
            "timings": {"prompt_ms": n}
        }))
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn record(dir: &Path, mode: Mode, server: &MockServer, test: &str) {
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(Recorder::new(RecorderConfig::new(mode, dir).unwrap()).unwrap())
        .build();
    TestContext::new(test)
        .scope(
            c.post(format!("{}/v1/chat/completions", server.uri()))
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": test}]}))
                .send(),
        )
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
}

#[tokio::test]
async fn branches_that_each_recorded_merge_cleanly_and_rerecording_is_quiet() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(FreshIds(AtomicU64::new(0)))
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let recordings = repo.join("recordings");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "start"]);

    for (branch, test) in [("a", "test_a"), ("b", "test_b")] {
        git(&repo, &["checkout", "-q", "-b", branch, "main"]);
        record(&recordings, Mode::RecordIfMissing, &server, test).await;
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", test]);
    }
    let tracked = git(&repo, &["ls-files"]);
    assert!(
        !tracked.contains("index.sqlite"),
        "the index is not committed:\n{tracked}"
    );
    assert!(tracked.contains("recordings/.gitignore"), "{tracked}");
    // The merge needs nothing but what the store wrote.
    git(&repo, &["merge", "-q", "--no-edit", "a"]);

    // A fresh clone has no index; opening the store builds it, and the seed's query answers.
    let clone = tmp.path().join("clone");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let cloned = clone.join("recordings");
    assert!(!cloned.join("index.sqlite").exists());
    let store = Store::open(&cloned).unwrap();
    assert_eq!(store.rows().unwrap().len(), 2);
    drop(store);
    let db = rusqlite::Connection::open(cloned.join("index.sqlite")).unwrap();
    let rows: Vec<(String, Option<String>, String)> = db
        .prepare("SELECT endpoint, model, timestamp FROM recordings")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(e, m, _)| e == "/v1/chat/completions" && m.as_deref() == Some("m"))
    );

    // Re-recording both (new ids, timestamps, timings from the provider): no change on disk.
    for test in ["test_a", "test_b"] {
        record(&recordings, Mode::Record, &server, test).await;
    }
    let status = git(&repo, &["status", "--porcelain"]);
    assert!(
        status.trim().is_empty(),
        "re-recording changed files:\n{status}"
    );
}
