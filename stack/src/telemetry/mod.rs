//! OpenTelemetry traces and metrics, following the semantic conventions v1.41.1
//! ([`semconv::SEMCONV_VERSION`]); `docs/telemetry.md` lists everything the stack emits.
//!
//! The stack emits through the OpenTelemetry API only. In library mode it installs nothing:
//! spans and metrics go to whatever providers the host process installed, looked up at each
//! operation ([`Telemetry::global`]), or to providers handed in ([`Telemetry::with_providers`]).
//! The `stack` binary sets up the SDK from the standard `OTEL_*` variables ([`setup`]).
//!
//! One request makes one trace: the HTTP server span ([`http_server`], server mode) -> the GenAI
//! span of the operation ([`genai`], one per stream too: [`stream`]) -> the provider HTTP client
//! span ([`provider_spans`]), whose context goes to the provider as `traceparent`.
//!
//! Modules, one job each:
//! - [`semconv`]: attribute and metric names, bucket boundaries (pinned; custom ones marked).
//! - [`sink`]: where telemetry goes (global providers or explicit ones), the GenAI instruments.
//! - [`genai`]: the span and metrics of one inference operation.
//! - [`stream`]: one span per stream, ended when the stream ends or is dropped.
//! - [`content`]: opt-in message content (`gen_ai.input.messages`, `gen_ai.output.messages`).
//! - [`provider_spans`]: the provider client span and `traceparent` injection (reqwest middleware).
//! - [`http_server`]: the HTTP server span and `http.server.*` metrics (tower layer).
//! - [`mcp`]: MCP client spans and `mcp.client.operation.duration`.
//! - [`safety`]: the `run_guardrail` span of a shield run and the verdict counter.
//! - [`agent`]: the `invoke_agent` span of a Responses API response and its `execute_tool` spans.
//! - [`setup`]: SDK setup from the environment for the `stack` binary.

pub mod agent;
pub mod content;
pub mod genai;
pub mod http_server;
pub mod mcp;
pub mod provider_spans;
pub mod safety;
pub mod semconv;
pub mod setup;
pub mod sink;
pub mod stream;

pub use genai::{Failure, GenAiCall, Operation, provider_name};
pub use provider_spans::ClientSpanMiddleware;
pub use setup::{SetupError, TelemetryGuard, init_from_env};
pub use sink::{CAPTURE_CONTENT_VAR, Telemetry};

#[cfg(test)]
mod tests;
