//! Secrets never reach disk: which headers, query parameters and JSON fields are secret, and how
//! they are masked in what the recorder writes.
//!
//! Three nets, applied to every text the recorder writes ([`sanitize`]):
//! - **by name**: the value of a secret-named field (string, number or boolean) is masked in
//!   place ([`redact_json_text`]), keeping every other byte;
//! - **by structure**: every JSON document in the text (a body, an SSE event's `data:`) is parsed
//!   and every leaf under a secret-named key, at any depth and of any type (`"api_keys": [...]`,
//!   `"credentials": {...}`), with key names compared after unescaping (`"secr\u0065t"`), is
//!   scrubbed wherever it appears ([`secret_leaves`]); so are the secret fields of a form-encoded
//!   body;
//! - **by shape**: values that look like credentials wherever they are (JWTs, `sk-...` and
//!   `gh*_...` keys, AWS and Google keys, bearer tokens; [`scrub_patterns`]), and URLs inside
//!   any text (an error message quoting the request URL) lose their secret query values and user
//!   info ([`redact_urls_in`]).
//!
//! Property names of a JSON Schema (keys directly under `properties`) are never secret names: a
//! tool's `{"password": {"type": "string"}}` describes a field, it holds no password.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Endings of normalized names (lowercase, without `-` and `_`) that mark a secret.
const SECRET_ENDINGS: &[&str] = &[
    "auth",
    "pwd",
    "passphrase",
    "apikey",
    "token",
    "password",
    "passwd",
    "secret",
    "secretkey",
    "authorization",
    "accesskey",
    "privatekey",
    "cookie",
    "credential",
    "credentials",
    "signature",
];

/// Headers that are secret whatever their name says (a profile adds its own:
/// [`Profile::secret_headers`](crate::profile::Profile::secret_headers)).
const SECRET_HEADERS: &[&str] = &["proxy-authorization", "set-cookie"];

fn normalized(name: &str) -> std::borrow::Cow<'_, str> {
    // Most names (`model`, `messages`, `role`) are already in this form: no copy for them (the
    // byte test first: it runs for every member of every request body).
    if name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        || !name
            .chars()
            .any(|c| c == '-' || c == '_' || c.is_uppercase() || !c.is_ascii())
    {
        return std::borrow::Cow::Borrowed(name);
    }
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .into()
}

/// Whether a JSON field or query parameter with this name holds a secret
/// (`api_key`, `x-api-key`, `access_token`, `password`, `client_secret`, `authorization`,
/// `subscription-key`, `key`...). A field named just `token` is a secret only when its value
/// looks like a credential (see [`is_secret_field`]): LLM responses use `token` for text pieces.
pub fn is_secret_name(name: &str) -> bool {
    names_a_secret(&normalized(name))
}

/// [`is_secret_name`] of a name already [`normalized`].
fn names_a_secret(n: &str) -> bool {
    // An ending's last byte is compared before the ending: this runs for every member of every
    // request body, twice, and most names end unlike most endings.
    let ends_with_one = |m: &str, plural: bool| {
        SECRET_ENDINGS.iter().any(|e| {
            e.as_bytes().last() == m.as_bytes().last()
                && m.ends_with(e)
                && !(plural && *e == "token")
        })
    };
    n == "key"
        || n == "sig"
        || n == "session"
        || n.ends_with("subscriptionkey")
        || ends_with_one(n, false)
        // Plurals too (`api_keys`, `passwords`), but not of `token` (`max_tokens`).
        || n.strip_suffix('s').is_some_and(|m| ends_with_one(m, true))
}

/// Whether a query parameter with this name holds a secret: the secret names, plus the ones only
/// query strings use (`code` of Azure Functions, `sig`/`signature` of SAS URLs).
pub fn is_secret_query_param(name: &str) -> bool {
    let n = normalized(name);
    is_secret_name(name) || matches!(&*n, "code" | "signature")
}

/// Whether a JSON field holds a secret, given its name and its scalar value as text: a secret
/// name, except that a field named just `token` (logprobs, tokenizer output) counts only when its
/// value looks like a credential (16 or more characters, no white space).
pub fn is_secret_field(name: &str, value: &str) -> bool {
    let n = normalized(name);
    if n == "token" {
        return looks_like_a_credential(value);
    }
    names_a_secret(&n)
}

