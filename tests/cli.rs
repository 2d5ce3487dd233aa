//! The `stack` binary: `stack run <config> --port 0` serves, answers, and stops on SIGTERM;
//! bad targets fail with a clear message.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_stack");

fn stack_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("LLAMA_STACK_TEST_INFERENCE_MODE")
        .env("RUST_LOG", "info");
    cmd
}

#[tokio::test]
async fn run_serves_until_sigterm() {
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "data": [{"id": "m"}]})),
        )
        .mount(&provider)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "[[providers]]\nprovider_id = \"fake\"\nprovider_type = \"remote::openai\"\nbase_url = \"${env.FAKE_URL}/v1\"\n",
    )
    .expect("write config");

    let mut child = stack_command()
        .args(["run", config.to_str().expect("utf-8 path"), "--port", "0"])
        .env("FAKE_URL", provider.uri())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn stack");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut base = None;
    let mut seen = Vec::new();
    while base.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.split("stack listening on ").nth(1) {
                base = rest.split_whitespace().next().map(str::to_owned);
            }
            seen.push(line);
        }
    }
    let Some(base) = base else {
        let _ = child.kill();
        panic!(
            "stack did not report its address; stderr so far:\n{}",
            seen.join("\n")
        );
    };
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let client = stack::StackClient::http(&base).expect("client");
    assert_eq!(
        client.health().await.expect("health"),
        json!({"status": "OK"})
    );
    let models = client.models().await.expect("models");
    assert_eq!(models["data"][0]["id"], "fake/m");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            assert!(exit.success(), "stack exited with {exit}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("stack did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_targets_fail_clearly() {
    let out = stack_command()
        .args(["run", "no-such-distribution"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "'no-such-distribution' is neither a built-in distribution (available: starter)"
        ),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nport = \"eighty\"\n").expect("write");
    let out = stack_command()
        .args(["run", config.to_str().expect("utf-8 path")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("server.port"),
        "{err}"
    );
}

#[cfg(not(feature = "replay"))]
#[test]
fn inference_mode_needs_the_replay_feature() {
    let out = stack_command()
        .args(["run", "starter"])
        .env("LLAMA_STACK_TEST_INFERENCE_MODE", "replay")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rebuild with --features replay"), "{err}");
}
