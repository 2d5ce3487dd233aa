//! [`Capture::Remote`] against a receiver fed by the real `opentelemetry-otlp` HTTP exporter: it
//! must see exactly what the receiver got and behave as [`Capture::Otlp`] does. The receiver is
//! in this process here (the read API does not care); the supervisor's receiver is exercised in
//! `testkit::server`'s tests.
//!
//! As in `otlp_tests`, the exporting happens on the test thread (the exporter's blocking client
//! must not run inside a tokio runtime) and the reads in a runtime.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_otlp::Protocol;
use opentelemetry_sdk::metrics::Temporality;

use super::otlp_tests::{
    WAIT, check_delta_temporality_deltas, emit_trace, meter_provider, post_undecodable, runtime,
    tracer_provider,
};
use super::{Capture, METRICS_PATH, OtlpReceiver, SPANS_PATH, TelemetryError};

#[test]
fn remote_sees_exactly_what_the_receiver_got() {
    let rt = runtime();
    let receiver = OtlpReceiver::start().expect("receiver");
    let local = Capture::Otlp(receiver.clone());
    let remote = Capture::remote(&receiver.endpoint()).expect("remote capture");
    // Another reader, as another test process would have: its own, empty cache.
    let other = Capture::remote(&format!("{}/", receiver.endpoint())).expect("remote capture");
    assert_eq!(remote.backend_name(), "remote");
    assert!(remote.receiver().is_none());
    assert_eq!(
        remote.as_remote().map(|r| r.base_url().to_owned()),
        Some(receiver.endpoint())
    );
    // Nothing yet; the synchronous read works from inside a runtime.
    assert!(rt.block_on(async { remote.spans() }).is_empty());

    let tracers = tracer_provider(&receiver.endpoint(), Protocol::HttpBinary, false);
    let first = emit_trace(&tracers);
    tracers.force_flush().expect("span export");
    let spans = rt
        .block_on(remote.wait_for_trace(&first, |s| s.len() >= 2, WAIT))
        .expect("both spans");
    assert_eq!(spans, local.spans_in_trace(&first));
    let second = emit_trace(&tracers);
    tracers.force_flush().expect("span export");
    rt.block_on(other.wait_for_spans(|s| s.len() >= 4, WAIT))
        .expect("four spans");
    // Incremental fetches add up to the same list, values intact (ints, floats, arrays, status).
    assert_eq!(rt.block_on(async { remote.spans() }), receiver.spans());
    assert_eq!(other.spans(), receiver.spans());
    assert_eq!(
        remote.spans_in_trace(&second),
        local.spans_in_trace(&second)
    );
    let chat = remote
        .spans_in_trace(&second)
        .into_iter()
        .find(|s| s.name == "chat m")
        .expect("chat span");
    assert_eq!(chat.int_attr("gen_ai.usage.output_tokens"), Some(42));
    assert_eq!(chat.f64_attr("gen_ai.request.temperature"), Some(0.25));
    let quiet = rt
        .block_on(remote.wait_quiet(Duration::from_millis(300), WAIT))
        .expect("quiet");
    assert_eq!(quiet.len(), 4);

    let meters = meter_provider(&receiver.endpoint(), Temporality::Cumulative);
    let meter = meters.meter("remote-test");
    let usage = meter
        .u64_histogram("gen_ai.client.token.usage")
        .with_boundaries(vec![1.0, 4.0, 16.0, 64.0])
        .build();
    let requests = meter.u64_counter("test.requests").build();
    let input = [KeyValue::new("gen_ai.token.type", "input")];
    usage.record(10, &input);
    requests.add(1, &[]);
    // The baseline in one reader, the delta in another: snapshots are plain data.
    let baseline = rt.block_on(remote.metrics_baseline()).expect("baseline");
    assert_eq!(baseline.counter_value("test.requests", &[]), 1.0);
    usage.record(20, &input);
    requests.add(3, &[]);
    let delta = rt
        .block_on(other.metrics_delta_since(&baseline, WAIT))
        .expect("delta");
    let filter = [("gen_ai.token.type", "input")];
    assert_eq!(delta.counter_value("test.requests", &[]), 3.0, "{delta:#?}");
    assert_eq!(
        delta.histogram_sum("gen_ai.client.token.usage", &filter),
        20.0
    );
    assert_eq!(
        delta.histogram_count("gen_ai.client.token.usage", &filter),
        1
    );
    let remote_metrics = remote
        .as_remote()
        .expect("remote")
        .metrics()
        .expect("metrics");
    assert_eq!(remote_metrics.snapshot, receiver.metrics());
    assert!(remote_metrics.exports >= 2);
    assert!(remote_metrics.latest_collection_unix_nano > 0);

    meters.shutdown().expect("meter shutdown");
    tracers.shutdown().expect("tracer shutdown");
}

