//! Miss cost: how long a replay miss takes to explain itself (nearest recordings, bounded diffs,
//! capped message) when the request body is large: a 1 MB chat request (10,000 messages) whose
//! recording differs in one message.
//!
//! Run: `cargo bench -p harness --bench miss`

use criterion::{Criterion, criterion_group, criterion_main};
use harness::context::TestContext;
use harness::recorder::{Mode, Recorder, RecorderConfig};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(mode: Mode, dir: &std::path::Path) -> ClientWithMiddleware {
    let rec = Recorder::new(RecorderConfig::new(mode, dir).expect("config")).expect("recorder");
    ClientBuilder::new(reqwest::Client::new()).with(rec).build()
}

/// A chat request of about 1 MB: `n` messages of ~170 bytes; message `changed` says otherwise.
fn big_chat(n: usize, changed: Option<usize>) -> Value {
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            let text = if Some(i) == changed {
                format!("message {i}: this one was edited after the recording was made.......")
            } else {
                format!("message {i}: the quick brown fox jumps over the lazy dog, again and again")
            };
            json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": text})
        })
        .collect();
    json!({"model": "m", "messages": messages, "temperature": 0})
}

fn bench_miss(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(MockServer::start());
    rt.block_on(
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": "c", "choices": []})),
            )
            .mount(&server),
    );
    let url = format!("{}/v1/chat/completions", server.uri());
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded = big_chat(10_000, None);
    let size = recorded.to_string().len();
    assert!(size > 900_000, "{size}");
    rt.block_on(async {
        let c = client(Mode::RecordIfMissing, dir.path());
        TestContext::with_run("bench::miss", "r0")
            .scope(c.post(&url).json(&recorded).send())
            .await
            .expect("record");
    });
    let replay = client(Mode::Replay, dir.path());
    let missed = big_chat(10_000, Some(5_000));
    c.bench_function("miss_1mb_body", |b| {
        b.to_async(&rt).iter(|| {
            let (replay, url, missed) = (&replay, &url, &missed);
            TestContext::with_run("bench::miss", "r1").scope(async move {
                let err = replay
                    .post(url)
                    .json(missed)
                    .send()
                    .await
                    .expect_err("a miss");
                let text = format!("{err:#}");
                assert!(text.len() <= 70 * 1024, "{}", text.len());
                text.len()
            })
        })
    });
}

criterion_group!(benches, bench_miss);
criterion_main!(benches);
