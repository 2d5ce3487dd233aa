//! Splitting a streamed body into events: SSE events (ended by a blank line) or NDJSON lines.

/// How a streamed body is cut into events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: events end with a blank line.
    Sse,
    /// `application/x-ndjson` and friends: one event per line.
    Lines,
}

impl Framing {
    /// The framing for a response content type, or `None` when the body is not a stream.
    pub fn for_content_type(content_type: &str) -> Option<Framing> {
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("text/event-stream") {
            Some(Framing::Sse)
        } else if ct.starts_with("application/x-ndjson")
            || ct.starts_with("application/jsonl")
            || ct.starts_with("application/json-seq")
        {
            Some(Framing::Lines)
        } else {
            None
        }
    }
}

/// Accumulates bytes and hands out complete events with their terminators.
///
/// Linear in the bytes pushed, however they are chunked: a scan resumes where the last one
/// stopped (a terminator is at most three bytes, so the last two are looked at again), and the
/// buffer is compacted once a push, not once an event. A provider sending a long event a byte at
/// a time, or thousands of small events in one chunk, costs no more than one pass.
#[derive(Debug)]
pub struct EventSplitter {
    framing: Framing,
    buf: Vec<u8>,
    /// Where in `buf` the next scan starts: no event ends before it.
    scanned: usize,
}

impl EventSplitter {
    /// A splitter for the given framing.
    pub fn new(framing: Framing) -> Self {
        EventSplitter {
            framing,
            buf: Vec::new(),
            scanned: 0,
        }
    }

    /// The end (exclusive) of the first event whose terminator starts at `from` or later.
    fn event_end(&self, from: usize) -> Option<usize> {
        let b = &self.buf;
        match self.framing {
            Framing::Lines => b[from..]
                .iter()
                .position(|c| *c == b'\n')
                .map(|i| from + i + 1),
            Framing::Sse => {
                let mut i = from;
                while i < b.len() {
                    if b[i] == b'\n' {
                        if b.get(i + 1) == Some(&b'\n') {
                            return Some(i + 2);
                        }
                        if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                            return Some(i + 3);
                        }
                    }
                    if b[i] == b'\r' && b.get(i + 1) == Some(&b'\r') {
                        return Some(i + 2);
                    }
                    i += 1;
                }
                None
            }
        }
    }

    /// Adds bytes; returns the events they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(end) = self.event_end(from) {
            out.push(self.buf[start..end].to_vec());
            start = end;
            from = end;
        }
        self.buf.drain(..start);
        // The last two bytes may begin a terminator that the next chunk completes.
        self.scanned = self.buf.len().saturating_sub(2);
        out
    }

    /// The bytes left after the last complete event (a stream cut in the middle of an event).
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then_some(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The splitter before it resumed its scans: every push scanned the whole buffer and
    /// removed each event from its front. The oracle for the same cuts.
    fn rescan_from_the_start(framing: Framing, chunks: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                let end = match framing {
                    Framing::Lines => buf.iter().position(|b| *b == b'\n').map(|i| i + 1),
                    Framing::Sse => (0..buf.len()).find_map(|i| {
                        let at = |k: usize| buf.get(i + k).copied();
                        match (at(0), at(1), at(2)) {
                            (Some(b'\n'), Some(b'\n'), _) => Some(i + 2),
                            (Some(b'\n'), Some(b'\r'), Some(b'\n')) => Some(i + 3),
                            (Some(b'\r'), Some(b'\r'), _) => Some(i + 2),
                            _ => None,
                        }
                    }),
                };
                let Some(end) = end else { break };
                out.push(buf.drain(..end).collect());
            }
        }
        (out, buf)
    }

    proptest! {
        #[test]
        fn resumed_scans_cut_where_full_scans_do(
            text in prop::collection::vec(prop::sample::select(vec![b'\n', b'\r', b'a', b':']), 0..200),
            cuts in prop::collection::vec(1usize..9, 1..40),
            lines in any::<bool>(),
        ) {
            let framing = if lines { Framing::Lines } else { Framing::Sse };
            let mut chunks = Vec::new();
            let mut rest = &text[..];
            for n in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let n = (*n).min(rest.len());
                chunks.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            let (expected, left) = rescan_from_the_start(framing, &chunks);
            let mut s = EventSplitter::new(framing);
            let events: Vec<Vec<u8>> = chunks.iter().flat_map(|c| s.push(c)).collect();
            prop_assert_eq!(events, expected);
            prop_assert_eq!(s.finish().unwrap_or_default(), left);
        }
    }

    #[test]
    fn sse_events_are_cut_at_blank_lines_whatever_the_chunking() {
        let text = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\n: comment\n\ndata: [DONE]\n\n";
        for size in [1, 3, 7, text.len()] {
            let mut s = EventSplitter::new(Framing::Sse);
            let mut events = Vec::new();
            for chunk in text.chunks(size) {
                events.extend(s.push(chunk));
            }
            assert_eq!(events.len(), 4, "chunk size {size}");
            assert_eq!(events[0], b"data: {\"a\":1}\n\n");
            assert_eq!(events[1], b"data: {\"b\":2}\r\n\r\n");
            assert_eq!(events.concat(), text.to_vec());
            assert!(s.finish().is_none());
        }
    }

    #[test]
    fn lines_and_leftovers() {
        let mut s = EventSplitter::new(Framing::Lines);
        assert_eq!(s.push(b"{\"a\":1}\n{\"b\""), vec![b"{\"a\":1}\n".to_vec()]);
        assert_eq!(s.finish(), Some(b"{\"b\"".to_vec()));
        assert_eq!(
            Framing::for_content_type("text/event-stream; charset=utf-8"),
            Some(Framing::Sse)
        );
        assert_eq!(Framing::for_content_type("application/json"), None);
    }
}
