//! Several processes recording overlapping keys into one directory lose nothing and never fail
//! on a lock. The test re-executes its own binary as the recording processes.

use std::collections::BTreeSet;
use std::process::Command;

use harness::context::TestContext;
use harness::recorder::{Mode, Recorder, RecorderConfig, Store};
use reqwest_middleware::ClientBuilder;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHILD_ENV: &str = "HARNESS_CONCURRENCY_CHILD";
const PROCESSES: usize = 4;
const REQUESTS: usize = 40;

/// One recording process (run only when re-executed by the test below).
#[tokio::test]
#[ignore = "run by concurrent_processes_record_into_one_directory"]
async fn child_recorder() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (dir, upstream, me) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // `record` replaces on every call, so overlapping keys are written by every process.
    let recorder = Recorder::new(RecorderConfig::new(Mode::Record, dir).unwrap()).unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(recorder)
        .build();
    for i in 0..REQUESTS {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("q{}", i % 10)}], "from": i % 2});
        let resp = TestContext::new(format!("t{}", i % 5))
            .scope(
                client
                    .post(format!("{upstream}/v1/chat/completions"))
                    .json(&body)
                    .send(),
            )
            .await
            .unwrap_or_else(|e| panic!("process {me} request {i}: {e}"));
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_processes_record_into_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let big = "x".repeat(4000);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            json!({"choices": [{"text": big}]}).to_string(),
            "application/json",
        ))
        .mount(&server)
        .await;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_recorder",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(
                    CHILD_ENV,
                    format!("{}|{}|{i}", dir.path().display(), server.uri()),
                )
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let status = tokio::task::spawn_blocking(move || c.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "a recording process failed: {status}");
    }
    // Every blob is complete and parses.
    let mut blob_hashes = BTreeSet::new();
    for entry in std::fs::read_dir(dir.path().join("responses")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".json") && !name.starts_with('.'),
            "leftover temporary file {name}"
        );
        let rec: harness::recorder::format::Recording =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(format!("{}.json", rec.request_hash), name);
        blob_hashes.insert(rec.request_hash);
    }
    // 5 test ids x 10 prompts x 2 `from` values overlap to 10 distinct (test, body) pairs... per
    // process i -> (i%5, i%10, i%2): 10 distinct keys, all shared by the 4 processes.
    assert_eq!(blob_hashes.len(), 10);
    // The index, read as written (before any repair), lists exactly the blobs.
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite")).unwrap();
    let mut stmt = conn.prepare("SELECT request_hash FROM recordings").unwrap();
    let indexed: BTreeSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(indexed, blob_hashes);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.sync_report(),
        &Default::default(),
        "nothing needed repair"
    );
}
