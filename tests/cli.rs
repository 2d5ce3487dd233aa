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

/// A provider listing the model `m`.
async fn fake_provider() -> MockServer {
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "data": [{"id": "m"}]})),
        )
        .mount(&provider)
        .await;
    provider
}

/// A run config (in a temporary directory, kept alive by the returned guard) with one provider
/// `fake` at `${env.FAKE_URL}/v1`.
fn fake_run_config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "[[providers]]\nprovider_id = \"fake\"\nprovider_type = \"remote::openai\"\nbase_url = \"${env.FAKE_URL}/v1\"\n",
    )
    .expect("write config");
    (dir, config)
}

#[tokio::test]
async fn run_serves_until_sigterm() {
    let provider = fake_provider().await;
    let (_dir, config) = fake_run_config();

    let mut cmd = stack_command();
    cmd.args(["run", config.to_str().expect("utf-8 path"), "--port", "0"])
        .env("FAKE_URL", provider.uri());
    let (mut child, found) = spawn_until(cmd, &["stack listening on "]);
    let base = found[0].clone();
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

/// Spawns `cmd` and reads its stderr until a line has each of `markers`; returns the child and,
/// per marker, the first word after it. Panics (killing the child) after 20 s.
fn spawn_until(mut cmd: Command, markers: &[&str]) -> (std::process::Child, Vec<String>) {
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn stack");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Reads stderr to its end, also after the caller stopped listening: a closed pipe would make
    // the stack's last log lines fail.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found: Vec<Option<String>> = vec![None; markers.len()];
    let mut seen = Vec::new();
    while found.iter().any(Option::is_none) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            for (i, marker) in markers.iter().enumerate() {
                if let Some(rest) = line.split(marker).nth(1) {
                    found[i] = rest.split_whitespace().next().map(str::to_owned);
                }
            }
            seen.push(line);
        }
    }
    if found.iter().any(Option::is_none) {
        let _ = child.kill();
        panic!(
            "stack did not report {markers:?}; stderr so far:\n{}",
            seen.join("\n")
        );
    }
    (child, found.into_iter().flatten().collect())
}

/// `OTEL_METRICS_EXPORTER=prometheus` serves the stack's metrics for Prometheus to scrape, under
/// the Prometheus names the seed's dashboards query (`gen_ai_client_token_usage_sum`, ...).
#[tokio::test]
async fn prometheus_scrape_endpoint_serves_the_genai_metrics() {
    let provider = fake_provider().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        })))
        .mount(&provider)
        .await;
    let (_dir, config) = fake_run_config();
    let mut cmd = stack_command();
    cmd.args(["run", config.to_str().expect("utf-8 path"), "--port", "0"])
        .env("FAKE_URL", provider.uri())
        .env("OTEL_METRICS_EXPORTER", "prometheus")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", "0");
    let (mut child, found) = spawn_until(
        cmd,
        &["stack listening on ", "Prometheus scrape endpoint on "],
    );
    let client = stack::StackClient::http(&found[0]).expect("client");
    client
        .chat_completion(json!({"model": "fake/m", "messages": [{"role": "user", "content": "x"}]}))
        .await
        .expect("chat");
    let text = reqwest::get(&found[1])
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let _ = child.kill();
    let _ = child.wait();
    for needle in [
        "gen_ai_client_token_usage_sum{",
        "gen_ai_token_type=\"input\"",
        "gen_ai_client_operation_duration_seconds_bucket{",
        "http_server_request_duration_seconds_count{",
    ] {
        assert!(text.contains(needle), "{needle} not in the scrape:\n{text}");
    }
    let input = text
        .lines()
        .find(|l| {
            l.starts_with("gen_ai_client_token_usage_sum{")
                && l.contains("gen_ai_token_type=\"input\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(input, Some(5.0), "{text}");
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

#[test]
fn a_bad_ca_file_stops_the_stack_at_start_up() {
    let (dir, config) = fake_run_config();
    let ca_file = dir.path().join("not-a-ca.pem");
    std::fs::write(&ca_file, "not a certificate\n").expect("write");
    let mut child = stack_command()
        .args(["run", config.to_str().expect("utf-8 path"), "--port", "0"])
        .env("FAKE_URL", "http://127.0.0.1:9")
        .env("SSL_CERT_FILE", &ca_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the stack did not stop at start-up with a bad SSL_CERT_FILE");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    assert!(
        err.contains(&ca_file.display().to_string())
            && err.contains("SSL_CERT_FILE")
            && err.contains("holds no certificate"),
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
