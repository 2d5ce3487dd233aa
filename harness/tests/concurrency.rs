//! Several processes recording overlapping keys into one directory lose nothing and never fail
//! on a lock. The test re-executes its own binary as the recording processes.

use std::collections::BTreeSet;
use std::process::Command;

use futures::StreamExt;
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

const FLIGHT_ENV: &str = "HARNESS_SINGLE_FLIGHT_CHILD";
const FLIGHT_PROCESSES: usize = 8;
const FLIGHT_REQUESTS: usize = 300;
const FLIGHT_KEYS: usize = 30;

/// One record-if-missing process of the single-flight test (run only when re-executed).
#[tokio::test]
#[ignore = "run by concurrent_recorders_of_one_key_make_one_upstream_call"]
async fn child_single_flight() {
    let Ok(spec) = std::env::var(FLIGHT_ENV) else {
        return;
    };
    let (dir, upstream) = spec.split_once('|').unwrap();
    let recorder = Recorder::new(RecorderConfig::new(Mode::RecordIfMissing, dir).unwrap()).unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(recorder)
        .build();
    // Four requests at a time, so keys overlap within the process as well as across processes.
    let requests = (0..FLIGHT_REQUESTS).map(|i| {
        let client = client.clone();
        async move {
            let k = i % FLIGHT_KEYS;
            let body =
                json!({"model": "m", "messages": [{"role": "user", "content": format!("q{k}")}]});
            let resp = TestContext::new(format!("t{}", k % 3))
                .scope(
                    client
                        .post(format!("{upstream}/v1/chat/completions"))
                        .json(&body)
                        .send(),
                )
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
    });
    futures::stream::iter(requests)
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
}

/// 8 processes x 300 overlapping requests in record-if-missing: exactly one upstream call per
/// distinct key (the others wait for it and replay its recording).
#[tokio::test]
async fn concurrent_recorders_of_one_key_make_one_upstream_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"choices": [{"text": "ok"}]}))
                .set_delay(std::time::Duration::from_millis(50)),
        )
        .mount(&server)
        .await;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..FLIGHT_PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_single_flight",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(
                    FLIGHT_ENV,
                    format!("{}|{}", dir.path().display(), server.uri()),
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
    let mut calls: std::collections::BTreeMap<String, usize> = Default::default();
    for r in server.received_requests().await.unwrap() {
        *calls
            .entry(String::from_utf8_lossy(&r.body).into_owned())
            .or_default() += 1;
    }
    assert_eq!(calls.len(), FLIGHT_KEYS, "{calls:?}");
    let repeated: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "keys called upstream more than once: {repeated:?}"
    );
    assert_eq!(
        Store::open(dir.path()).unwrap().rows().unwrap().len(),
        FLIGHT_KEYS
    );
}

const KILL_ENV: &str = "HARNESS_KILL_CHILD";

/// A recorder that records as fast as it can until it is killed (run only when re-executed).
#[tokio::test]
#[ignore = "run by a_recorder_killed_at_any_moment_leaves_a_consistent_store"]
async fn child_recording_until_killed() {
    let Ok(spec) = std::env::var(KILL_ENV) else {
        return;
    };
    let (dir, upstream) = spec.split_once('|').unwrap();
    let recorder = Recorder::new(RecorderConfig::new(Mode::Record, dir).unwrap()).unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(recorder)
        .build();
    for i in 0.. {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("q{}", i % 50)}]});
        let _ = TestContext::new("killed")
            .scope(
                client
                    .post(format!("{upstream}/v1/chat/completions"))
                    .json(&body)
                    .send(),
            )
            .await
            .map(|r| r.bytes());
    }
}

/// kill -9 at random moments while recording: every blob left is whole, the store opens, its
/// index matches the blobs, and a temporary file is never taken for a blob.
#[tokio::test]
async fn a_recorder_killed_at_any_moment_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let big = "y".repeat(64 * 1024);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            json!({"choices": [{"text": big}]}).to_string(),
            "application/json",
        ))
        .mount(&server)
        .await;
    let exe = std::env::current_exe().unwrap();
    for delay_ms in [150u64, 310, 470, 630] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_recording_until_killed",
                "--ignored",
                "--test-threads",
                "1",
            ])
            .env(
                KILL_ENV,
                format!("{}|{}", dir.path().display(), server.uri()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(
            store.sync_report().invalid.is_empty(),
            "{:?}",
            store.sync_report().invalid
        );
        let rows = store.rows().unwrap();
        for row in &rows {
            let rec = store
                .get(&row.request_hash)
                .unwrap()
                .expect("an indexed blob exists");
            assert_eq!(rec.request_hash, row.request_hash);
        }
        let blobs = std::fs::read_dir(dir.path().join("responses"))
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".json") && !n.starts_with('.')
            })
            .count();
        assert_eq!(rows.len(), blobs, "after the kill at {delay_ms} ms");
    }
    let recorded = Store::open(dir.path()).unwrap().rows().unwrap().len();
    assert!(
        recorded > 0,
        "the children recorded before they were killed"
    );
}
