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
/// (`api_key`, `x-api-key`, `access_token`, `password`, `client_secret`, `authorization`, `key`...).
pub fn is_secret_name(name: &str) -> bool {
    let n = normalized(name);
    n == "key" || n == "sig" || SECRET_ENDINGS.iter().any(|e| n.ends_with(e))
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
                if is_secret_name(k) {
                    if !child.is_null() {
                        *child = Value::String(REDACTED.into());
                    }
                } else {
                    redact_value(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

fn contains_secret_field(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, c)| {
            (is_secret_name(k) && !c.is_null() && c.as_str() != Some(REDACTED))
                || contains_secret_field(c)
        }),
        Value::Array(items) => items.iter().any(contains_secret_field),
        _ => false,
    }
}

static FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false)"#)
        .unwrap_or_else(|e| panic!("static regex: {e}"))
});

/// Masks secret fields in JSON text without re-serializing it, so everything else stays byte for
/// byte as the provider sent it. Works on whole documents and on SSE event text (`data: {...}`).
/// A secret whose value is an object or array makes the document fall back to a re-serialized,
/// order-preserving copy with that value masked.
pub fn redact_json_text(text: &str) -> Cow<'_, str> {
    let replaced = FIELD.replace_all(text, |caps: &regex::Captures<'_>| {
        if is_secret_name(&caps[1]) {
            format!("\"{}\"{}\"{REDACTED}\"", &caps[1], &caps[2])
        } else {
            caps[0].to_owned()
        }
    });
    if let Ok(mut v) = serde_json::from_str::<Value>(&replaced)
        && contains_secret_field(&v)
    {
        redact_value(&mut v);
        return Cow::Owned(v.to_string());
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
pub fn secret_values(
    headers: &http::HeaderMap,
    url: &url::Url,
    body: Option<&Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if is_secret_header(name.as_str())
            && let Ok(v) = value.to_str()
        {
            out.push(v.to_owned());
            for prefix in ["Bearer ", "bearer ", "Basic ", "Token "] {
                if let Some(rest) = v.strip_prefix(prefix) {
                    out.push(rest.to_owned());
                }
            }
        }
    }
    for (k, v) in url.query_pairs() {
        if is_secret_name(&k) {
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
                        Value::String(s) if is_secret_name(k) => out.push(s.clone()),
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
                let v = if is_secret_name(&k) {
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
        let sse = "data: {\"token\":\"abc\",\"x\":1}\n\n";
        assert_eq!(
            redact_json_text(sse),
            "data: {\"token\":\"<redacted>\",\"x\":1}\n\n"
        );
        let obj = r#"{"secret":{"inner":"v"},"a":2}"#;
        let out = redact_json_text(obj);
        assert!(!out.contains("\"v\"") && out.contains(REDACTED), "{out}");
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
        let v = secret_values(&h, &u, Some(&json!({"a": {"api_key": "bk999"}})));
        for s in ["sk-abc", "Bearer sk-abc", "qk123", "bk999"] {
            assert!(v.contains(&s.to_owned()), "{v:?}");
        }
        assert_eq!(
            scrub_values("Incorrect API key provided: sk-abc.", &v),
            "Incorrect API key provided: <redacted>."
        );
    }
}
