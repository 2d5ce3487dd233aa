//! The server fixture end to end, with real processes: [`ensure_server`] starts a server
//! (`python3 -m http.server`) through a supervisor (this binary re-executed, see `main`), reuses
//! it, replaces it, refuses one with other settings, and the supervisor stops it when the run
//! owner ends; with telemetry, the supervisor's OTLP receiver lives as long as the server.

mod support;

use std::process::{Child, Command, ExitCode};
use std::time::Duration;

use harness::testkit::server::state;
use harness::testkit::server::{
    FORCE_RESTART_ENV, RunOwner, ServerError, listening_pids, port_open, wait_until,
};
use harness::testkit::{ServerSpec, ensure_server, supervise_if_requested};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() -> ExitCode {
    // The supervisor `ensure_server` starts is this binary again: it runs here and exits.
    supervise_if_requested();
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("starts_once_reuses_then_stops_when_the_owner_ends", || {
            run(starts_once_reuses_then_stops_when_the_owner_ends)
        }),
        Trial::test(
            "force_restart_replaces_another_runs_server_but_not_its_own",
            || run(force_restart_replaces_another_runs_server_but_not_its_own),
        ),
        Trial::test("concurrent_callers_start_one_server", || {
            run(concurrent_callers_start_one_server)
        }),
        Trial::test("a_server_with_other_settings_is_not_reused", || {
            run(a_server_with_other_settings_is_not_reused)
        }),
        Trial::test(
            "another_live_runs_server_is_reused_with_a_warning_an_ended_runs_is_replaced",
            || run(another_live_runs_server_is_reused_with_a_warning_an_ended_runs_is_replaced),
        ),
        Trial::test("a_server_that_exits_fails_fast_quoting_its_log", || {
            run(a_server_that_exits_fails_fast_quoting_its_log)
        }),
        Trial::test("a_missing_program_fails_fast", || {
            run(a_missing_program_fails_fast)
        }),
        Trial::test(
            "a_server_that_never_answers_times_out_and_is_stopped",
            || run(a_server_that_never_answers_times_out_and_is_stopped),
        ),
        Trial::test(
            "telemetry_receiver_lives_in_the_supervisor_as_long_as_the_server",
            || run(telemetry_receiver_lives_in_the_supervisor_as_long_as_the_server),
        ),
        Trial::test(
            "remote_captures_read_what_the_server_exported_to_the_supervisors_receiver",
            || run(remote_captures_read_what_the_server_exported_to_the_supervisors_receiver),
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// Runs a test written with `assert!`s (libtest-mimic reports its panic as the failure).
fn run(test: fn()) -> Result<(), Failed> {
    test();
    Ok(())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `sleep` process standing in for the run owner, killed (and reaped) on drop.
struct Owner(Child);

impl Owner {
    fn spawn() -> Self {
        Owner(Command::new("sleep").arg("30").spawn().unwrap())
    }
    fn end(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.end();
    }
}

fn spec(dir: &tempfile::TempDir, port: u16, owner: &Owner) -> ServerSpec {
    let mut spec = support::python_http_server(port);
    spec.log_file = dir.path().join("logs/server.log");
    spec.run_owner = Some(owner.0.id());
    spec.startup_timeout = Duration::from_secs(60);
    spec.force_restart = false;
    spec
}

fn wait_until_closed(port: u16, within: Duration) -> bool {
    wait_until(within, Duration::from_millis(100), || {
        !port_open("127.0.0.1", port)
    })
}

fn starts_once_reuses_then_stops_when_the_owner_ends() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut owner = Owner::spawn();
    let spec = spec(&dir, port, &owner);
    let first = ensure_server(&spec).unwrap();
    assert!(first.started_by_us);
    assert_eq!(first.base_url, format!("http://127.0.0.1:{port}"));
    assert_eq!(first.telemetry_url, None);
    let second = ensure_server(&spec).unwrap();
    assert!(!second.started_by_us);
    assert_eq!(second.base_url, first.base_url);
    assert_eq!(second.telemetry_url, None);
    let log = std::fs::read_to_string(&spec.log_file).unwrap();
    assert!(log.contains("[harness supervisor]"), "{log}");

    owner.end();
    assert!(
        wait_until_closed(port, Duration::from_secs(20)),
        "server still listening on {port} after its run owner ended"
    );
}

fn force_restart_replaces_another_runs_server_but_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let old_run = Owner::spawn();
    let first = ensure_server(&spec(&dir, port, &old_run)).unwrap();
    assert!(first.started_by_us);
    let old_pids = listening_pids(port).unwrap();
    assert_eq!(old_pids.len(), 1);

    let new_run = Owner::spawn();
    let mut spec = spec(&dir, port, &new_run);
    spec.force_restart = true;
    let restarted = ensure_server(&spec).unwrap();
    assert!(restarted.started_by_us);
    let new_pids = listening_pids(port).unwrap();
    assert_eq!(new_pids.len(), 1);
    assert_ne!(new_pids, old_pids);
    // The same run asking again reuses the server it started.
    assert!(!ensure_server(&spec).unwrap().started_by_us);

    drop(old_run);
    drop(new_run);
    assert!(wait_until_closed(port, Duration::from_secs(20)));
}

fn concurrent_callers_start_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let owner = Owner::spawn();
    let spec = spec(&dir, port, &owner);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let spec = spec.clone();
            std::thread::spawn(move || ensure_server(&spec).unwrap())
        })
        .collect();
    let started = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|h| h.started_by_us)
        .count();
    assert_eq!(started, 1);
    drop(owner);
    assert!(wait_until_closed(port, Duration::from_secs(20)));
}

