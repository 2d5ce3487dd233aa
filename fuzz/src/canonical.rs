//! `canonical`: the request canonicalizer and key ([`harness::recorder::CanonicalRequest`]) with
//! the default rules.
//!
//! Input: three lines and a body, `METHOD\nURL\nTEST_ID\nBODY`. `URL` is used as it is when it
//! parses as an absolute URL, else joined onto `http://127.0.0.1:8080/` (so `/v1/chat/completions?a=1`
//! works); an empty `TEST_ID` line means no test id; `BODY` is every byte after the third newline
//! (none: no body). An input with fewer than three newlines, or a URL that does not parse, is
//! skipped.
//!
//! Checked: nothing panics; the key is 64 lowercase hex digits; computing it twice, and from a
//! second canonicalization of the same request, gives the same key, base key and key text; the
//! occurrence changes the key; the key text is valid RFC 8785 JSON (parsing it and writing it
//! with JCS gives it back); and, what `recordings rekey` relies on, the canonical body as stored
//! in a recording (`to_value`) canonicalized again (`CanonicalRequest::from_recorded`) gives the
//! same key, except for the bodies whose stored form is ambiguous (a JSON string, `null` or a
//! `{"binary_sha256": ...}` object, which read back as a text, no or a binary body).

use harness::recorder::format::{Body, RecordedRequest};
use harness::recorder::{CanonicalBody, CanonicalRequest, Rules};
use serde_json::Value;

/// A decoded input.
struct Input<'a> {
    method: &'a str,
    url: url::Url,
    test_id: Option<&'a str>,
    body: Option<&'a [u8]>,
}

fn decode(data: &[u8]) -> Option<Input<'_>> {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let method = std::str::from_utf8(parts.next()?).ok()?;
    let url = std::str::from_utf8(parts.next()?).ok()?;
    let test_id = std::str::from_utf8(parts.next()?).ok()?;
    let body = parts.next()?;
    let url = url::Url::parse(url)
        .or_else(|_| url::Url::parse("http://127.0.0.1:8080/").and_then(|base| base.join(url)))
        .ok()?;
    Some(Input {
        method,
        url,
        test_id: (!test_id.is_empty()).then_some(test_id),
        body: (!body.is_empty()).then_some(body),
    })
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let Some(input) = decode(data) else {
        return;
    };
    let rules = Rules::llm_defaults();
    let canonicalize =
        || CanonicalRequest::new(input.method, &input.url, input.body, input.test_id, &rules);
    let a = canonicalize();
    let key = a.key(0);
    assert_eq!(key.len(), 64, "key {key:?}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "key {key:?} is not lowercase hex"
    );
    assert_eq!(a.key(0), key, "the same request object gave two keys");
    let b = canonicalize();
    assert_eq!(b.key(0), key, "two canonicalizations gave two keys");
    assert_eq!(a.key_text(0), b.key_text(0));
    assert_eq!(a.base_key(), b.base_key());
    assert_ne!(a.key(1), key, "the occurrence is not in the key");
    assert_eq!(a.body, b.body);

    // The key text is JCS: reading it and writing it back changes nothing. It nests the body two
    // levels down, so a body nested to serde_json's depth limit (127) gives a key text that
    // serde_json will not read back; nothing reads key texts, so that is skipped.
    let text = a.key_text(0);
    match serde_json::from_str::<Value>(&text) {
        Ok(parsed) => {
            let rewritten = serde_jcs::to_string(&parsed).expect("JCS of a parsed value");
            assert_eq!(rewritten, text, "the key text is not in its JCS form");
        }
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {}
        Err(e) => panic!("key text is not JSON ({e}): {text}"),
    }

    // What diagnostics and recordings show of the body.
    let _ = a.body.to_pretty();
    let _ = a.body.field("model");
    let stored = a.body.to_value();

    // `recordings rekey`: the stored canonical body reproduces the key under the same rules.
    let ambiguous = match &stored {
        Value::Null | Value::String(_) => matches!(a.body, CanonicalBody::Json(_)),
        Value::Object(o) => {
            matches!(a.body, CanonicalBody::Json(_))
                && o.len() == 1
                && o.get("binary_sha256").is_some_and(Value::is_string)
        }
        _ => false,
    };
    if !ambiguous {
        let recorded = RecordedRequest {
            method: a.method.clone(),
            path: a.path.clone(),
            query: a.query.clone(),
            model: a.body.field("model").map(str::to_owned),
            provider: None,
            headers: Default::default(),
            canonical_body: stored,
            body: Body::Empty,
        };
        let again = CanonicalRequest::from_recorded(&recorded, input.test_id, &rules);
        assert_eq!(
            again.key_text(0),
            text,
            "the stored canonical body does not reproduce the key"
        );
    }
}
