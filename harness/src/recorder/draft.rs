//! A recording in the making: the request side, sanitized, waiting for its response.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::canonical::{CanonicalBody, CanonicalRequest};
use super::format::{Body, FORMAT_VERSION, Metadata, RecordedRequest, RecordedResponse, Recording};
use super::redact;
use crate::profile::Profile;

/// The request half of a recording plus what is needed to keep secrets out of the response half.
#[derive(Debug)]
pub(crate) struct Draft {
    hash: String,
    test_id: Option<String>,
    occurrence: u32,
    request: RecordedRequest,
    provider_base_url: String,
    secrets: Vec<String>,
    /// `request` in the blob's layout, once [`Draft::lay_out_request`] ran.
    laid_out_request: Option<Vec<u8>>,
}

/// A JSON body's canonical value for its recording, moved out when nothing else holds the
/// request (a large body is not copied), else copied.
fn owned_value(canonical: Arc<CanonicalRequest>) -> Value {
    match Arc::try_unwrap(canonical) {
        Ok(owned) => owned.body.into_value(),
        Err(shared) => shared.body.to_value(),
    }
}

impl Draft {
    pub(crate) fn new(
        hash: String,
        occurrence: u32,
        canonical: Arc<CanonicalRequest>,
        url: &url::Url,
        headers: &http::HeaderMap,
        body: Option<&[u8]>,
        profile: &Profile,
    ) -> Draft {
        // The body was parsed once, for its key: its secret values were collected then.
        let body_is_json = matches!(canonical.body, CanonicalBody::Json(_));
        let mut secrets = redact::secret_values(
            headers,
            profile.request_headers,
            profile.secret_headers,
            url,
            canonical.body_secrets.0.clone(),
        );
        if !body_is_json && let Some(text) = body.and_then(|b| std::str::from_utf8(b).ok()) {
            secrets.extend(redact::form_secrets(text));
        }
        let mut kept = BTreeMap::new();
        for (name, value) in headers {
            let n = name.as_str();
            if profile.is_secret_header(n) {
                kept.insert(n.to_owned(), redact::REDACTED.to_owned());
            } else if profile.request_headers.contains(&n)
                && let Ok(v) = value.to_str()
            {
                kept.insert(n.to_owned(), v.to_owned());
            }
        }
        let mut draft = Draft {
            hash,
            test_id: canonical.test_id.clone(),
            occurrence,
            request: RecordedRequest {
                method: canonical.method.clone(),
                path: canonical.path.clone(),
                query: canonical.query.clone(),
                model: canonical.body.field(profile.index_field).map(str::to_owned),
                provider: canonical.provider.clone(),
                headers: kept,
                canonical_body: Value::Null,
                body: Body::Empty,
            },
            provider_base_url: base_url(url),
            secrets,
            laid_out_request: None,
        };
        // A JSON body is recorded once, as its canonical form; others as sent.
        draft.request.body = if body_is_json {
            Body::SameAsCanonical
        } else {
            Body::from_bytes(body.unwrap_or_default(), |t| draft.sanitize_text(t))
        };
        // The canonical body already has secret fields masked; secret values seen elsewhere in
        // the request (a bearer token pasted into a message) are scrubbed from it too. A text
        // body is scrubbed as text; a JSON one as its RFC 8785 text (already written for the
        // key), kept only if it still parses (else only the fact that it was redacted is kept:
        // it serves diagnostics only).
        let json_text = match &canonical.body {
            CanonicalBody::Json(Value::String(_)) => None,
            _ => canonical.json_body_text(),
        };
        let cleaned = json_text.map(|text| {
            let clean = redact::sanitize_masked(text, &draft.secrets);
            (clean != text).then_some(clean)
        });
        let scrubbed = match cleaned {
            Some(None) => owned_value(canonical),
            Some(Some(clean)) => serde_json::from_str(&clean)
                .unwrap_or_else(|_| Value::String(redact::REDACTED.into())),
            None => match canonical.body.to_value() {
                Value::String(text) => Value::String(draft.sanitize_text(&text)),
                other => other,
            },
        };
        draft.request.canonical_body = scrubbed;
        draft
    }

    /// The request in a log line: method, path, key prefix and test.
    pub(crate) fn describe(&self) -> String {
        super::format::describe_request(
            &self.request.method,
            &self.request.path,
            &self.hash,
            self.test_id.as_deref(),
        )
    }

    /// Masks secret fields and scrubs secret values seen in the request.
    pub(crate) fn sanitize_text(&self, text: &str) -> String {
        redact::sanitize(text, &self.secrets)
    }

    /// Keeps the response headers `allowed` lists.
    pub(crate) fn response_headers(
        &self,
        headers: &http::HeaderMap,
        allowed: &[&str],
    ) -> BTreeMap<String, String> {
        headers
            .iter()
            .filter(|(n, _)| allowed.contains(&n.as_str()))
            .filter_map(|(n, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (n.as_str().to_owned(), self.sanitize_text(v)))
            })
            .collect()
    }

    /// Lays the request half out as the blob will hold it, ahead of the response: a large
    /// request's text then takes no time once the provider has answered. Left undone if it
    /// fails (the whole recording is laid out when it is stored, and its error reported then).
    pub(crate) fn lay_out_request(&mut self) {
        self.laid_out_request = super::layout::to_vec_at(&self.request, 1).ok();
    }

    pub(crate) fn into_recording(self, response: RecordedResponse) -> Recording {
        Recording {
            format_version: FORMAT_VERSION,
            request_hash: self.hash,
            test_id: self.test_id,
            occurrence: self.occurrence,
            request: self.request,
            response,
            metadata: Metadata {
                recorded_at: now_rfc3339(),
                provider_base_url: self.provider_base_url,
                harness_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            laid_out_request: self.laid_out_request,
        }
    }
}

fn base_url(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        (Some(h), None) => format!("{}://{h}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