fn a_server_with_other_settings_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let first_run = Owner::spawn();
    let mut replaying = spec(&dir, port, &first_run);
    replaying.env = vec![(harness::recorder::MODE_ENV.into(), "replay".into())];
    let first = ensure_server(&replaying).unwrap();
    assert!(first.started_by_us);
    let published = state::read_live(port).expect("a live state file");
    assert_eq!(published.settings, replaying.settings());
    assert_eq!(
        published.settings.env[harness::recorder::MODE_ENV].as_deref(),
        Some("replay")
    );

    // Another run that would record.
    let second_run = Owner::spawn();
    let mut recording = spec(&dir, port, &second_run);
    recording.env = vec![(
        harness::recorder::MODE_ENV.into(),
        "record-if-missing".into(),
    )];
    let err = ensure_server(&recording).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ServerError::Mismatch { .. }), "{text}");
    for part in [
        format!("the server on port {port} runs with other settings"),
        "LLAMA_STACK_TEST_INFERENCE_MODE: the server has \"replay\", this run wants \
         \"record-if-missing\""
            .to_owned(),
        format!("run owner pid {}, still running", first_run.0.id()),
        format!("kill {}", published.supervisor.pid()),
        "server:CONFIG:PORT".to_owned(),
        format!("{FORCE_RESTART_ENV}=1"),
    ] {
        assert!(text.contains(&part), "{part:?} not in:\n{text}");
    }
    // The same run asking for another command on the port: its own mistake.
    let mut other_args = replaying.clone();
    other_args.args.push("--extra".into());
    let text = ensure_server(&other_args).unwrap_err().to_string();
    assert!(
        text.contains("arguments: the server has") && text.contains("This run started it"),
        "{text}"
    );

    // The way out the message gives: force a restart.
    recording.force_restart = true;
    assert!(ensure_server(&recording).unwrap().started_by_us);
    let published = state::read_live(port).expect("a live state file");
    assert_eq!(published.settings, recording.settings());
    assert_eq!(published.run_owner, RunOwner::of(second_run.0.id()));

    drop(first_run);
    drop(second_run);
    assert!(wait_until_closed(port, Duration::from_secs(20)));
}

