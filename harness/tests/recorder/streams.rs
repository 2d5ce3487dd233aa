//! Streams: forwarded as they arrive, recorded whole, replayed with their boundaries and pacing.

use std::time::Duration;

use futures::StreamExt;
use harness::context::TestContext;
use harness::recorder::format::StreamEnd;
use harness::recorder::{Mode, Recorder, RecorderConfig, ReplayTiming, Store};
use reqwest_middleware::ClientBuilder;

use crate::common::{chunks, client, post, raw_stream_server, stream_body, the_stream};

const SSE: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";

#[tokio::test]
async fn streams_are_forwarded_as_they_arrive_and_replayed_with_their_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    // Two events split across three network chunks.
    let base = raw_stream_server(
        vec![
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"cho",
            "ices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: [DONE]\n\n",
        ],
        Duration::from_millis(30),
        false,
    )
    .await;
    let c = client(Mode::RecordIfMissing, dir.path());
    let recorded = TestContext::new("t")
        .scope(async {
            let resp = post(&c, &base, &stream_body()).await.unwrap();
            let mut s = resp.bytes_stream();
            // The first chunk reaches the caller before the provider has sent the rest.
            let first = s.next().await.unwrap().unwrap();
            assert!(first.starts_with(b"data: {\"choices\""));
            let mut all = first.to_vec();
            while let Some(b) = s.next().await {
                all.extend_from_slice(&b.unwrap());
            }
            String::from_utf8(all).unwrap()
        })
        .await;
    assert_eq!(recorded, SSE);
    let (events, end) = the_stream(dir.path());
    assert_eq!(end, StreamEnd::Complete);
    assert_eq!(events.len(), 3);
    assert!(events.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));

    let c = client(Mode::Replay, dir.path());
    let (got, err) = TestContext::new("t")
        .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
        .await;
    assert!(err.is_none());
    assert_eq!(
        got,
        vec![
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n".to_owned(),
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n".to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_stream_the_caller_drops_early_is_read_to_its_end_and_recorded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let base = raw_stream_server(
        vec![
            "data: {\"a\":1}\n\n",
            "data: {\"a\":2}\n\n",
            "data: [DONE]\n\n",
        ],
        Duration::from_millis(50),
        false,
    )
    .await;
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("t")
        .scope(async {
            let resp = post(&c, &base, &stream_body()).await.unwrap();
            let mut s = resp.bytes_stream();
            s.next().await.unwrap().unwrap();
            // dropped here, after one event
        })
        .await;
    // The rest is read in the background; the recording appears when the stream ends.
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..100 {
        if !store.rows().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (events, end) = the_stream(dir.path());
    assert_eq!(events.len(), 3);
    assert_eq!(end, StreamEnd::Complete);
    // Replay gives every event, to a caller that reads them all.
    let c = client(Mode::Replay, dir.path());
    let (got, err) = TestContext::new("t")
        .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
        .await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(err.is_none(), "{err:?}");
}

#[test]
fn paced_replay_follows_the_recorded_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = raw_stream_server(
            vec!["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"],
            Duration::from_millis(80),
            false,
        )
        .await;
        let c = client(Mode::RecordIfMissing, dir.path());
        TestContext::new("t")
            .scope(async { chunks(post(&c, &base, &stream_body()).await.unwrap()).await })
            .await;
    });
    let (events, _) = the_stream(dir.path());
    let last = events.last().unwrap().t_ms;
    // Replay on a paused clock: virtual time advances exactly as far as the pacing sleeps.
    for (timing, paced) in [
        (ReplayTiming::Recorded, true),
        (ReplayTiming::Instant, false),
    ] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let elapsed = rt.block_on(async {
            let mut cfg = RecorderConfig::new(Mode::Replay, dir.path()).unwrap();
            cfg.timing = timing;
            let c = ClientBuilder::new(reqwest::Client::new())
                .with(Recorder::new(cfg).unwrap())
                .build();
            let start = tokio::time::Instant::now();
            let (got, _) = TestContext::new("t")
                .scope(async {
                    chunks(
                        post(&c, "http://127.0.0.1:9", &stream_body())
                            .await
                            .unwrap(),
                    )
                    .await
                })
                .await;
            assert_eq!(got.len(), 3);
            start.elapsed().as_secs_f64() * 1000.0
        });
        if paced {
            assert!(
                elapsed >= last - 1.0,
                "paced replay took {elapsed} ms, recording spans {last} ms"
            );
            assert!(
                last >= 200.0,
                "events were recorded ~80 ms apart, last at {last} ms"
            );
        } else {
            assert!(
                elapsed < 1.0,
                "instant replay slept {elapsed} ms of virtual time"
            );
        }
    }
}