/// A `token` value that is a credential rather than a piece of text.
fn looks_like_a_credential(value: &str) -> bool {
    value.len() >= 16 && !value.chars().any(char::is_whitespace)
}

/// Whether a header with this name holds a secret.
pub fn is_secret_header(name: &str) -> bool {
    is_secret_header_among(name, &[])
}

/// Whether a header with this name holds a secret, `extra` (lower case) naming more secret
/// headers.
pub fn is_secret_header_among(name: &str, extra: &[&str]) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&lower.as_str())
        || extra.contains(&lower.as_str())
        || is_secret_name(&lower)
}

/// Replaces, in place, every value whose key names a secret: a scalar by [`REDACTED`]; an array
/// or object (`"api_keys": [...]`, `"credentials": {...}`) by [`REDACTED`] whole, except under a
/// JSON Schema's `properties` (property names are not secrets).
pub fn redact_value(v: &mut Value) {
    redact_value_in(v, false);
}

fn redact_value_in(v: &mut Value, schema_properties: bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let in_properties = k == "properties";
                // Normalized once a member (this runs on every request body).
                let n = normalized(k);
                let is_token = n == "token";
                match child {
                    Value::Object(_) | Value::Array(_)
                        if !schema_properties && !is_token && names_a_secret(&n) =>
                    {
                        *child = Value::String(REDACTED.into())
                    }
                    Value::Object(_) | Value::Array(_) => redact_value_in(child, in_properties),
                    _ if schema_properties => {}
                    Value::Null => {}
                    Value::String(text)
                        if (is_token && looks_like_a_credential(text))
                            || (!is_token && names_a_secret(&n)) =>
                    {
                        *child = Value::String(REDACTED.into())
                    }
                    Value::Number(_) | Value::Bool(_)
                        if (is_token && looks_like_a_credential(&child.to_string()))
                            || (!is_token && names_a_secret(&n)) =>
                    {
                        *child = Value::String(REDACTED.into())
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_value_in(i, false)),
        _ => {}
    }
}

/// Collects every scalar leaf (strings, and numbers of 6 or more digits) found under a
/// secret-named key of `v`, at any depth; keys are compared as JSON decoding gave them (escapes
/// resolved). A secret-named key with a scalar value counts as in [`is_secret_field`].
pub fn secret_leaves(v: &Value, out: &mut Vec<String>) {
    fn all_leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) if n.to_string().len() >= 6 => out.push(n.to_string()),
            Value::Array(items) => items.iter().for_each(|i| all_leaves(i, out)),
            Value::Object(map) => map.values().for_each(|c| all_leaves(c, out)),
            _ => {}
        }
    }
    fn walk(v: &Value, schema_properties: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, c) in map {
                    let secret = !schema_properties
                        && match c {
                            Value::String(s) => is_secret_field(k, s),
                            Value::Array(_) | Value::Object(_) => {
                                is_secret_name(k) && normalized(k) != "token"
                            }
                            other => is_secret_field(k, &other.to_string()),
                        };
                    if secret {
                        all_leaves(c, out);
                    } else {
                        walk(c, k == "properties", out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, false, out)),
            _ => {}
        }
    }
    walk(v, false, out);
    out.retain(|s| s.len() >= 4 && s != REDACTED);
}

/// The JSON documents of a text: the whole text, or each SSE `data:` payload.
fn json_documents(text: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
        return vec![v];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .collect()
}

/// The secret values of a form-encoded text (`client_secret=...&grant_type=...`).
pub fn form_secrets(text: &str) -> Vec<String> {
    let t = text.trim();
    if t.is_empty()
        || !t.contains('=')
        || t.contains(char::is_whitespace)
        || t.starts_with(['{', '[', '"'])
    {
        return Vec::new();
    }
    url::form_urlencoded::parse(t.as_bytes())
        .filter(|(k, v)| is_secret_field(k, v) && v.len() >= 4)
        .flat_map(|(_, v)| {
            let raw = v.into_owned();
            let encoded: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
            [raw, encoded]
        })
        .collect()
}