fn another_live_runs_server_is_reused_with_a_warning_an_ended_runs_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first_run = Owner::spawn();
    assert!(
        ensure_server(&spec(&dir, port, &first_run))
            .unwrap()
            .started_by_us
    );
    let second_run = Owner::spawn();
    let second = spec(&dir, port, &second_run);
    assert!(!ensure_server(&second).unwrap().started_by_us);

    // Once the first run ends, its server goes: a later caller waits for that and starts one.
    first_run.end();
    let replaced = ensure_server(&second).unwrap();
    assert!(replaced.started_by_us);
    let published = state::read_live(port).expect("a live state file");
    assert_eq!(published.run_owner, RunOwner::of(second_run.0.id()));

    drop(second_run);
    assert!(wait_until_closed(port, Duration::from_secs(20)));
}

fn a_server_that_exits_fails_fast_quoting_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Owner::spawn();
    let mut spec = spec(&dir, free_port(), &owner);
    spec.program = "sh".into();
    spec.args = vec![
        "-c".into(),
        "echo config not found: nope >&2; exit 3".into(),
    ];
    let err = ensure_server(&spec).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ServerError::Exited { .. }), "{text}");
    assert!(text.contains("config not found: nope"), "{text}");
    assert!(
        text.contains(&spec.log_file.display().to_string()),
        "{text}"
    );
}

fn a_missing_program_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Owner::spawn();
    let mut spec = spec(&dir, free_port(), &owner);
    spec.program = dir.path().join("no-such-server");
    let text = ensure_server(&spec).unwrap_err().to_string();
    assert!(text.contains("cannot start"), "{text}");
}

fn a_server_that_never_answers_times_out_and_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Owner::spawn();
    let mut spec = spec(&dir, free_port(), &owner);
    let marker = dir.path().join("alive");
    spec.program = "sh".into();
    spec.args = vec![
        "-c".into(),
        format!(
            "echo waiting forever; while true; do touch {}; sleep 0.1; done",
            marker.display()
        ),
    ];
    spec.startup_timeout = Duration::from_millis(500);
    let err = ensure_server(&spec).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ServerError::Timeout { .. }), "{text}");
    assert!(text.contains("waiting forever"), "{text}");
    // The supervisor has stopped it: the marker stops being touched.
    let _ = std::fs::remove_file(&marker);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "the server still runs after the timeout");
}

/// The server's environment, from `/proc` (`None` where there is no `/proc`).
fn server_env(port: u16) -> Option<Vec<(String, String)>> {
    let pids = listening_pids(port).ok()?;
    let environ = std::fs::read(format!("/proc/{}/environ", pids.first()?)).ok()?;
    Some(
        environ
            .split(|b| *b == 0)
            .filter_map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let (k, v) = entry.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
    )
}

fn telemetry_receiver_lives_in_the_supervisor_as_long_as_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut owner = Owner::spawn();
    let mut spec = spec(&dir, port, &owner);
    spec.telemetry = true;
    let first = ensure_server(&spec).unwrap();
    assert!(first.started_by_us);
    let url = first.telemetry_url.clone().expect("a telemetry URL");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // The state file names the supervisor, which runs the receiver.
    let published = state::read_live(port).expect("a live state file");
    assert_eq!(published.telemetry_url.as_deref(), Some(url.as_str()));
    assert_eq!(published.port, port);
    assert_eq!(published.run_owner, RunOwner::of(owner.0.id()));
    assert_ne!(published.supervisor.pid(), std::process::id());
    let text = std::fs::read_to_string(state::state_path(port)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], state::STATE_VERSION);
    assert_eq!(json["telemetry_url"], url.as_str());

    // The server exports there.
    if let Some(env) = server_env(port) {
        assert!(
            env.contains(&("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), url.clone())),
            "{env:?}"
        );
    }
    // The read API answers, and a second caller (another test process) finds the receiver.
    let capture = harness::telemetry::Capture::remote(&url).unwrap();
    assert!(capture.spans().is_empty());
    let second = ensure_server(&spec).unwrap();
    assert!(!second.started_by_us);
    assert_eq!(second.telemetry_url.as_deref(), Some(url.as_str()));
    // Without asking for telemetry, a caller still learns of it.
    let mut plain = spec.clone();
    plain.telemetry = false;
    assert_eq!(
        ensure_server(&plain).unwrap().telemetry_url.as_deref(),
        Some(url.as_str())
    );

    owner.end();
    assert!(wait_until_closed(port, Duration::from_secs(20)));
    let receiver_port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        wait_until_closed(receiver_port, Duration::from_secs(20)),
        "the receiver outlived the server"
    );
    assert!(!state::state_path(port).exists(), "state file left behind");
    let err = capture.as_remote().unwrap().spans().unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
}

