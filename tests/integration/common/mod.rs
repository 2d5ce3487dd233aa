//! What every test of the suite shares: the client for the configured stack, and assertions.
//!
//! The stack under test comes from `LLAMA_STACK_TEST_STACK_CONFIG` (default `starter`, in
//! process): see `harness::testkit::StackConfig` for the forms. A library stack is built per
//! test (cheap: model discovery replays); a server is started once per run and shared.

use std::sync::OnceLock;

use anyhow::{Context, Result, bail, ensure};
pub use harness::profile::llama_stack::LlamaStackModels;
use harness::telemetry::Capture;
pub use harness::testkit::runner::TestEnv;
use harness::testkit::server::{ServerHandle, ServerSpec, ensure_server};
use harness::testkit::server_info::ServerInfo;
use harness::testkit::stack_config::DEFAULT_PORT;
use harness::testkit::{StackConfig, skip};
use serde_json::Value;
use stack::telemetry::Telemetry;
use stack::{ClientError, RunConfig, Stack, StackClient};

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

fn server_log(port: u16) -> std::path::PathBuf {
    let name = if port == DEFAULT_PORT {
        "llama-stack-server.log".to_owned()
    } else {
        format!("llama-stack-server-{port}.log")
    };
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name)
}

/// `stack run CONFIG` on `port` with a telemetry receiver beside it; `env` is added to the
/// server's environment.
fn server_spec(config: &str, port: u16, env: &[(&str, &str)]) -> ServerSpec {
    let mut spec = ServerSpec::new(
        env!("CARGO_BIN_EXE_stack"),
        ["run", config, "--port", &port.to_string()],
        port,
    );
    spec.log_file = server_log(port);
    spec.telemetry = true;
    spec.env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    spec
}

/// Starts (or reuses) `stack run CONFIG` on `port` with a telemetry receiver beside it, for the
/// whole run; `env` is added to the server's environment.
fn start_server(config: &str, port: u16, env: &[(&str, &str)]) -> Result<ServerHandle> {
    ensure_server(&server_spec(config, port, env)).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The run's server, started (or reused) once per process, and described for the script that
/// runs the suite when it asks (`HARNESS_SERVER_INFO_FILE`: port and log, which
/// `scripts/integration-tests.sh` prints at the end).
async fn server(config: String, port: u16) -> Result<ServerHandle> {
    static SERVER: OnceLock<Result<ServerHandle, String>> = OnceLock::new();
    tokio::task::spawn_blocking(move || {
        SERVER
            .get_or_init(|| {
                let handle = start_server(&config, port, &[]).map_err(|e| format!("{e:#}"))?;
                // Only a note when it cannot be written: the tests do not depend on it.
                if let Err(e) = ServerInfo::new(port, &handle).publish() {
                    eprintln!("[integration] {e}");
                }
                Ok(handle)
            })
            .clone()
            .map_err(anyhow::Error::msg)
    })
    .await?
}

/// A client for the configured stack, for this test.
pub async fn client(_env: &TestEnv) -> Result<StackClient> {
    match StackConfig::from_env().context("reading the stack config")? {
        StackConfig::Library(target) => {
            library(RunConfig::resolve(&target)?, Telemetry::global()).await
        }
        StackConfig::AdHoc(pairs) => library(adhoc(&pairs)?, Telemetry::global()).await,
        StackConfig::Server { config, port } => {
            // The client is built while the server starts (or is found): the first one of a
            // process reads the system's CA store, tens of milliseconds in a debug build.
            let base_url = server_spec(&config, port, &[]).base_url();
            let building = tokio::task::spawn_blocking({
                let base_url = base_url.clone();
                move || StackClient::http(&base_url)
            });
            let handle = server(config, port).await?;
            let client = building.await??;
            if handle.base_url == base_url {
                Ok(client)
            } else {
                Ok(StackClient::http(&handle.base_url)?)
            }
        }
        StackConfig::Url(url) => Ok(StackClient::http(url.as_str())?),
    }
}

/// Where this test reads the stack's telemetry: the process's in-memory providers for a library
/// stack, the receiver beside the run's server in server mode.
pub async fn telemetry(_env: &TestEnv) -> Result<Capture> {
    match StackConfig::from_env().context("reading the stack config")? {
        StackConfig::Library(_) | StackConfig::AdHoc(_) => Ok(Capture::in_memory()),
        StackConfig::Server { config, port } => {
            let handle = server(config, port).await?;
            let url = handle.telemetry_url.with_context(|| {
                format!(
                    "the server on port {port} was not started by this harness with a telemetry receiver; \
                     stop it or set LLAMA_STACK_TEST_FORCE_SERVER_RESTART=1"
                )
            })?;
            Ok(Capture::remote(&url)?)
        }
        StackConfig::Url(url) => Err(skip(format!(
            "telemetry tests need a stack the harness starts (a library stack or server:CONFIG), not the external server {url}"
        ))),
    }
}

/// A client for a stack whose telemetry is switched off, and where its telemetry would arrive:
/// in process, a stack built with telemetry disabled; in server mode, a second server started
/// with `OTEL_SDK_DISABLED=true` next to its own receiver.
pub async fn client_without_telemetry(_env: &TestEnv) -> Result<(StackClient, Capture)> {
    match StackConfig::from_env().context("reading the stack config")? {
        StackConfig::Library(target) => Ok((
            library(RunConfig::resolve(&target)?, Telemetry::disabled()).await?,
            Capture::in_memory(),
        )),
        StackConfig::AdHoc(pairs) => Ok((
            library(adhoc(&pairs)?, Telemetry::disabled()).await?,
            Capture::in_memory(),
        )),
        StackConfig::Server { config, port } => {
            let quiet_port = port.checked_add(1).context("no port after the server's")?;
            let handle = tokio::task::spawn_blocking(move || {
                start_server(&config, quiet_port, &[("OTEL_SDK_DISABLED", "true")])
            })
            .await??;
            let url = handle
                .telemetry_url
                .context("the telemetry-off server has no receiver")?;
            Ok((StackClient::http(&handle.base_url)?, Capture::remote(&url)?))
        }
        StackConfig::Url(url) => Err(skip(format!(
            "switching telemetry off needs a stack the harness starts, not the external server {url}"
        ))),
    }
}

fn adhoc(pairs: &[(String, String)]) -> Result<RunConfig> {
    let text = stack::config::distributions::adhoc(pairs).map_err(anyhow::Error::msg)?;
    Ok(RunConfig::from_toml_str(&text, "ad-hoc stack config")?)
}

async fn library(config: RunConfig, telemetry: Telemetry) -> Result<StackClient> {
    Ok(StackClient::library(build(config, telemetry).await?))
}

/// Builds a stack outside the test's context, so that start-up calls (model discovery) are
/// recorded once, under no test id, and shared by every test.
async fn build(config: RunConfig, telemetry: Telemetry) -> Result<Stack> {
    Ok(
        tokio::spawn(Stack::from_config_with_telemetry(config, telemetry))
            .await
            .context("stack start-up panicked")??,
    )
}

/// Checks that a request failed with HTTP 400 and an error message that names `field`.
pub fn expect_bad_request<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    field: &str,
) -> Result<()> {
    let err = match result {
        Ok(v) => bail!("expected a 400 naming `{field}`, got a success: {v:?}"),
        Err(e) => e,
    };
    ensure!(
        err.status() == Some(400) && err.message().contains(field),
        "expected a 400 naming `{field}`, got: {err}"
    );
    Ok(())
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