/// Credentials recognisable by their shape, wherever they appear.
static CREDENTIAL_SHAPES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // JSON Web Tokens.
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        // OpenAI, Anthropic and similar `sk-` keys.
        r"(?-u:\b)sk-[A-Za-z0-9_-]{16,}",
        // GitHub tokens.
        r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{20,}",
        r"(?-u:\b)github_pat_[A-Za-z0-9_]{20,}",
        // AWS access key ids, Google API keys, Slack tokens.
        r"(?-u:\b)AKIA[0-9A-Z]{16}(?-u:\b)",
        r"(?-u:\b)AIza[0-9A-Za-z_-]{30,}",
        r"(?-u:\b)xox[abpr]-[A-Za-z0-9-]{10,}",
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap_or_else(|e| panic!("static regex {p}: {e}")))
    .collect()
});

/// `Bearer <token>` anywhere (an error echoing the header): the token part, when it looks like
/// one (20 or more token characters with a digit; "bearer of bad news" is prose).
static AUTH_SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)([Bb]earer)(\s+)([A-Za-z0-9._~+/-]{20,}=*)")
        .unwrap_or_else(|e| panic!("static regex: {e}"))
});

/// Masks values shaped like credentials (JWTs, `sk-`, `ghp_`, `AKIA`, `AIza`, `xox?-` keys, the
/// token of `Bearer ...`) wherever they are.
pub fn scrub_patterns(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for re in CREDENTIAL_SHAPES.iter() {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, REDACTED).into_owned());
        }
    }
    if AUTH_SCHEME.is_match(&out) {
        out = Cow::Owned(
            AUTH_SCHEME
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    if !c[3].chars().any(|ch| ch.is_ascii_digit()) {
                        c[0].to_owned()
                    } else {
                        format!("{}{}{REDACTED}", &c[1], &c[2])
                    }
                })
                .into_owned(),
        );
    }
    out
}

static URL_IN_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"https?://[^\s"'<>)\]]+"#).unwrap_or_else(|e| panic!("static regex: {e}"))
});

/// URLs inside a text (an error message quoting the request URL) without user info and with
/// their secret query values masked ([`redact_url`]).
pub fn redact_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    URL_IN_TEXT.replace_all(text, |c: &regex::Captures<'_>| {
        match url::Url::parse(&c[0]) {
            Ok(u) if u.query().is_some() || !u.username().is_empty() || u.password().is_some() => {
                redact_url(&u)
            }
            _ => c[0].to_owned(),
        }
    })
}

/// Everything the recorder writes goes through this: secret fields masked by name
/// ([`redact_json_text`]), secret leaves found by structure and the `known` secret values of the
/// request scrubbed ([`scrub_values`]), credential shapes and URLs masked.
pub fn sanitize(text: &str, known: &[String]) -> String {
    let masked = redact_json_text(text);
    let mut secrets: Vec<String> = Vec::new();
    for doc in json_documents(&masked) {
        secret_leaves(&doc, &mut secrets);
    }
    secrets.extend(form_secrets(&masked));
    for s in secrets.clone() {
        // As written inside a JSON string.
        if let Ok(quoted) = serde_json::to_string(&s) {
            let inner = quoted.trim_matches('"').to_owned();
            if inner != s {
                secrets.push(inner);
            }
        }
    }
    secrets.extend(known.iter().cloned());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let scrubbed = scrub_values(&masked, &secrets);
    let shaped = scrub_patterns(&scrubbed);
    redact_urls_in(&shaped).into_owned()
}

/// For a text whose secret-named fields are already masked (a canonical body, after
/// [`redact_value`]): scrubs the `known` secret values, credential shapes and URLs only, the
/// by-name and by-structure passes of [`sanitize`] having nothing left to find. Linear scans.
pub fn sanitize_masked(text: &str, known: &[String]) -> String {
    let scrubbed = scrub_values(text, known);
    let shaped = scrub_patterns(&scrubbed);
    redact_urls_in(&shaped).into_owned()
}

static FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false)"#)
        .unwrap_or_else(|e| panic!("static regex: {e}"))
});

