//! The seed's telemetry test plan, CI variant (`scripts/telemetry/test-plan.sh` without its heavy
//! backends): the same traffic driver (`scripts/telemetry/driver.py`, run under
//! `opentelemetry-instrument` with the OpenTelemetry OpenAI instrumentation) and the same table
//! check (`scripts/telemetry/tables.py`), against `stack run starter` replaying `recordings/`
//! offline. The harness's OTLP receiver stands in for Arize Phoenix (client and server send their
//! traces to it) and a scrape of the stack's Prometheus endpoint for Prometheus.
//!
//! A row the stack claims that is missing fails the test, with the filled tables in the message.
//! Needs `python3` with `venv`; the driver's pinned packages install on the first run
//! (`scripts/telemetry/venv.sh`, cached under `~/.cache/llama-stack-rs`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::telemetry::Capture;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn output_text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The driver's venv, installed by the project's own script on first use.
fn driver_venv() -> PathBuf {
    let output = Command::new(Path::new(ROOT).join("scripts/telemetry/venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/telemetry/venv.sh (needs bash and python3)");
    assert!(
        output.status.success(),
        "scripts/telemetry/venv.sh could not install the driver's packages (python3 with venv and \
         PyPI access are needed on the first run):\n{}",
        output_text(&output)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Kills the stack when the test ends, whichever way it ends.
struct Stack(std::process::Child);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_test_plan_tables_are_filled_from_replayed_traffic() {
    let venv = driver_venv();
    let capture = Capture::otlp().expect("start the OTLP receiver");
    let receiver = capture.receiver().expect("an OTLP receiver");
    let work = tempfile::tempdir().expect("temporary directory");
    let (stack_port, prom_port) = (free_port(), free_port());
    let base_url = format!("http://127.0.0.1:{stack_port}");

    // The stack, as test-plan.sh starts it, exporting to the receiver (OTLP) and serving the
    // Prometheus scrape endpoint.
    let mut command = Command::new(env!("CARGO_BIN_EXE_stack"));
    receiver.configure(&mut command);
    command
        .args(["run", "starter", "--port", &stack_port.to_string()])
        .current_dir(ROOT)
        .env("LLAMA_STACK_TEST_INFERENCE_MODE", "replay")
        .env("LLAMACPP_URL", "http://127.0.0.1:8080")
        .env("OLLAMA_URL", "http://127.0.0.1:8080")
        .env("VLLM_URL", "http://127.0.0.1:8080/v1")
        .env("SAFETY_MODEL", "llamacpp/qwen2.5-coder-0.5b")
        .env("SQLITE_STORE_DIR", work.path().join("store"))
        .env("OTEL_SERVICE_NAME", "llama-stack-server")
        .env("OTEL_METRICS_EXPORTER", "otlp,prometheus")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", prom_port.to_string())
        .env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("stack.log")).expect("stack log"));
    let mut stack = Stack(command.spawn().expect("start the stack binary"));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http
            .get(format!("{base_url}/v1/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if let Ok(Some(status)) = stack.0.try_wait() {
            panic!(
                "the stack exited ({status}):\n{}",
                std::fs::read_to_string(work.path().join("stack.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the stack did not answer /v1/health in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The seed's driver under the OpenTelemetry distro, exporting to the same receiver.
    let driver = Command::new(venv.join("bin/opentelemetry-instrument"))
        .arg(venv.join("bin/python"))
        .arg(Path::new(ROOT).join("scripts/telemetry/driver.py"))
        .arg(&base_url)
        .env("OTEL_SERVICE_NAME", "openai-client")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        .output()
        .expect("run the driver");
    assert!(
        driver.status.success(),
        "the driver failed:\n{}",
        output_text(&driver)
    );

    // What the scrape endpoint serves now, and every span once none has arrived for 1 s.
    let scrape = http
        .get(format!("http://127.0.0.1:{prom_port}/metrics"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("scrape the stack's Prometheus endpoint")
        .text()
        .await
        .expect("read the scrape");
    let spans = capture
        .wait_quiet(Duration::from_secs(1), Duration::from_secs(30))
        .await
        .expect("spans settle");
    drop(stack);
    let spans_file = work.path().join("spans.json");
    let scrape_file = work.path().join("scrape.txt");
    std::fs::write(
        &spans_file,
        serde_json::to_vec(&spans).expect("spans as JSON"),
    )
    .expect("write spans");
    std::fs::write(&scrape_file, scrape).expect("write scrape");

    let tables = Command::new("python3")
        .arg(Path::new(ROOT).join("scripts/telemetry/tables.py"))
        .arg("--harness-spans")
        .arg(&spans_file)
        .arg("--scrape")
        .arg(&scrape_file)
        .output()
        .expect("run tables.py");
    let text = output_text(&tables);
    println!("{text}");
    assert!(
        tables.status.success(),
        "rows the stack claims are missing:\n{text}"
    );
    assert!(
        text.contains("every row the stack claims is present"),
        "tables.py did not confirm the rows:\n{text}"
    );
}
