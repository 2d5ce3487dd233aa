//! The `recordings` command against a directory made by record mode.

use std::path::Path;
use std::process::{Command, Output};

use harness::context::TestContext;
use harness::recorder::{Mode, Recorder, RecorderConfig};
use reqwest_middleware::ClientBuilder;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn recordings(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recordings"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("LLAMA_STACK_TEST_RECORDING_DIR")
        .output()
        .expect("run recordings")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn record(dir: &Path, upstream: &str) {
    let rec = Recorder::new(RecorderConfig::new(Mode::RecordIfMissing, dir).unwrap()).unwrap();
    let c = ClientBuilder::new(reqwest::Client::new()).with(rec).build();
    for test in ["suite::kept", "suite::renamed_away"] {
        TestContext::new(test)
            .scope(
                c.post(format!("{upstream}/v1/chat/completions"))
                    .json(&json!({"model": "m", "q": test}))
                    .send(),
            )
            .await
            .unwrap();
    }
    c.get(format!("{upstream}/v1/models")).send().await.unwrap();
}

#[tokio::test]
async fn list_stats_verify_show_prune_and_compute_hash() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{\"ok\":1}", "application/json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{\"data\":[]}", "application/json"))
        .mount(&server)
        .await;
    record(dir.path(), &server.uri()).await;

    let list = recordings(dir.path(), &["list"]);
    assert!(list.status.success());
    let text = stdout(&list);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("suite::kept")
            && text.contains("(no test)")
            && text.contains("GET /v1/models"),
        "{text}"
    );

    let stats = stdout(&recordings(dir.path(), &["stats"]));
    assert!(
        stats.contains("recordings: 3") && stats.contains("no test id: 1"),
        "{stats}"
    );

    let verify = recordings(dir.path(), &["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));

    // compute-hash agrees with what the recorder stored.
    let url = format!("{}/v1/chat/completions", server.uri());
    let ch = stdout(&recordings(
        dir.path(),
        &[
            "compute-hash",
            "--url",
            &url,
            "--body",
            r#"{"q":"suite::kept","model":"m"}"#,
            "--test-id",
            "suite::kept",
        ],
    ));
    assert!(ch.contains("recorded: yes"), "{ch}");
    let hash = ch
        .lines()
        .find_map(|l| l.strip_prefix("hash:"))
        .unwrap()
        .trim()
        .to_owned();
    let show = recordings(dir.path(), &["show", &hash[..10]]);
    assert!(
        stdout(&show).contains("\"test_id\": \"suite::kept\""),
        "{}",
        stdout(&show)
    );

    // Pruning: only the renamed test's recording is orphaned; calls outside tests are kept.
    let known = dir.path().join("known.txt");
    std::fs::write(&known, "suite::kept: test\nsuite::other: test\n").unwrap();
    let dry = recordings(dir.path(), &["prune", "--known", known.to_str().unwrap()]);
    assert_eq!(dry.status.code(), Some(1));
    let orphans: Vec<String> = stdout(&dry)
        .lines()
        .filter(|l| l.starts_with("orphan "))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        orphans.len(),
        1,
        "only the renamed test's recording: {orphans:?}"
    );
    assert!(orphans[0].ends_with("suite::renamed_away"), "{orphans:?}");
    let del = recordings(
        dir.path(),
        &["prune", "--known", known.to_str().unwrap(), "--delete"],
    );
    assert!(stdout(&del).contains("deleted 1"), "{}", stdout(&del));
    assert!(stdout(&recordings(dir.path(), &["stats"])).contains("recordings: 2"));
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let refused = recordings(dir.path(), &["prune", "--known", empty.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("empty"));
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let out = recordings(Path::new("/nonexistent/recordings"), &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recordings directory"));
}

#[test]
fn suites_lists_the_suites_of_a_suites_file_one_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suites.toml");
    std::fs::write(
        &file,
        "[suites.base]\nroots = [\"inference\"]\n\n[suites.all-tests]\nroots = [\"*\"]\n",
    )
    .unwrap();
    let out = recordings(dir.path(), &["suites", "--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "all-tests\nbase\n");
    // A file that is not there is an error naming it, not an empty list.
    let missing = dir.path().join("missing.toml");
    let out = recordings(dir.path(), &["suites", "--file", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.toml"),
        "{out:?}"
    );
}
