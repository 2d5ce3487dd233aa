//! Canonical forms of requests already keyed, by a digest of everything they are computed from.
//!
//! [`CanonicalRequest::keyed`] parses the body, applies the normalization rules and writes the
//! body's RFC 8785 text: most of a replayed request's own cost in the recorder. A load test or a
//! benchmark sends the same few requests thousands of times, and a test suite repeats requests
//! too, so the form computed for one request is kept under the SHA-256 of its inputs (method,
//! URL, test id, provider label, whether its secrets are collected, and its body bytes): the
//! same inputs give the same form, the rules being fixed for a recorder. Bounded: bodies of at
//! most [`MAX_BODY`] bytes, about [`CAPACITY_BYTES`] of memory in all (a form is counted as four
//! times its body's size), least recently used first out.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::canonical::CanonicalRequest;

/// Largest body whose form is kept.
pub const MAX_BODY: usize = 64 * 1024;

/// About how much memory the kept forms take at most (four times their bodies' bytes).
pub const CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

/// The digest of a request's inputs to [`CanonicalRequest::keyed`], and its body's size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Inputs {
    digest: [u8; 32],
    body_len: u64,
}

#[derive(Clone)]
struct ByBodySize;

impl quick_cache::Weighter<Inputs, Arc<CanonicalRequest>> for ByBodySize {
    fn weight(&self, inputs: &Inputs, _form: &Arc<CanonicalRequest>) -> u64 {
        // A form holds its body parsed (a tree of a few times the text's size) and its key text:
        // about four times the body. Its own strings count too: never zero.
        4 * inputs.body_len + 256
    }
}

impl Inputs {
    /// The digest of these inputs; `None` for a body too large to keep.
    pub fn of(
        method: &str,
        url: &url::Url,
        body: Option<&[u8]>,
        test_id: Option<&str>,
        provider: Option<&str>,
        for_recording: bool,
    ) -> Option<Self> {
        if body.is_some_and(|b| b.len() > MAX_BODY) {
            return None;
        }
        let mut h = Sha256::new();
        // Each part length-prefixed (or marked absent), so no two inputs share a byte stream.
        let mut part = |bytes: Option<&[u8]>| match bytes {
            Some(b) => {
                h.update([1]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            None => h.update([0]),
        };
        part(Some(method.as_bytes()));
        part(Some(url.as_str().as_bytes()));
        part(test_id.map(str::as_bytes));
        part(provider.map(str::as_bytes));
        part(Some(&[u8::from(for_recording)]));
        part(body);
        Some(Inputs {
            digest: h.finalize().into(),
            body_len: body.map_or(0, |b| b.len() as u64),
        })
    }
}

/// Kept canonical forms (see the module docs).
pub struct KeyMemo {
    forms: quick_cache::sync::Cache<Inputs, Arc<CanonicalRequest>, ByBodySize>,
}

impl std::fmt::Debug for KeyMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMemo")
            .field("forms", &self.forms.len())
            .finish()
    }
}

impl Default for KeyMemo {
    fn default() -> Self {
        KeyMemo {
            forms: quick_cache::sync::Cache::with_weighter(
                (CAPACITY_BYTES / 4096) as usize,
                CAPACITY_BYTES,
                ByBodySize,
            ),
        }
    }
}

impl KeyMemo {
    /// The form kept for `inputs`, or the one `make` computes (then kept).
    pub fn get_or_make(
        &self,
        inputs: Inputs,
        make: impl FnOnce() -> CanonicalRequest,
    ) -> Arc<CanonicalRequest> {
        if let Some(form) = self.forms.get(&inputs) {
            return form;
        }
        let form = Arc::new(make());
        self.forms.insert(inputs, form.clone());
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn every_input_tells_two_requests_apart() {
        let u = url("http://127.0.0.1:8080/v1/chat/completions");
        let base = Inputs::of("POST", &u, Some(b"{}"), Some("t"), Some("p"), false);
        let others = [
            Inputs::of("GET", &u, Some(b"{}"), Some("t"), Some("p"), false),
            Inputs::of(
                "POST",
                &url("http://127.0.0.1:8080/v1/completions"),
                Some(b"{}"),
                Some("t"),
                Some("p"),
                false,
            ),
            Inputs::of("POST", &u, Some(b"{ }"), Some("t"), Some("p"), false),
            Inputs::of("POST", &u, None, Some("t"), Some("p"), false),
            Inputs::of("POST", &u, Some(b"{}"), Some("u"), Some("p"), false),
            Inputs::of("POST", &u, Some(b"{}"), None, Some("p"), false),
            Inputs::of("POST", &u, Some(b"{}"), Some("t"), None, false),
            Inputs::of("POST", &u, Some(b"{}"), Some("t"), Some("p"), true),
            // The same bytes cut between parts differently.
            Inputs::of("POST", &u, Some(b"{}"), Some("tp"), Some(""), false),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        assert_eq!(
            base,
            Inputs::of("POST", &u, Some(b"{}"), Some("t"), Some("p"), false)
        );
    }

    #[test]
    fn large_bodies_are_not_kept_and_a_kept_form_is_shared() {
        let u = url("http://h/v1/x");
        assert!(
            Inputs::of(
                "POST",
                &u,
                Some(&vec![b' '; MAX_BODY + 1]),
                None,
                None,
                false
            )
            .is_none()
        );
        let memo = KeyMemo::default();
        let inputs = Inputs::of("POST", &u, Some(b"{\"a\":1}"), None, None, false).unwrap();
        let rules = crate::recorder::normalize::Rules::llm_defaults();
        let make = || CanonicalRequest::keyed("POST", &u, Some(b"{\"a\":1}"), None, &rules, false);
        let first = memo.get_or_make(inputs, make);
        let second = memo.get_or_make(inputs, || unreachable!("kept"));
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.key(0), make().key(0));
    }
}
