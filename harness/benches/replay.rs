//! Replay cost: a 2 KB non-streaming response with 100 and 100,000 recordings in the store (key
//! computation, lookup, response rebuild, body read), a 1,000-event stream replayed instantly, and
//! a stream's cutting into events when it arrives in tiny chunks.
//!
//! Run: `cargo bench -p harness --bench replay`

use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use harness::context::TestContext;
use harness::recorder::{Mode, Recorder, RecorderConfig, Store};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(mode: Mode, dir: &Path) -> ClientWithMiddleware {
    let rec = Recorder::new(RecorderConfig::new(mode, dir).expect("config")).expect("recorder");
    ClientBuilder::new(reqwest::Client::new()).with(rec).build()
}

/// A new execution id per iteration, so every replay is occurrence 0 of a fresh test run.
fn next_run() -> String {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string()
}

fn chat_body() -> serde_json::Value {
    json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Say hello"}], "temperature": 0, "max_tokens": 64})
}

fn response_2kb() -> String {
    let content = "lorem ipsum ".repeat(150);
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "smollm2-135m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 300, "total_tokens": 310}
    })
    .to_string();
    assert!((1900..2300).contains(&body.len()), "{}", body.len());
    body
}

/// Records the target request through the recorder, then adds `extra` unrelated recordings as
/// blobs (copies of the target under other keys) and lets the store index them.
fn prepare_store(rt: &tokio::runtime::Runtime, dir: &Path, extra: usize, upstream: &str) {
    rt.block_on(async {
        let c = client(Mode::RecordIfMissing, dir);
        TestContext::with_run("bench::chat", "r0")
            .scope(
                c.post(format!("{upstream}/v1/chat/completions"))
                    .json(&chat_body())
                    .send(),
            )
            .await
            .expect("record")
            .bytes()
            .await
            .expect("body");
    });
    let responses = dir.join("responses");
    let target = std::fs::read_dir(&responses)
        .expect("dir")
        .next()
        .expect("one blob")
        .expect("entry")
        .path();
    let text = std::fs::read_to_string(&target).expect("blob");
    let hash = target
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    for i in 0..extra {
        let other = format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15 + 1);
        std::fs::write(
            responses.join(format!("{other}.json")),
            text.replace(&hash, &other),
        )
        .expect("write");
    }
    let t = std::time::Instant::now();
    let store = Store::open(dir).expect("index");
    eprintln!(
        "store with {} recordings indexed in {:.2?}",
        store.rows().expect("rows").len(),
        t.elapsed()
    );
}

fn bench_non_streaming(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(MockServer::start());
    rt.block_on(
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(response_2kb(), "application/json"),
            )
            .mount(&server),
    );
    let mut group = c.benchmark_group("replay_2kb");
    for size in [100usize, 100_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare_store(&rt, dir.path(), size - 1, &server.uri());
        let replay = client(Mode::Replay, dir.path());
        let url = format!("{}/v1/chat/completions", server.uri());
        let body = chat_body();
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.to_async(&rt).iter(|| {
                let (replay, url, body) = (&replay, &url, &body);
                // A fresh execution of the test each time, so the occurrence index stays 0.
                TestContext::with_run("bench::chat", next_run()).scope(async move {
                    let resp = replay.post(url).json(body).send().await.expect("hit");
                    resp.bytes().await.expect("body")
                })
            })
        });
    }
    group.finish();
}

fn bench_stream(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(MockServer::start());
    let mut sse = String::new();
    for i in 0..999 {
        sse.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n"
        ));
    }
    sse.push_str("data: [DONE]\n\n");
    rt.block_on(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream"))
            .mount(&server),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/v1/chat/completions", server.uri());
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": "long"}], "stream": true});
    rt.block_on(async {
        let c = client(Mode::RecordIfMissing, dir.path());
        TestContext::with_run("bench::stream", "r0")
            .scope(c.post(&url).json(&body).send())
            .await
            .expect("record")
            .bytes()
            .await
            .expect("body");
    });
    let replay = client(Mode::Replay, dir.path());
    c.bench_function("replay_stream_1000_events", |b| {
        b.to_async(&rt).iter(|| {
            let (replay, url, body) = (&replay, &url, &body);
            TestContext::with_run("bench::stream", next_run()).scope(async move {
                use futures::StreamExt;
                let resp = replay.post(url).json(body).send().await.expect("hit");
                let mut s = resp.bytes_stream();
                let mut n = 0usize;
                while let Some(chunk) = s.next().await {
                    chunk.expect("chunk");
                    n += 1;
                }
                assert_eq!(n, 1000);
            })
        })
    });
}

/// Cutting a recorded stream into events when the provider sends it in tiny chunks: one 256 KiB
/// event a byte at a time, and 4,096 small events in one chunk (both were quadratic).
fn bench_split(c: &mut Criterion) {
    use harness::recorder::framing::{EventSplitter, Framing};
    let long_event = [b"data: ".as_slice(), &vec![b'x'; 256 * 1024], b"\n\n"].concat();
    let many_events = b"data: {\"a\":1}\n\n".repeat(4096);
    let mut group = c.benchmark_group("split");
    group.bench_function("one_256k_event_byte_by_byte", |b| {
        b.iter(|| {
            let mut s = EventSplitter::new(Framing::Sse);
            long_event
                .iter()
                .map(|byte| s.push(&[*byte]).len())
                .sum::<usize>()
        })
    });
    group.bench_function("4096_events_in_one_chunk", |b| {
        b.iter(|| EventSplitter::new(Framing::Sse).push(&many_events).len())
    });
    group.finish();
}

criterion_group!(benches, bench_non_streaming, bench_stream, bench_split);
criterion_main!(benches);
