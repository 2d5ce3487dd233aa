//! The `stack` command line (the binary lives in the workspace root package, so the integration
//! suite can start it): run the LLM stack server.
//!
//! ```text
//! stack run <distribution-or-config> [--port N] [--host H]
//! ```
//!
//! `<distribution-or-config>` is a run-config file (TOML) or the name of a built-in distribution
//! (`starter`). The server listens on 127.0.0.1:8321 unless the config or the flags say otherwise,
//! logs to stderr (`RUST_LOG` sets the level, default `info`, `warn` for the MCP SDK), and shuts down gracefully on SIGINT
//! or SIGTERM. OpenTelemetry export is configured by the standard `OTEL_*` variables
//! ([`crate::telemetry::setup`]); nothing is exported unless an OTLP endpoint is set, and the
//! last spans and metrics are flushed (within a bounded time) on exit.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::{RunConfig, Stack, server, telemetry};
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "stack",
    version,
    about = "An OpenAI-compatible LLM stack routing provider_id/model to remote providers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the stack over HTTP.
    Run {
        /// A run-config file (TOML) or a built-in distribution name (starter).
        target: String,
        /// Port to listen on (default: the config's, 8321).
        #[arg(long)]
        port: Option<u16>,
        /// Address to bind (default: the config's, 127.0.0.1).
        #[arg(long)]
        host: Option<String>,
    },
}

/// Parses the command line and runs it; the `stack` binary's whole `main`.
pub fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main())
}

async fn async_main() -> ExitCode {
    // Log lines are written by a thread of their own, in batches (`log_writer`), so that a
    // request does not wait for the terminal or pipe its access line goes to; none is dropped, and
    // the rest are written when `log` is dropped (before a final error is printed).
    let (writer, log) = match crate::log_writer::start("stack-log", std::io::stderr()) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: cannot start the log writer thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_timer(crate::log_time::LineTime)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            // rmcp logs every session's start and end at info (with the server's whole
            // capabilities): warnings are what a stack operator needs from it.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    let result = match Cli::parse().command {
        Command::Run { target, port, host } => match telemetry::init_from_env() {
            Ok(guard) => {
                let scrape = match guard.prometheus() {
                    Some((target, registry)) => {
                        match serve_prometheus(target, registry.clone()).await {
                            Ok(task) => Some(task),
                            Err(e) => {
                                drop(log);
                                return fail(e);
                            }
                        }
                    }
                    None => None,
                };
                let result = run(&target, port, host, guard.telemetry()).await;
                if let Some(task) = scrape {
                    task.abort();
                }
                // Flushes the last spans and metrics, bounded (off the async runtime's threads).
                guard.shutdown();
                result
            }
            Err(e) => Err(anyhow::Error::new(e).context("cannot set up OpenTelemetry")),
        },
    };
    // The log lines before the outcome, which `fail` prints straight to stderr.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}

/// Serves `GET /metrics` (Prometheus text format) from `registry` at the target's address, on a
/// task of its own, until aborted.
async fn serve_prometheus(
    target: &telemetry::setup::PrometheusTarget,
    registry: prometheus::Registry,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::http::{StatusCode, header};
    let listener = tokio::net::TcpListener::bind((target.host.as_str(), target.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen for Prometheus scrapes on {}:{} (OTEL_EXPORTER_PROMETHEUS_HOST/PORT)",
                target.host, target.port
            )
        })?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                match telemetry::setup::prometheus_text(&registry) {
                    Ok(text) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    ),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                        format!("cannot encode the metrics: {e}"),
                    ),
                }
            }
        }),
    );
    tracing::info!("Prometheus scrape endpoint on http://{addr}/metrics");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the Prometheus scrape endpoint stopped: {e}");
        }
    }))
}

async fn run(
    target: &str,
    port: Option<u16>,
    host: Option<String>,
    telemetry: telemetry::Telemetry,
) -> anyhow::Result<()> {
    let config = RunConfig::resolve(target)?;
    let host = host.unwrap_or_else(|| config.server.host.clone());
    let port = port.unwrap_or(config.server.port);
    tracing::info!(config = %config.source, "starting stack");
    for warning in &config.warnings {
        tracing::warn!(config = %config.source, "{warning}");
    }
    let stack = Stack::from_config_with_telemetry(config, telemetry)
        .await
        .context("cannot start the stack")?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(
        "stack listening on http://{addr} (models: {})",
        stack.registry().models().len()
    );
    let served = server::serve(stack, listener, server::shutdown_signal()).await;
    tracing::info!("stack stopped");
    served.context("server failed")
}
