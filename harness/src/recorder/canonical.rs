//! Where a request is canonicalized and its key computed.
//!
//! The key of a request is the lowercase hex SHA-256 of the RFC 8785 (JCS) serialization of:
//!
//! ```json
//! {"body": {"json": B}, "method": "POST", "occurrence": 0, "path": "/v1/chat/completions",
//!  "provider": "llamacpp", "query": [["api-version", "2024-06-01"]],
//!  "test_id": "inference/chat.rs::basic[...]"}
//! ```
//!
//! - `method`: uppercase.
//! - `path`: the URL path exactly as sent, base path included (`/v1/...`); scheme, host, port,
//!   user info and fragment are dropped so a provider can move hosts. See `docs/recordings.md`.
//! - `query`: the non-secret query parameters as `[name, value]` pairs, sorted.
//! - `body`: `{"json": B}` for a JSON body after the normalization rules (secret fields masked);
//!   JCS then sorts keys, writes `1.0` as `1` and every float in its shortest round-trip form. A
//!   non-JSON UTF-8 body is `{"text": T}`; a binary body is `{"binary_sha256": hex}`; no body is
//!   `null`.
//! - `provider`: the label the service attached to the request
//!   ([`ProviderLabel`](super::ProviderLabel)), or `null`: two providers serving the same path and
//!   body (model discovery) get separate recordings without the host entering the key.
//! - `test_id`: the test identity, or `null` outside a test.
//! - `occurrence`: how many identical requests (same everything else) this execution of the test
//!   sent before this one, so repeated requests get their own recordings in order.
//!
//! Headers are never part of the key.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jcs;
use super::normalize::Rules;
use super::redact;

/// A request body reduced to what the key depends on.
#[derive(Clone, Debug, PartialEq)]
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
        Self::from_bytes_with_secrets(bytes, rules, host, path, None)
    }

    /// [`CanonicalBody::from_bytes`], also collecting the secret values of a JSON body as sent
    /// ([`redact::secret_leaves`], before the rules mask them) into `secrets` when given: a
    /// recorder that writes scrubs them from everything it writes, and the body is parsed once
    /// for both.
    pub fn from_bytes_with_secrets(
        bytes: Option<&[u8]>,
        rules: &Rules,
        host: &str,
        path: &str,
        secrets: Option<&mut Vec<String>>,
    ) -> Self {
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return CanonicalBody::Empty;
        };
        if let Ok(mut v) = serde_json::from_slice::<Value>(bytes) {
            if let Some(secrets) = secrets {
                redact::secret_leaves(&v, secrets);
            }
            rules.apply(host, path, &mut v);
            // Held in RFC 8785 form: the key's text is then written without sorting, and the
            // recording's copy is the value as it is.
            jcs::canonicalize_in_place(&mut v);
            return CanonicalBody::Json(v);
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => CanonicalBody::Text(s.to_owned()),
            Err(_) => CanonicalBody::Binary {
                sha256: hex::encode(Sha256::digest(bytes)),
            },
        }
    }

    /// The top-level string field `name` of a JSON body (e.g. `model`), if any.
    pub fn field(&self, name: &str) -> Option<&str> {
        match self {
            CanonicalBody::Json(v) => v.get(name).and_then(Value::as_str),
            _ => None,
        }
    }

    /// A pretty, key-sorted rendering for diffs and recordings.
    pub fn to_pretty(&self) -> String {
        match self {
            CanonicalBody::Empty => "(no body)".into(),
            CanonicalBody::Text(s) => s.clone(),
            other => serde_json::to_string_pretty(&other.to_value()).unwrap_or_default(),
        }
    }

    /// [`CanonicalBody::to_value`] without copying.
    pub fn into_value(self) -> Value {
        match self {
            CanonicalBody::Json(mut v) => {
                jcs::canonicalize_in_place(&mut v);
                v
            }
            other => other.to_value(),
        }
    }

    /// The body as a JSON value (for storing in a recording and for diffs): a JSON body as JCS
    /// writes it (keys sorted, numbers in one form; `preserve_order` keeps JCS's order).
    pub fn to_value(&self) -> Value {
        match self {
            CanonicalBody::Empty => Value::Null,
            CanonicalBody::Json(v) => {
                let mut canonical = v.clone();
                jcs::canonicalize_in_place(&mut canonical);
                canonical
            }
            CanonicalBody::Text(s) => Value::String(s.clone()),
            CanonicalBody::Binary { sha256 } => serde_json::json!({ "binary_sha256": sha256 }),
        }
    }
}

