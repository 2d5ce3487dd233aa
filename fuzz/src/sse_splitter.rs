//! `sse_splitter`: the event splitter the recorder cuts streamed bodies with
//! ([`harness::recorder::framing::EventSplitter`]), for both framings.
//!
//! Input: one byte that seeds the chunk sizes, then the stream's bytes.
//!
//! Checked, for SSE and for line framing, with the stream pushed whole, a byte at a time, and in
//! pseudo-random chunks of 0 to 16 bytes (empty pushes included):
//!
//! - nothing is lost or added: the events, in order, followed by what `finish()` returns, are
//!   the input bytes;
//! - the chunking does not matter: every chunking gives the same events and the same remainder;
//! - every event is one event: non-empty, and a fresh splitter fed exactly that event gives it
//!   back as its only event with nothing left (so it ends with a terminator and holds no earlier
//!   one); with line framing it is one line, ending with its only `\n`;
//! - the remainder holds no complete event: a fresh splitter fed it gives no event.

use harness::recorder::framing::{EventSplitter, Framing};

/// Events and remainder of `stream` pushed in the given chunk sizes (cycled; 0 is an empty push).
fn split(framing: Framing, stream: &[u8], sizes: &mut dyn FnMut() -> usize) -> Split {
    let mut splitter = EventSplitter::new(framing);
    let mut events = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = sizes().min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        events.extend(splitter.push(chunk));
        rest = tail;
    }
    assert!(
        splitter.push(&[]).is_empty(),
        "an empty push completed an event"
    );
    Split {
        events,
        rest: splitter.finish(),
    }
}

#[derive(Debug, PartialEq)]
struct Split {
    events: Vec<Vec<u8>>,
    rest: Option<Vec<u8>>,
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    for framing in [Framing::Sse, Framing::Lines] {
        let whole = split(framing, stream, &mut || usize::MAX);

        let mut joined = whole.events.concat();
        joined.extend(whole.rest.iter().flatten());
        assert_eq!(
            joined, stream,
            "{framing:?}: events + remainder differ from the input"
        );
        if let Some(rest) = &whole.rest {
            assert!(!rest.is_empty(), "{framing:?}: finish() gave Some(empty)");
            let mut fresh = EventSplitter::new(framing);
            assert!(
                fresh.push(rest).is_empty(),
                "{framing:?}: the remainder {rest:?} holds an event"
            );
        }
        for event in &whole.events {
            assert!(!event.is_empty(), "{framing:?}: an empty event");
            let mut fresh = EventSplitter::new(framing);
            assert_eq!(
                fresh.push(event),
                vec![event.clone()],
                "{framing:?}: event {event:?} is not exactly one event"
            );
            assert!(fresh.finish().is_none());
            if framing == Framing::Lines {
                assert_eq!(event.last(), Some(&b'\n'));
                assert_eq!(event.iter().filter(|b| **b == b'\n').count(), 1);
            }
        }

        let bytewise = split(framing, stream, &mut || 1);
        assert_eq!(bytewise, whole, "{framing:?}: a byte at a time differs");

        // xorshift32 from the seed byte: chunk sizes 0..=16.
        let mut state = 0x9e37_79b9u32 ^ u32::from(seed);
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 17) as usize
        };
        let chunked = split(framing, stream, &mut next);
        assert_eq!(
            chunked, whole,
            "{framing:?}: chunking (seed {seed}) differs"
        );
    }
}
