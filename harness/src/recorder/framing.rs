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
#[derive(Debug)]
pub struct EventSplitter {
    framing: Framing,
    buf: Vec<u8>,
}

impl EventSplitter {
    /// A splitter for the given framing.
    pub fn new(framing: Framing) -> Self {
        EventSplitter {
            framing,
            buf: Vec::new(),
        }
    }

    fn event_end(&self) -> Option<usize> {
        match self.framing {
            Framing::Lines => self.buf.iter().position(|b| *b == b'\n').map(|i| i + 1),
            Framing::Sse => {
                let b = &self.buf;
                let mut i = 0;
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
        while let Some(end) = self.event_end() {
            out.push(self.buf.drain(..end).collect());
        }
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
