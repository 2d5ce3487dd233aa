//! What every test of the suite shares: the client for the configured stack, and assertions.
//!
//! The stack under test comes from `LLAMA_STACK_TEST_STACK_CONFIG` (default `starter`, in
//! process): see `harness::fixtures::StackConfig` for the forms. A library stack is built per
//! test (cheap: model discovery replays); a server is started once per run and shared.

use std::sync::OnceLock;

use anyhow::{Context, Result, bail, ensure};
use harness::fixtures::StackConfig;
pub use harness::fixtures::runner::TestEnv;
use harness::fixtures::server::{ServerSpec, ensure_server};
use serde_json::Value;
use stack::{RunConfig, Stack, StackClient};

/// Default stack config when none is given.
const DEFAULT_STACK_CONFIG: &str = "starter";

/// Sets the suite's defaults where the environment says nothing, before any thread starts:
/// replay mode (offline from `recordings/`) and the in-process `starter` stack.
pub fn default_env() {
    let set_default = |key: &str, value: &str| {
        if std::env::var_os(key).is_none() {
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::set_var(key, value) };
        }
    };
    set_default("LLAMA_STACK_TEST_INFERENCE_MODE", "replay");
    // Llama Stack's fallback variable counts as an explicit choice.
    if std::env::var_os("LLAMA_STACK_CONFIG").is_none() {
        set_default("LLAMA_STACK_TEST_STACK_CONFIG", DEFAULT_STACK_CONFIG);
    }
}

fn server_log() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("llama-stack-server.log")
}

/// The base URL of the run's server, started (or reused) once per process.
fn server_url(config: &str, port: u16) -> Result<String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let mut spec = ServerSpec::new(
                env!("CARGO_BIN_EXE_stack"),
                ["run", config, "--port", &port.to_string()],
                port,
            );
            spec.log_file = server_log();
            ensure_server(&spec)
                .map(|h| h.base_url)
                .map_err(|e| format!("{e}"))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// A client for the configured stack, for this test.
pub async fn client(_env: &TestEnv) -> Result<StackClient> {
    let config = StackConfig::from_env().context("reading the stack config")?;
    match config {
        StackConfig::Library(target) => {
            let run_config = RunConfig::resolve(&target)?;
            Ok(StackClient::library(build(run_config).await?))
        }
        StackConfig::AdHoc(pairs) => {
            let text = stack::config::distributions::adhoc(&pairs).map_err(anyhow::Error::msg)?;
            let run_config = RunConfig::from_toml_str(&text, "ad-hoc stack config")?;
            Ok(StackClient::library(build(run_config).await?))
        }
        StackConfig::Server { config, port } => {
            let url = tokio::task::spawn_blocking(move || server_url(&config, port)).await??;
            Ok(StackClient::http(&url)?)
        }
        StackConfig::Url(url) => Ok(StackClient::http(url.as_str())?),
    }
}

/// Builds a stack outside the test's context, so that start-up calls (model discovery) are
/// recorded once, under no test id, and shared by every test.
async fn build(config: RunConfig) -> Result<Stack> {
    Ok(tokio::spawn(Stack::from_config(config))
        .await
        .context("stack start-up panicked")??)
}

/// The assistant text of the first choice.
pub fn content_of(r: &Value) -> Result<&str> {
    r["choices"][0]["message"]["content"]
        .as_str()
        .with_context(|| format!("no text content in {r}"))
}

/// The common shape of a chat completion: one choice, assistant role, a finish reason, usage
/// whose total is the sum of its parts.
pub fn assert_chat_completion(r: &Value) -> Result<()> {
    let choices = r["choices"]
        .as_array()
        .with_context(|| format!("no choices in {r}"))?;
    ensure!(
        choices.len() == 1,
        "one choice expected, got {}",
        choices.len()
    );
    let choice = &choices[0];
    ensure!(choice["index"] == 0, "index {}", choice["index"]);
    ensure!(
        choice["message"]["role"] == "assistant",
        "role {}",
        choice["message"]["role"]
    );
    ensure!(
        choice["finish_reason"].is_string(),
        "finish_reason {}",
        choice["finish_reason"]
    );
    let usage = &r["usage"];
    let (p, c, t) = (
        usage["prompt_tokens"].as_u64(),
        usage["completion_tokens"].as_u64(),
        usage["total_tokens"].as_u64(),
    );
    match (p, c, t) {
        (Some(p), Some(c), Some(t)) => ensure!(p + c == t, "usage {p} + {c} != {t}"),
        _ => bail!("usage incomplete: {usage}"),
    }
    ensure!(
        r["id"].as_str().is_some_and(|s| !s.is_empty()),
        "id missing"
    );
    Ok(())
}
