//! Record cost: a 4 MB chat request (38,000 messages) sent to a local provider through the
//! recorder in `record` mode, against the same request with no recorder, with a provider that
//! answers at once and with ones that take 50 and 100 ms; and the blob's size against the bytes
//! of request plus response.
//!
//! Run: `cargo bench -p harness --bench record`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use harness::context::TestContext;
use harness::recorder::{Mode, Recorder, RecorderConfig};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn big_chat() -> Value {
    let messages: Vec<Value> = (0..38_000)
        .map(|i| json!({"role": "user", "content": format!("message {i}: the quick brown fox jumps over the lazy dog, then the next one")}))
        .collect();
    json!({"model": "m", "messages": messages, "temperature": 0})
}

fn bench_record(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let answer = json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]});
    let body = serde_json::to_vec(&big_chat()).expect("body");
    assert!(body.len() > 3_900_000, "{}", body.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::new(RecorderConfig::new(Mode::Record, dir.path()).expect("config"))
        .expect("recorder");
    let recording: ClientWithMiddleware = ClientBuilder::new(reqwest::Client::new())
        .with(recorder)
        .build();
    let plain: ClientWithMiddleware = ClientBuilder::new(reqwest::Client::new()).build();
    // A provider that answers as soon as it has read the request, and ones that take 50 and
    // 100 ms (a real model takes far longer to read 4 MB of prompt): the recorder keys and
    // drafts the request while the provider works, so its cost shows less the longer the
    // provider takes.
    for (group_name, delay) in [
        ("record_4mb", Duration::ZERO),
        ("record_4mb_provider_50ms", Duration::from_millis(50)),
        ("record_4mb_provider_100ms", Duration::from_millis(100)),
    ] {
        // Without request recording: wiremock would otherwise keep every 4 MB body it received,
        // and the run without the recorder (hundreds of iterations) slowed as that grew.
        let server = rt.block_on(MockServer::builder().disable_request_recording().start());
        rt.block_on(
            Mock::given(method("POST"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(answer.clone())
                        .set_delay(delay),
                )
                .mount(&server),
        );
        let url = format!("{}/v1/chat/completions", server.uri());
        let mut group = c.benchmark_group(group_name);
        group.sample_size(10);
        for (name, client) in [("without_recorder", &plain), ("record_mode", &recording)] {
            group.bench_function(name, |b| {
                b.to_async(&rt).iter(|| {
                    let (client, url, body) = (client, &url, body.clone());
                    TestContext::new("bench::record").scope(async move {
                        client
                            .post(url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .expect("answer")
                            .bytes()
                            .await
                            .expect("body")
                    })
                })
            });
        }
        group.finish();
    }
    let blob = std::fs::read_dir(dir.path().join("responses"))
        .expect("responses")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .expect("a blob");
    let size = blob.metadata().expect("size").len() as f64;
    let exchanged = (body.len() + answer.to_string().len()) as f64;
    eprintln!(
        "blob: {size} bytes for {exchanged} bytes of request and response ({:.2}x)",
        size / exchanged
    );
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
