//! A weather client adopts the recorder: the whole life of a recording, in one file.
//!
//! 1. A tiny weather service (the "provider") listens on 127.0.0.1.
//! 2. A test records the client's call to it (`record` mode) into a temporary directory.
//! 3. The provider goes away; the same test replays the call offline (`replay` mode) and gets
//!    the same answer. A call that was never recorded is a replay miss that says so.
//!
//! Run it with `cargo run -p harness --example weather`; `cargo test -p harness --example
//! weather` runs it too (as CI does).

use std::path::Path;

use axum::extract::Query;
use axum::routing::get;
use harness::context::TestContext;
use harness::profile::{EnvNames, Profile, RunnerEnv};
use harness::recorder::{Mode, Recorder, RecorderConfig, Rules};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The weather client's profile: its own variable names and headers, no LLM rules.
fn weather_profile() -> Profile {
    Profile {
        name: "weather",
        env: EnvNames {
            mode: "WEATHER_TEST_MODE",
            recording_dir: "WEATHER_TEST_RECORDING_DIR",
            replay_timing: "WEATHER_TEST_REPLAY_TIMING",
            record_command: "WEATHER_TEST_RECORD_COMMAND",
            debug: "WEATHER_TEST_DEBUG",
            record_errors: "WEATHER_TEST_RECORD_ERRORS",
        },
        default_record_command: "WEATHER_TEST_MODE=record-if-missing cargo test {test_id}",
        context_header: "X-Weather-Test",
        secret_headers: &["x-weather-key"],
        request_headers: &["accept"],
        response_headers: &["content-type"],
        index_field: "city",
        rules: Rules::none,
        // Only the recorder is used here; a suite run with `run_suite_with` would read these.
        runner: RunnerEnv {
            suite: "WEATHER_TEST_SUITE",
            setup: "WEATHER_TEST_SETUP",
            subdirs: "WEATHER_TEST_SUBDIRS",
            embedding_dimension: "WEATHER_TEST_EMBEDDING_DIMENSION",
            force_restart: "WEATHER_TEST_FORCE_SERVER_RESTART",
            stack_config: "WEATHER_TEST_SERVICE",
            legacy_stack_config: None,
            port: "WEATHER_PORT",
        },
        // No model parameters: every test runs once.
        roles: &[],
    }
}

/// The client under test: it asks the provider at `base` for a city's weather.
async fn forecast(client: &ClientWithMiddleware, base: &str, city: &str) -> Result<Value, Error> {
    let url = format!("{base}/weather?city={city}");
    let response = client
        .get(url)
        .header("x-weather-key", "secret-key-123")
        .send()
        .await?;
    Ok(response.error_for_status()?.json().await?)
}

/// A client whose calls go through a recorder in `mode`, keeping recordings in `dir`.
fn client(mode: Mode, dir: &Path) -> Result<ClientWithMiddleware, Error> {
    let config = RecorderConfig::with_profile(weather_profile(), mode, dir)?;
    Ok(ClientBuilder::new(reqwest::Client::new())
        .with(Recorder::new(config)?)
        .build())
}

/// Starts the provider on 127.0.0.1; its address, and the task to abort to stop it.
async fn start_provider() -> Result<(String, tokio::task::JoinHandle<()>), Error> {
    async fn weather(
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::Json<Value> {
        let city = q.get("city").cloned().unwrap_or_default();
        axum::Json(json!({ "city": city, "temperature_c": 21.5, "sky": "clear" }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/weather", get(weather));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, server))
}

async fn run() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let test = || TestContext::new("examples/weather.rs::paris_is_clear");

    // Record against the live provider.
    let (base, provider) = start_provider().await?;
    let recording = client(Mode::Record, dir.path())?;
    let live = test().scope(forecast(&recording, &base, "Paris")).await?;
    provider.abort();
    let _ = provider.await;

    // Replay with the provider gone: same answer, no network.
    let replaying = client(Mode::Replay, dir.path())?;
    let replayed = test().scope(forecast(&replaying, &base, "Paris")).await?;
    assert_eq!(replayed, live);
    println!("replayed offline: {replayed}");

    // Never recorded: a replay miss that explains itself.
    let Err(miss) = test().scope(forecast(&replaying, &base, "Oslo")).await else {
        return Err("a call that was never recorded was answered".into());
    };
    assert!(miss.to_string().contains("Recording not found"), "{miss}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run().await
}

#[test]
fn the_example_records_then_replays_offline() -> Result<(), Error> {
    main()
}