/// The secret values found in a request body; never printed (`Debug` shows how many).
#[derive(Clone, Default, PartialEq)]
pub struct BodySecrets(pub Vec<String>);

impl std::fmt::Debug for BodySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodySecrets({} hidden)", self.0.len())
    }
}

/// Everything the key of a request depends on, except the occurrence index.
///
/// The key texts are computed from the fields when first asked for and the body's part is kept:
/// change no field after asking for a key.
#[derive(Clone, Debug)]
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
    /// The provider label the service attached, if any.
    pub provider: Option<String>,
    /// The secret values of the body as it was sent (see
    /// [`CanonicalBody::from_bytes_with_secrets`]); empty for a request rebuilt from a recording.
    pub body_secrets: BodySecrets,
    /// The RFC 8785 text of the tagged body, serialized once for both the key and the base key
    /// (it is most of the work of a key: bodies carry whole conversations).
    body_text: std::sync::OnceLock<String>,
    /// The SHA-256 state after the key text's head ([`CanonicalRequest::write_head`]), which the
    /// base key and every occurrence's key share: a large body is hashed once, not once a key.
    head_hash: std::sync::OnceLock<Sha256>,
}

impl PartialEq for CanonicalRequest {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method
            && self.path == other.path
            && self.query == other.query
            && self.body == other.body
            && self.test_id == other.test_id
            && self.provider == other.provider
    }
}