/// A secret-named field whose string value is cut off by the end of the text (a stream that broke
/// in the middle of an event).
static UNTERMINATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""((?:[^"\\]|\\.)*)"(\s*:\s*)"((?:[^"\\]|\\.)*)\\?$"#)
        .unwrap_or_else(|e| panic!("static regex: {e}"))
});

/// Masks secret fields (string, number or boolean values) in JSON text without re-serializing it,
/// so everything else stays byte for byte as the peer sent it. Works on whole documents, on SSE
/// event text (`data: {...}`) and on text cut off in the middle of a secret value.
pub fn redact_json_text(text: &str) -> Cow<'_, str> {
    let replaced = FIELD.replace_all(text, |caps: &regex::Captures<'_>| {
        let value = caps[3].trim_matches('"');
        if is_secret_field(&caps[1], value) && value != REDACTED {
            format!("\"{}\"{}\"{REDACTED}\"", &caps[1], &caps[2])
        } else {
            caps[0].to_owned()
        }
    });
    if let Some(caps) = UNTERMINATED.captures(&replaced)
        && is_secret_name(&caps[1])
        && let Some(m) = caps.get(3)
    {
        let mut out = replaced[..m.start()].to_owned();
        out.push_str(REDACTED);
        return Cow::Owned(out);
    }
    replaced
}

/// Scrubs known secret values (tokens seen in the request's headers, query or body) from any
/// text, e.g. a provider error that echoes the API key back.
pub fn scrub_values<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), REDACTED));
        }
    }
    out
}

/// Collects the secret values a request carries, to scrub them from everything written.
/// `headers` not in `kept` count as secret values too (at 8 characters or more): a header the
/// recorder does not know, such as `Ocp-Apim-Subscription-Key`, may carry a credential that a
/// provider echoes back. Each value is also scrubbed in its URL-encoded form, as error messages
/// quote URLs. `secret_headers` (lower case) names more secret headers
/// ([`is_secret_header_among`]). `body_leaves` are the body's secret values ([`secret_leaves`]
/// of the body as sent, collected when it was parsed for its key).
pub fn secret_values(
    headers: &http::HeaderMap,
    kept: &[&str],
    secret_headers: &[&str],
    url: &url::Url,
    body_leaves: Vec<String>,
) -> Vec<String> {
    let mut out = body_leaves;
    for (name, value) in headers {
        let Ok(v) = value.to_str() else { continue };
        if is_secret_header_among(name.as_str(), secret_headers) {
            out.push(v.to_owned());
            for prefix in ["Bearer ", "bearer ", "Basic ", "Token "] {
                if let Some(rest) = v.strip_prefix(prefix) {
                    out.push(rest.to_owned());
                }
            }
        } else if !kept.contains(&name.as_str()) && v.len() >= 8 {
            out.push(v.to_owned());
        }
    }
    for (k, v) in url.query_pairs() {
        if is_secret_query_param(&k) {
            out.push(v.into_owned());
        }
    }
    if !url.password().unwrap_or("").is_empty() {
        out.push(url.password().unwrap_or("").to_owned());
    }
    out.retain(|s| s != REDACTED);
    let encoded: Vec<String> = out
        .iter()
        .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>())
        .chain(out.iter().map(|s| s.replace(' ', "%20")))
        .filter(|e| !out.contains(e))
        .collect();
    out.extend(encoded);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// The URL without credentials: user info removed, secret query parameters masked.
pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_query_param(&k) {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// `names_a_secret` as first written: each ending, and its plural, in turn.
    fn names_a_secret_plainly(n: &str) -> bool {
        n == "key"
            || n == "sig"
            || n == "session"
            || n.ends_with("subscriptionkey")
            || SECRET_ENDINGS.iter().any(|e| {
                n.ends_with(e)
                    || (*e != "token" && n.strip_suffix('s').is_some_and(|m| m.ends_with(e)))
            })
    }

    proptest! {
        #[test]
        fn the_secret_name_test_is_the_plain_one(
            prefix in "[a-z_-]{0,4}",
            ending in proptest::sample::select(SECRET_ENDINGS),
            tail in "(s|ss|x|)",
            other in "[a-zA-Z_-]{0,12}",
        ) {
            let name = format!("{prefix}{ending}{tail}");
            let n = normalized(&name);
            prop_assert_eq!(names_a_secret(&n), names_a_secret_plainly(&n));
            let n = normalized(&other);
            prop_assert_eq!(names_a_secret(&n), names_a_secret_plainly(&n));
        }
    }

    #[test]
    fn secret_names_are_recognized_without_catching_token_counts() {
        for n in [
            "api_key",
            "x-api-key",
            "API-KEY",
            "access_token",
            "token",
            "password",
            "client_secret",
            "Authorization",
            "key",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "max_tokens",
            "prompt_tokens",
            "total_tokens",
            "model",
            "keywords",
            "token_type",
            "tokenizer",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
        let llama_stack = crate::profile::Profile::llama_stack();
        assert!(
            is_secret_header("Cookie")
                && llama_stack.is_secret_header("X-LlamaStack-Provider-Data")
        );
        assert!(!is_secret_header("content-type"));
    }

    #[test]
    fn wider_names_plurals_and_structure() {
        for n in [
            "auth",
            "pwd",
            "db_pwd",
            "passphrase",
            "session",
            "api_keys",
            "passwords",
            "credential",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "max_tokens",
            "completion_tokens",
            "tokens",
            "author",
            "session_id",
            "keys",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
        let mut body = json!({"api_keys": ["sk-1", "sk-2"], "credentials": {"value": "v"},
                              "tools": [{"parameters": {"properties": {"password": {"type": "string"}}}}]});
        redact_value(&mut body);
        assert_eq!(body["api_keys"], REDACTED);
        assert_eq!(body["credentials"], REDACTED);
        assert_eq!(
            body["tools"][0]["parameters"]["properties"]["password"],
            json!({"type": "string"}),
            "a schema's property names are not secrets"
        );
        let mut leaves = Vec::new();
        secret_leaves(
            &serde_json::from_str(r#"{"secr\u0065t": "escaped-key-value", "x": {"api_keys": [{"v": "deep-secret"}]}}"#).unwrap(),
            &mut leaves,
        );
        assert!(
            leaves.contains(&"escaped-key-value".to_owned())
                && leaves.contains(&"deep-secret".to_owned()),
            "{leaves:?}"
        );
    }

    #[test]
    fn shapes_urls_and_forms_are_scrubbed_and_prose_is_not() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop";
        let text = format!(
            "use {jwt} or sk-proj-abcdefghijklmnopqrstuv or Bearer abcdefghij0123456789xyz"
        );
        let out = scrub_patterns(&text);
        assert!(
            !out.contains("eyJzdWIi") && !out.contains("sk-proj") && !out.contains("0123456789xyz"),
            "{out}"
        );
        let prose = "the bearer of these tokens was basic: token generation and a sk-learn model";
        assert_eq!(scrub_patterns(prose), prose);
        let msg = "error sending request for url (http://h:9/v1/models?api_key=abc%2Fdef&limit=2)";
        let out = redact_urls_in(msg);
        assert!(!out.contains("abc") && out.contains("limit=2"), "{out}");
        assert_eq!(
            form_secrets("grant_type=x&client_secret=s3cr3t-v"),
            ["s3cr3t-v", "s3cr3t-v"]
        );
        assert!(form_secrets(r#"{"a": "b=c"}"#).is_empty());
    }

    #[test]
    fn text_redaction_keeps_other_bytes_exactly() {
        let raw = r#"{"b": 1.50,  "api_key":"sk-live-123", "nested":{"password": "p\"w"}, "max_tokens": 5}"#;
        let out = redact_json_text(raw);
        assert_eq!(
            out,
            r#"{"b": 1.50,  "api_key":"<redacted>", "nested":{"password": "<redacted>"}, "max_tokens": 5}"#
        );
        let sse = "data: {\"access_token\":\"abc\",\"x\":1}\n\n";
        assert_eq!(
            redact_json_text(sse),
            "data: {\"access_token\":\"<redacted>\",\"x\":1}\n\n"
        );
        // Secrets are scalars: an object under a secret-looking name is walked into, not replaced.
        let obj = r#"{"secret":{"password":"v1","type":"x"},"a":2}"#;
        assert_eq!(
            redact_json_text(obj),
            r#"{"secret":{"password":"<redacted>","type":"x"},"a":2}"#
        );
    }

    #[test]
    fn urls_lose_credentials_and_secret_query_values() {
        let u =
            url::Url::parse("https://user:pw@h.example/v1/x?key=AIza1&api-version=2024&token=t0")
                .unwrap();
        let r = redact_url(&u);
        assert!(
            !r.contains("pw") && !r.contains("AIza1") && !r.contains("t0"),
            "{r}"
        );
        assert!(r.contains("api-version=2024"), "{r}");
    }

    #[test]
    fn secret_values_come_from_headers_query_and_body() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer sk-abc".parse().unwrap());
        let u = url::Url::parse("http://h/x?key=qk123").unwrap();
        let mut leaves = Vec::new();
        secret_leaves(&json!({"a": {"api_key": "bk999"}}), &mut leaves);
        let v = secret_values(&h, &[], &[], &u, leaves);
        for s in ["sk-abc", "Bearer sk-abc", "qk123", "bk999"] {
            assert!(v.contains(&s.to_owned()), "{v:?}");
        }
        assert_eq!(
            scrub_values("Incorrect API key provided: sk-abc.", &v),
            "Incorrect API key provided: <redacted>."
        );
    }

    #[test]
    fn token_fields_are_secrets_only_when_they_look_like_credentials() {
        let logprobs = r#"{"logprobs":{"content":[{"token":"Hello","logprob":-0.1}]}}"#;
        assert_eq!(
            redact_json_text(logprobs),
            logprobs,
            "logprob tokens are text, not secrets"
        );
        let cred = r#"{"token":"ghp_abcdefghijklmnop1234"}"#;
        assert_eq!(redact_json_text(cred), r#"{"token":"<redacted>"}"#);
        let mut schema =
            json!({"properties": {"password": {"type": "string"}, "token": {"type": "string"}}});
        let before = schema.clone();
        redact_value(&mut schema);
        assert_eq!(schema, before, "a JSON schema's properties are not secrets");
    }

    #[test]
    fn a_secret_cut_off_by_the_end_of_the_text_is_masked() {
        let cut = r#"data: {"session_token":"resp-secret-7777"#;
        let out = redact_json_text(cut);
        assert!(!out.contains("resp-secret"), "{out}");
        assert!(out.ends_with(REDACTED), "{out}");
        let fine = r#"data: {"content":"partial te"#;
        assert_eq!(redact_json_text(fine), fine);
    }

    #[test]
    fn unknown_headers_query_only_secrets_and_encoded_forms_are_scrubbed() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "ocp-apim-subscription-key",
            "azure-sub-key-123456".parse().unwrap(),
        );
        h.insert(
            "content-type",
            "application/json-long-enough".parse().unwrap(),
        );
        let u = url::Url::parse(
            "http://h/api/x?code=func-code-9999&subscription-key=sk2-88888&api-version=2024-10-21",
        )
        .unwrap();
        let v = secret_values(&h, &["content-type"], &[], &u, Vec::new());
        for s in ["azure-sub-key-123456", "func-code-9999", "sk2-88888"] {
            assert!(v.contains(&s.to_owned()), "{s} in {v:?}");
        }
        assert!(
            !v.iter().any(|s| s.contains("application/json")),
            "allow-listed headers are not secrets"
        );
        assert!(!v.contains(&"2024-10-21".to_owned()));
        let u = url::Url::parse("http://h/x?key=AbC%2Fsecret%2Bkey9999").unwrap();
        let v = secret_values(&http::HeaderMap::new(), &[], &[], &u, Vec::new());
        let msg = "error sending request for url (http://h/x?key=AbC%2Fsecret%2Bkey9999)";
        assert!(!scrub_values(msg, &v).contains("secret"), "{v:?}");
        assert!(
            is_secret_query_param("code") && !is_secret_name("code"),
            "`code` is a secret only in a query"
        );
    }
}
