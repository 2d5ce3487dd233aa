//! Secrets never reach disk: which headers, query parameters and JSON fields are secret, and how
//! they are masked in what the recorder writes.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Endings of normalized names (lowercase, without `-` and `_`) that mark a secret.
const SECRET_ENDINGS: &[&str] = &[
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

/// Headers that are secret whatever their name says.
const SECRET_HEADERS: &[&str] = &[
    "x-llamastack-provider-data",
    "proxy-authorization",
    "set-cookie",
];

fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a JSON field or query parameter with this name holds a secret
/// (`api_key`, `x-api-key`, `access_token`, `password`, `client_secret`, `authorization`,
/// `subscription-key`, `key`...). A field named just `token` is a secret only when its value
/// looks like a credential (see [`is_secret_field`]): LLM responses use `token` for text pieces.
pub fn is_secret_name(name: &str) -> bool {
    let n = normalized(name);
    n == "key"
        || n == "sig"
        || n.ends_with("subscriptionkey")
        || SECRET_ENDINGS.iter().any(|e| n.ends_with(e))
}

/// Whether a query parameter with this name holds a secret: the secret names, plus the ones only
/// query strings use (`code` of Azure Functions, `sig`/`signature` of SAS URLs).
pub fn is_secret_query_param(name: &str) -> bool {
    let n = normalized(name);
    is_secret_name(name) || matches!(n.as_str(), "code" | "signature")
}

/// Whether a JSON field holds a secret, given its name and its scalar value as text: a secret
/// name, except that a field named just `token` (logprobs, tokenizer output) counts only when its
/// value looks like a credential (16 or more characters, no white space).
pub fn is_secret_field(name: &str, value: &str) -> bool {
    if normalized(name) == "token" {
        return value.len() >= 16 && !value.chars().any(char::is_whitespace);
    }
    is_secret_name(name)
}

/// Whether a header with this name holds a secret.
pub fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&lower.as_str()) || is_secret_name(&lower)
}

/// Replaces, in place, every value whose key names a secret.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::Object(_) | Value::Array(_) => redact_value(child),
                    Value::Null => {}
                    Value::String(text) if is_secret_field(k, text) => {
                        *child = Value::String(REDACTED.into())
                    }
                    Value::Number(_) | Value::Bool(_) if is_secret_field(k, &child.to_string()) => {
                        *child = Value::String(REDACTED.into())
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
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
/// quote URLs.
pub fn secret_values(
    headers: &http::HeaderMap,
    kept: &[&str],
    url: &url::Url,
    body: Option<&Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let Ok(v) = value.to_str() else { continue };
        if is_secret_header(name.as_str()) {
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
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, c) in map {
                    match c {
                        Value::String(s) if is_secret_field(k, s) => out.push(s.clone()),
                        _ => walk(c, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    if let Some(b) = body {
        walk(b, &mut out);
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
    use serde_json::json;

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
        assert!(is_secret_header("Cookie") && is_secret_header("X-LlamaStack-Provider-Data"));
        assert!(!is_secret_header("content-type"));
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
        let v = secret_values(&h, &[], &u, Some(&json!({"a": {"api_key": "bk999"}})));
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
        let v = secret_values(&h, &["content-type"], &u, None);
        for s in ["azure-sub-key-123456", "func-code-9999", "sk2-88888"] {
            assert!(v.contains(&s.to_owned()), "{s} in {v:?}");
        }
        assert!(
            !v.iter().any(|s| s.contains("application/json")),
            "allow-listed headers are not secrets"
        );
        assert!(!v.contains(&"2024-10-21".to_owned()));
        let u = url::Url::parse("http://h/x?key=AbC%2Fsecret%2Bkey9999").unwrap();
        let v = secret_values(&http::HeaderMap::new(), &[], &u, None);
        let msg = "error sending request for url (http://h/x?key=AbC%2Fsecret%2Bkey9999)";
        assert!(!scrub_values(msg, &v).contains("secret"), "{v:?}");
        assert!(
            is_secret_query_param("code") && !is_secret_name("code"),
            "`code` is a secret only in a query"
        );
    }
}