#[test]
fn a_trace_is_quiet_while_other_traces_keep_arriving() {
    let rt = runtime();
    let receiver = OtlpReceiver::start().expect("receiver");
    let remote = Capture::remote(&receiver.endpoint()).expect("remote capture");
    let tracers = tracer_provider(&receiver.endpoint(), Protocol::HttpBinary, false);
    let mine = emit_trace(&tracers);
    tracers.force_flush().expect("span export");
    // Other tests' traces keep coming, every few milliseconds, until the wait is over.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let others = {
        let (stop, tracers) = (stop.clone(), tracers.clone());
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                emit_trace(&tracers);
                tracers.force_flush().expect("span export");
                sent += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            sent
        })
    };
    let quiet = rt.block_on(remote.wait_quiet_in_trace(&mine, Duration::from_millis(100), WAIT));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = others.join().expect("the other traces' thread");
    let quiet = quiet.expect("my trace is quiet");
    assert_eq!(quiet.len(), 2);
    assert!(quiet.iter().all(|s| s.trace_id == mine), "{quiet:?}");
    assert!(sent > 0);
    tracers.shutdown().expect("tracer shutdown");
}

#[test]
fn remote_delta_temporality_gives_the_same_deltas() {
    let receiver = OtlpReceiver::start().expect("receiver");
    let remote = Capture::remote(&receiver.endpoint()).expect("remote capture");
    check_delta_temporality_deltas(&remote, &receiver.endpoint());
}

#[test]
fn remote_errors_carry_the_receivers_diagnostics() {
    let rt = runtime();
    let receiver = OtlpReceiver::start().expect("receiver");
    let remote = Capture::remote(&receiver.endpoint()).expect("remote capture");
    assert_eq!(
        post_undecodable(&rt, &receiver.endpoint(), "/v1/metrics"),
        Some(400)
    );
    let err = rt
        .block_on(remote.wait_for_spans(|s| !s.is_empty(), Duration::from_millis(50)))
        .expect_err("no span arrived");
    let message = err.to_string();
    assert!(message.contains("remote receiver at"), "{message}");
    assert!(message.contains("undecodable"), "{message}");
    let missing = rt
        .block_on(remote.metrics_delta_since(&Default::default(), Duration::from_millis(50)))
        .expect_err("no metrics export");
    assert!(
        matches!(missing, TelemetryError::MetricsTimeout { exports: 0, .. }),
        "{missing}"
    );
    // Nothing came: the baseline is the (empty) totals, after its own short wait.
    let baseline = rt.block_on(remote.metrics_baseline()).expect("baseline");
    assert!(baseline.is_empty());

    // The read API by hand: a filter, and the body of the metrics read is also a snapshot.
    let get = |path: &str| {
        rt.block_on(async {
            reqwest::get(format!("{}{path}", receiver.endpoint()))
                .await
                .expect("GET")
                .text()
                .await
                .expect("body")
        })
    };
    assert_eq!(get(&format!("{SPANS_PATH}?trace_id=00&from=3")), "[]");
    let metrics: super::MetricsSnapshot =
        serde_json::from_str(&get(METRICS_PATH)).expect("a snapshot");
    assert!(metrics.is_empty());

    // Once the receiver is gone, reads fail clearly.
    drop(receiver);
    let gone = rt
        .block_on(remote.wait_for_spans(|s| !s.is_empty(), WAIT))
        .expect_err("receiver gone");
    assert!(matches!(gone, TelemetryError::Remote { .. }), "{gone}");
}
