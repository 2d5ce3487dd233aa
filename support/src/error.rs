//! An error and its sources as one line of text.

/// An error's message followed by its sources', each once (`outer: inner: innermost`): a source
/// whose text the line already contains (an error that repeats its cause's message) is left out.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    for source in std::iter::successors(e.source(), |s| s.source()) {
        let text = source.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;
    use std::fmt;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn every_source_once_in_order() {
        let e = Layer(
            "request failed",
            Some(Box::new(Layer(
                "connect",
                Some(Box::new(Layer("refused", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "request failed: connect: refused");
    }

    #[test]
    fn a_source_already_in_the_message_is_left_out() {
        let e = Layer(
            "body error: timed out",
            Some(Box::new(Layer(
                "timed out",
                Some(Box::new(Layer("os error 110", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "body error: timed out: os error 110");
    }
}