/// The body as it enters the key: tagged by kind, so a text body never hashes like a JSON string
/// with the same text, nor a binary body like a JSON object.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum KeyBody<'a> {
    Json(&'a Value),
    Text(&'a str),
    BinarySha256(&'a str),
}

impl<'a> KeyBody<'a> {
    fn of(body: &'a CanonicalBody) -> Option<Self> {
        match body {
            CanonicalBody::Empty => None,
            CanonicalBody::Json(v) => Some(KeyBody::Json(v)),
            CanonicalBody::Text(t) => Some(KeyBody::Text(t)),
            CanonicalBody::Binary { sha256 } => Some(KeyBody::BinarySha256(sha256)),
        }
    }
}

/// The RFC 8785 text of the body as it enters the key ([`KeyBody`]): `null`, `{"json": ...}`,
/// `{"text": ...}` or `{"binary_sha256": ...}`.
fn key_body_text(body: &CanonicalBody) -> String {
    let mut out = Vec::new();
    match KeyBody::of(body) {
        None => out.extend_from_slice(b"null"),
        Some(KeyBody::Json(v)) => {
            out.extend_from_slice(b"{\"json\":");
            jcs::write_value(&mut out, v);
            out.push(b'}');
        }
        Some(KeyBody::Text(t)) => {
            out.extend_from_slice(b"{\"text\":");
            jcs::write_str(&mut out, t);
            out.push(b'}');
        }
        Some(KeyBody::BinarySha256(h)) => {
            out.extend_from_slice(b"{\"binary_sha256\":");
            jcs::write_str(&mut out, h);
            out.push(b'}');
        }
    }
    jcs::into_string(out)
}

/// Appends a string or `null`.
fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => jcs::write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Lower-case hex of a digest, through `hex::encode_to_slice` (two digits a byte from a table):
/// `hex::encode` collects it a `char` at a time through an iterator, which was a tenth of the
/// recorder's own instructions on a replayed request.
fn hex_digest(digest: &[u8]) -> String {
    let mut text = vec![0; digest.len() * 2];
    match hex::encode_to_slice(digest, &mut text) {
        // Hex digits are ASCII.
        Ok(()) => String::from_utf8(text).unwrap_or_else(|_| hex::encode(digest)),
        // The buffer is twice the digest: not reached.
        Err(_) => hex::encode(digest),
    }
}

/// The key form as one serializable value: what [`CanonicalRequest::form_text`] assembles by
/// hand (a test checks that both give the same text).
#[cfg(test)]
#[derive(Serialize)]
struct KeyForm<'a> {
    body: Option<KeyBody<'a>>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    occurrence: Option<u32>,
    path: &'a str,
    provider: Option<&'a str>,
    query: &'a [(String, String)],
    test_id: Option<&'a str>,
}

impl CanonicalRequest {
    /// Builds the canonical form of a request, with its body's secret values
    /// ([`CanonicalRequest::body_secrets`]) for a recording.
    pub fn new(
        method: &str,
        url: &url::Url,
        body: Option<&[u8]>,
        test_id: Option<&str>,
        rules: &Rules,
    ) -> Self {
        Self::keyed(method, url, body, test_id, rules, true)
    }

    /// [`CanonicalRequest::new`], collecting the body's secret values only when `for_recording`:
    /// a request that is only looked up (replay) does not need them.
    pub fn keyed(
        method: &str,
        url: &url::Url,
        body: Option<&[u8]>,
        test_id: Option<&str>,
        rules: &Rules,
        for_recording: bool,
    ) -> Self {
        let host = url.host_str().unwrap_or("");
        let path = url.path().to_owned();
        let mut query: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !redact::is_secret_query_param(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // Sorted by name only (a stable sort): repeated parameters keep their order, which can
        // carry meaning.
        query.sort_by(|a, b| a.0.cmp(&b.0));
        let mut secrets = Vec::new();
        let body = CanonicalBody::from_bytes_with_secrets(
            body,
            rules,
            host,
            &path,
            for_recording.then_some(&mut secrets),
        );
        let body_secrets = BodySecrets(secrets);
        CanonicalRequest {
            method: method.to_ascii_uppercase(),
            body,
            path,
            query,
            test_id: test_id.map(str::to_owned),
            provider: None,
            body_secrets,
            body_text: std::sync::OnceLock::new(),
            head_hash: std::sync::OnceLock::new(),
        }
    }

    /// The canonical form of a recorded request under `rules`: its stored canonical body (already
    /// normalized under the rules it was recorded with) normalized again, with its method, path,
    /// query, provider and the given test id. `recordings rekey` compares its key with the
    /// blob's to move recordings to the keys of new rules; a body holding a scrubbed secret
    /// cannot reproduce its key, which the caller detects by checking the key under the old rules.
    pub fn from_recorded(
        request: &super::format::RecordedRequest,
        test_id: Option<&str>,
        rules: &Rules,
    ) -> Self {
        let body = match &request.canonical_body {
            Value::Null => CanonicalBody::Empty,
            Value::String(s) => CanonicalBody::Text(s.clone()),
            Value::Object(o)
                if o.len() == 1 && o.get("binary_sha256").is_some_and(Value::is_string) =>
            {
                CanonicalBody::Binary {
                    sha256: o["binary_sha256"].as_str().unwrap_or_default().to_owned(),
                }
            }
            other => {
                let mut v = other.clone();
                rules.apply("", &request.path, &mut v);
                CanonicalBody::Json(v)
            }
        };
        CanonicalRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            body,
            test_id: test_id.map(str::to_owned),
            provider: request.provider.clone(),
            body_secrets: BodySecrets::default(),
            body_text: std::sync::OnceLock::new(),
            head_hash: std::sync::OnceLock::new(),
        }
    }

    /// The same request, labelled with the provider it is for.
    pub fn with_provider(mut self, provider: Option<&str>) -> Self {
        self.provider = provider.map(str::to_owned);
        self
    }

    /// The exact text that is hashed for a given occurrence (RFC 8785 JSON).
    pub fn key_text(&self, occurrence: u32) -> String {
        self.form_text(Some(occurrence))
    }

    /// What identical requests share: the hash of the key text without the occurrence. The
    /// recorder counts occurrences per base key.
    pub fn base_key(&self) -> String {
        self.hash(None)
    }

    /// The RFC 8785 text of `{"body": ..., "method": ..., ["occurrence": ...,] "path": ...,
    /// "provider": ..., "query": ..., "test_id": ...}`: the members in JCS order (sorted names),
    /// each value in its JCS form. Assembled from parts so that the body is serialized once.
    fn form_text(&self, occurrence: Option<u32>) -> String {
        let mut text = Vec::with_capacity(self.body_text().len() + 160);
        self.write_head(&mut text);
        self.write_tail(occurrence, &mut text);
        jcs::into_string(text)
    }

    /// The RFC 8785 text of a JSON body (computed once, for the key).
    pub(crate) fn json_body_text(&self) -> Option<&str> {
        match self.body {
            CanonicalBody::Json(_) => self
                .body_text()
                .strip_prefix("{\"json\":")
                .and_then(|t| t.strip_suffix('}')),
            _ => None,
        }
    }

    /// The body's part of the key text, computed once.
    fn body_text(&self) -> &str {
        self.body_text.get_or_init(|| key_body_text(&self.body))
    }

    /// The key text's members before the occurrence: `{"body":...,"method":...`.
    fn write_head(&self, text: &mut Vec<u8>) {
        text.extend_from_slice(b"{\"body\":");
        text.extend_from_slice(self.body_text().as_bytes());
        text.extend_from_slice(b",\"method\":");
        jcs::write_str(text, &self.method);
    }

    /// The rest of the key text: the occurrence (when given) and the members after it.
    fn write_tail(&self, occurrence: Option<u32>, text: &mut Vec<u8>) {
        if let Some(n) = occurrence {
            text.extend_from_slice(b",\"occurrence\":");
            text.extend_from_slice(n.to_string().as_bytes());
        }
        text.extend_from_slice(b",\"path\":");
        jcs::write_str(text, &self.path);
        text.extend_from_slice(b",\"provider\":");
        write_opt_str(text, self.provider.as_deref());
        text.extend_from_slice(b",\"query\":[");
        for (i, (name, value)) in self.query.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            text.push(b'[');
            jcs::write_str(text, name);
            text.push(b',');
            jcs::write_str(text, value);
            text.push(b']');
        }
        text.extend_from_slice(b"],\"test_id\":");
        write_opt_str(text, self.test_id.as_deref());
        text.push(b'}');
    }

    /// The hex SHA-256 of [`CanonicalRequest::form_text`], from the head's hash state.
    fn hash(&self, occurrence: Option<u32>) -> String {
        let head = self.head_hash.get_or_init(|| {
            let mut text = Vec::with_capacity(self.body_text().len() + 32);
            self.write_head(&mut text);
            let mut hasher = Sha256::new();
            hasher.update(&text);
            hasher
        });
        let mut tail = Vec::with_capacity(160);
        self.write_tail(occurrence, &mut tail);
        let mut hasher = head.clone();
        hasher.update(&tail);
        hex_digest(&hasher.finalize())
    }

    /// The request key: hex SHA-256 of [`CanonicalRequest::key_text`].
    pub fn key(&self, occurrence: u32) -> String {
        self.hash(Some(occurrence))
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
    fn the_assembled_key_text_is_the_jcs_form() {
        let url = url::Url::parse("http://h/v1/x?b=2&a=\u{e9}&a=1").unwrap();
        let bodies: [Option<&[u8]>; 4] = [
            Some(br#"{"z":1,"a":[1.0,"\u00e9",{"y":null,"b":true}],"\ud83d\ude00":2}"#),
            Some(b"plain text"),
            Some(&[0xff, 0x00]),
            None,
        ];
        for body in bodies {
            for provider in [None, Some("mcp/github")] {
                for test_id in [None, Some("t \"quoted\"")] {
                    let r = CanonicalRequest::new("post", &url, body, test_id, &Rules::none())
                        .with_provider(provider);
                    for occurrence in [None, Some(0), Some(7)] {
                        let form = KeyForm {
                            body: KeyBody::of(&r.body),
                            method: &r.method,
                            occurrence,
                            path: &r.path,
                            provider: r.provider.as_deref(),
                            query: &r.query,
                            test_id: r.test_id.as_deref(),
                        };
                        let text = serde_jcs::to_string(&form).unwrap();
                        assert_eq!(r.form_text(occurrence), text);
                        // The hash continues from the head's cached state: the same digest.
                        let digest = hex::encode(Sha256::digest(text.as_bytes()));
                        match occurrence {
                            Some(n) => assert_eq!(r.key(n), digest),
                            None => assert_eq!(r.base_key(), digest),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn golden_hashes() {
        let r = req(
            r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Hi"}],"temperature":0}"#,
            Some("t"),
        );
        assert_eq!(
            r.key_text(0),
            r#"{"body":{"json":{"messages":[{"content":"Hi","role":"user"}],"model":"smollm2-135m","temperature":0}},"method":"POST","occurrence":0,"path":"/v1/chat/completions","provider":null,"query":[],"test_id":"t"}"#
        );
        assert_eq!(
            r.key(0),
            "fa8c03d436ad0d5d01bacfaa7fcff897125c0ad05847bee51881f7fa447f5a78"
        );
        assert_eq!(
            r.key(1),
            "efe2f086fe2c043b678b6082936084fe1663e9e49f2a6b3c4c820de4de01b0d4"
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
            r#"{"body":null,"method":"GET","occurrence":0,"path":"/v1/models","provider":null,"query":[],"test_id":null}"#
        );
        assert_eq!(
            none.key(0),
            "4ff8296ddbdf900da8a369ca9580d090a0e1321c16608ddc95d6613fa656440d"
        );
        let labelled = none.clone().with_provider(Some("llamacpp"));
        assert_eq!(
            labelled.key_text(0),
            r#"{"body":null,"method":"GET","occurrence":0,"path":"/v1/models","provider":"llamacpp","query":[],"test_id":null}"#
        );
        assert_eq!(
            labelled.key(0),
            "961785dfecc300923fe8b5af7a9e9e6f3b82844af93fb35b34c6dc95d6ec3fd0"
        );
        let text = CanonicalRequest::new(
            "POST",
            &url::Url::parse("http://h/x").unwrap(),
            Some(b"hi"),
            None,
            &Rules::none(),
        );
        assert_eq!(
            text.key_text(0),
            r#"{"body":{"text":"hi"},"method":"POST","occurrence":0,"path":"/x","provider":null,"query":[],"test_id":null}"#
        );
        let json_string = CanonicalRequest::new(
            "POST",
            &url::Url::parse("http://h/x").unwrap(),
            Some(br#""hi""#),
            None,
            &Rules::none(),
        );
        assert_ne!(
            text.key(0),
            json_string.key(0),
            "a text body and a JSON string differ"
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
    fn query_parameters_are_sorted_by_name_keeping_repeated_ones_in_order() {
        let url = |q: &str| url::Url::parse(&format!("http://h/x?{q}")).unwrap();
        let key =
            |q: &str| CanonicalRequest::new("GET", &url(q), None, None, &Rules::none()).key(0);
        assert_eq!(key("b=1&a=2"), key("a=2&b=1"));
        assert_ne!(key("t=1&t=2"), key("t=2&t=1"));
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