fn remote_captures_read_what_the_server_exported_to_the_supervisors_receiver() {
    use harness::telemetry::Capture;
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry::trace::{Span as _, SpanKind, Tracer, TracerProvider};
    use support::otlp::{WAIT, meter_provider, runtime, tracer_provider};

    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let owner = Owner::spawn();
    let mut spec = spec(&dir, port, &owner);
    spec.telemetry = true;
    let started = ensure_server(&spec).unwrap();
    let url = started.telemetry_url.clone().expect("a telemetry URL");
    let capture = Capture::remote(&url).unwrap();

    // What the server would do: export real OTLP to the endpoint it was given.
    let tracers = tracer_provider(&url, opentelemetry_otlp::Protocol::HttpBinary, false);
    let meters = meter_provider(&url, opentelemetry_sdk::metrics::Temporality::Cumulative);
    let requests = meters.meter("server").u64_counter("test.requests").build();
    let route = [KeyValue::new("route", "/v1/models")];
    requests.add(1, &route);

    // A test's own trace, continued by the "server".
    let test_span = capture.test_root_span("test_models");
    let tracer = tracers.tracer("server");
    let mut handled = tracer
        .span_builder("GET /v1/models")
        .with_kind(SpanKind::Server)
        .start_with_context(&tracer, &test_span.context());
    handled.set_attribute(KeyValue::new("http.response.status_code", 200_i64));
    handled.end();
    tracers.force_flush().expect("span export");

    // Another test process of the run: reuses the server, reads through its own capture.
    let reused = ensure_server(&spec).unwrap();
    assert!(!reused.started_by_us);
    let other = Capture::remote(reused.telemetry_url.as_deref().unwrap()).unwrap();
    let spans = rt
        .block_on(other.wait_for_trace(test_span.trace_id(), |s| !s.is_empty(), WAIT))
        .expect("the server span");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "GET /v1/models");
    assert_eq!(
        spans[0].parent_span_id.as_deref(),
        Some(test_span.span_id())
    );
    assert_eq!(spans[0].int_attr("http.response.status_code"), Some(200));
    assert_eq!(
        rt.block_on(async { capture.spans_in_trace(test_span.trace_id()) }),
        spans
    );

    let baseline = rt.block_on(capture.metrics_baseline()).expect("baseline");
    assert_eq!(
        baseline.counter_value("test.requests", &[("route", "/v1/models")]),
        1.0
    );
    requests.add(2, &route);
    let delta = rt
        .block_on(other.metrics_delta_since(&baseline, WAIT))
        .expect("delta");
    assert_eq!(
        delta.counter_value("test.requests", &[("route", "/v1/models")]),
        2.0,
        "{delta:#?}"
    );

    meters.shutdown().expect("meter shutdown");
    tracers.shutdown().expect("tracer shutdown");
    drop(owner);
    assert!(wait_until_closed(port, Duration::from_secs(20)));
}
