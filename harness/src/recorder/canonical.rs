//! Where a request is canonicalized and its key computed.
//!
//! The key of a request is the lowercase hex SHA-256 of the RFC 8785 (JCS) serialization of:
//!
//! ```json
//! {"body": B, "method": "POST", "occurrence": 0, "path": "/v1/chat/completions",
//!  "query": [["api-version", "2024-06-01"]], "test_id": "inference/chat.rs::basic[...]"}
//! ```
//!
//! - `method`: uppercase.
//! - `path`: the URL path exactly as sent, base path included (`/v1/...`); scheme, host, port,
//!   user info and fragment are dropped so a provider can move hosts. See `docs/recordings.md`.
//! - `query`: the non-secret query parameters as `[name, value]` pairs, sorted.
//! - `body`: a JSON body after the normalization rules (secret fields masked); JCS then sorts
//!   keys, writes `1.0` as `1` and every float in its shortest round-trip form. A non-JSON UTF-8
//!   body is its text; a binary body is `{"sha256": hex}`; no body is `null`.
//! - `test_id`: the test identity, or `null` outside a test.
//! - `occurrence`: how many identical requests (same everything else) this execution of the test
//!   sent before this one, so repeated requests get their own recordings in order.
//!
//! Headers are never part of the key.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::normalize::Rules;
use super::redact;

/// A request body reduced to what the key depends on.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CanonicalBody {
    /// No body.
    Empty,
    /// A JSON body after normalization.
    Json(Value),
    /// A UTF-8 body that is not JSON.
    Text(String),
    /// A binary body, by digest.
    Binary {
        /// Hex SHA-256 of the bytes.
        sha256: String,
    },
}

impl CanonicalBody {
    /// Canonicalizes raw body bytes with the given rules.
    pub fn from_bytes(bytes: Option<&[u8]>, rules: &Rules, host: &str, path: &str) -> Self {
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return CanonicalBody::Empty;
        };
        if let Ok(mut v) = serde_json::from_slice::<Value>(bytes) {
            rules.apply(host, path, &mut v);
            return CanonicalBody::Json(v);
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => CanonicalBody::Text(s.to_owned()),
            Err(_) => CanonicalBody::Binary {
                sha256: hex::encode(Sha256::digest(bytes)),
            },
        }
    }

    /// The `model` field of a JSON body, if any.
    pub fn model(&self) -> Option<&str> {
        match self {
            CanonicalBody::Json(v) => v.get("model").and_then(Value::as_str),
            _ => None,
        }
    }

    /// Whether the body asks for a stream (`"stream": true`).
    pub fn wants_stream(&self) -> bool {
        matches!(self, CanonicalBody::Json(v) if v.get("stream").and_then(Value::as_bool) == Some(true))
    }

    /// A pretty, key-sorted rendering for diffs and recordings.
    pub fn to_pretty(&self) -> String {
        let canonical = match self {
            CanonicalBody::Empty => return "(no body)".into(),
            CanonicalBody::Text(s) => return s.clone(),
            other => serde_jcs::to_string(other).unwrap_or_default(),
        };
        serde_json::from_str::<Value>(&canonical)
            .and_then(|v| serde_json::to_string_pretty(&sort_keys(v)))
            .unwrap_or(canonical)
    }

    /// The body as a JSON value (for storing in a recording), numbers as JCS writes them.
    pub fn to_value(&self) -> Value {
        match self {
            CanonicalBody::Empty => Value::Null,
            CanonicalBody::Json(v) => serde_jcs::to_string(v)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .map(sort_keys)
                .unwrap_or_else(|| sort_keys(v.clone())),
            CanonicalBody::Text(s) => Value::String(s.clone()),
            CanonicalBody::Binary { sha256 } => serde_json::json!({ "sha256": sha256 }),
        }
    }
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// Everything the key of a request depends on, except the occurrence index.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalRequest {
    /// Uppercase HTTP method.
    pub method: String,
    /// URL path as sent.
    pub path: String,
    /// Sorted non-secret query parameters.
    pub query: Vec<(String, String)>,
    /// The canonical body.
    pub body: CanonicalBody,
    /// The test identity.
    pub test_id: Option<String>,
}

#[derive(Serialize)]
struct KeyForm<'a> {
    body: &'a CanonicalBody,
    method: &'a str,
    occurrence: u32,
    path: &'a str,
    query: &'a [(String, String)],
    test_id: Option<&'a str>,
}

