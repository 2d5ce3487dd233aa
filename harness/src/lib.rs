//! A record/replay integration-test framework for services that reach their providers over HTTP.
//!
//! - [`recorder`]: the `reqwest-middleware` layer that records provider traffic and replays it
//!   offline (request key, recordings store, modes, streams, replay-miss diagnostics).
//! - [`profile`]: what an adopting project supplies: its environment variable names, headers,
//!   index field, normalization rules, test-runner variables and model roles
//!   ([`profile::Profile::llama_stack`] is this repository's).
//! - [`context`]: the test identity that keys recordings and makes generated ids deterministic.
//! - [`testkit`]: the integration-test framework around them: suites and setups, model
//!   parameters, stack configs, one server per run, and the test runner.
//! - [`telemetry`]: capture of the OpenTelemetry traces and metrics the service emits, with one
//!   test API for library mode (in-memory exporters) and server mode (an OTLP/HTTP receiver).
//!
//! `examples/weather.rs` is a small non-LLM service adopting the recorder with its own
//! [`profile::Profile`]: it records against a provider it starts on 127.0.0.1, then replays with
//! the provider gone (`cargo test -p harness --example weather` runs it).

#![warn(missing_docs)]

mod blocking_http;
pub mod context;
pub mod profile;
pub mod recorder;
pub mod telemetry;
pub mod testkit;