impl CanonicalRequest {
    /// Builds the canonical form of a request.
    pub fn new(
        method: &str,
        url: &url::Url,
        body: Option<&[u8]>,
        test_id: Option<&str>,
        rules: &Rules,
    ) -> Self {
        let host = url.host_str().unwrap_or("");
        let path = url.path().to_owned();
        let mut query: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !redact::is_secret_name(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        query.sort();
        CanonicalRequest {
            method: method.to_ascii_uppercase(),
            body: CanonicalBody::from_bytes(body, rules, host, &path),
            path,
            query,
            test_id: test_id.map(str::to_owned),
        }
    }

    /// The exact text that is hashed for a given occurrence (RFC 8785 JSON).
    pub fn key_text(&self, occurrence: u32) -> String {
        let form = KeyForm {
            body: &self.body,
            method: &self.method,
            occurrence,
            path: &self.path,
            query: &self.query,
            test_id: self.test_id.as_deref(),
        };
        // JCS only fails on non-finite floats, which serde_json::Value cannot hold.
        serde_jcs::to_string(&form).unwrap_or_default()
    }

    /// The request key: hex SHA-256 of [`CanonicalRequest::key_text`].
    pub fn key(&self, occurrence: u32) -> String {
        hex::encode(Sha256::digest(self.key_text(occurrence).as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str, test_id: Option<&str>) -> CanonicalRequest {
        let url = url::Url::parse("http://127.0.0.1:8080/v1/chat/completions").unwrap();
        CanonicalRequest::new(
            "post",
            &url,
            Some(body.as_bytes()),
            test_id,
            &Rules::llm_defaults(),
        )
    }

    /// Golden hashes: if one of these changes, every recording's key changes. Bump the format
    /// version and document the change instead of editing the expected values.
    #[test]
    fn golden_hashes() {
        let r = req(
            r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Hi"}],"temperature":0}"#,
            Some("t"),
        );
        assert_eq!(
            r.key_text(0),
            r#"{"body":{"messages":[{"content":"Hi","role":"user"}],"model":"smollm2-135m","temperature":0},"method":"POST","occurrence":0,"path":"/v1/chat/completions","query":[],"test_id":"t"}"#
        );
        assert_eq!(
            r.key(0),
            "8d3dcaa28c2127efc3dd9a4bfda538c7e81f5eb9b8bce36cc0da9c4cd408eda2"
        );
        assert_eq!(
            r.key(1),
            "02c61297b7331936c9af950ddbf981bd28e3af639f9460147c26137d5df7583c"
        );
        let none = CanonicalRequest::new(
            "GET",
            &url::Url::parse("http://h:1/v1/models").unwrap(),
            None,
            None,
            &Rules::none(),
        );
        assert_eq!(
            none.key_text(0),
            r#"{"body":null,"method":"GET","occurrence":0,"path":"/v1/models","query":[],"test_id":null}"#
        );
        assert_eq!(
            none.key(0),
            "5e4e66167eaaa8611bb6be965ab3497623d11d099531f1c0dc7289039c17b9c6"
        );
    }

    #[test]
    fn key_ignores_host_key_order_number_spelling_and_secrets() {
        let a = req(r#"{"a":1,"b":0.5,"api_key":"sk-real"}"#, Some("t"));
        let b = req(
            r#"{ "b" : 5e-1, "a" : 1.0, "api_key": "dummy" }"#,
            Some("t"),
        );
        assert_eq!(a.key(0), b.key(0));
        let moved = CanonicalRequest::new(
            "POST",
            &url::Url::parse("https://other.example:9999/v1/chat/completions?key=secret").unwrap(),
            Some(br#"{"a":1,"b":0.5}"#),
            Some("t"),
            &Rules::llm_defaults(),
        );
        assert_eq!(moved.key(0), req(r#"{"a":1,"b":0.5}"#, Some("t")).key(0));
    }

    #[test]
    fn key_depends_on_test_id_occurrence_path_and_body() {
        let a = req(r#"{"a":1}"#, Some("t"));
        assert_ne!(a.key(0), req(r#"{"a":1}"#, Some("u")).key(0));
        assert_ne!(a.key(0), req(r#"{"a":1}"#, None).key(0));
        assert_ne!(a.key(0), a.key(1));
        assert_ne!(a.key(0), req(r#"{"a":2}"#, Some("t")).key(0));
    }

    #[test]
    fn non_json_bodies_are_text_or_digest() {
        let rules = Rules::none();
        assert_eq!(
            CanonicalBody::from_bytes(Some(b"hello"), &rules, "", ""),
            CanonicalBody::Text("hello".into())
        );
        assert!(matches!(
            CanonicalBody::from_bytes(Some(&[0xff, 0xfe]), &rules, "", ""),
            CanonicalBody::Binary { .. }
        ));
        assert_eq!(
            CanonicalBody::from_bytes(Some(b""), &rules, "", ""),
            CanonicalBody::Empty
        );
    }
}
