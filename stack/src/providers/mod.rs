//! Remote inference providers. All four provider types speak the OpenAI HTTP API, so one adapter
//! serves them all; they differ only in base URL and auth (see [`crate::config::ProviderType`]).

pub mod error;
pub mod http;
pub mod raw_object;
pub mod sse;
pub mod tls;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};
use serde_json::Value;
use url::Url;

use crate::config::{ProviderConfig, ProviderType};
pub use error::ProviderError;
pub use http::{
    ClientSetupError, INFERENCE_MODE_VAR, http_client, http_client_with_ca, provider_client_with,
};
pub use raw_object::{NotAnObject, RawObject};
pub use sse::DataStream;

/// One enabled provider: where it is and the client to reach it with. Its `Debug` output hides
/// the API key.
#[derive(Clone)]
pub struct Provider {
    id: String,
    provider_type: ProviderType,
    base_url: Url,
    api_key: Option<String>,
    client: ClientWithMiddleware,
    /// The parsed URL of each API path asked for so far (a handful: the paths come from the
    /// code), so that a request clones a URL instead of parsing one.
    urls: std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, Url>>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("provider_type", &self.provider_type)
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The provider of an enabled config entry; `None` when the entry is disabled.
    pub fn new(config: &ProviderConfig, client: ClientWithMiddleware) -> Option<Self> {
        if !config.is_enabled() {
            return None;
        }
        Some(Self {
            id: config.provider_id.clone(),
            provider_type: config.provider_type,
            base_url: config.base_url.clone()?,
            api_key: config.api_key.clone(),
            client,
            urls: std::sync::Arc::default(),
        })
    }

    /// The provider id (prefix of its model ids).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The kind of provider.
    pub fn provider_type(&self) -> ProviderType {
        self.provider_type
    }

    /// Base URL of its OpenAI API.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The full URL of an API path such as `chat/completions`.
    pub fn endpoint(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.base_url.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// [`Provider::endpoint`] parsed, from the URLs parsed before when it is one of them.
    fn endpoint_url(&self, path: &str) -> Option<Url> {
        if let Some(url) = support::sync::read(&self.urls).get(path) {
            return Some(url.clone());
        }
        let url = Url::parse(&self.endpoint(path)).ok()?;
        let mut urls = support::sync::write(&self.urls);
        if urls.len() < 64 {
            urls.insert(path.to_owned(), url.clone());
        }
        Some(url)
    }

    /// A request to the API path `path` of this provider: every provider call is built here.
    /// It carries the API key, and (feature `replay`) the provider id as a
    /// `harness::recorder::ProviderLabel`, which the recorder puts into the request key: two
    /// providers asked the same thing (`GET /v1/models` at start-up) get separate recordings.
    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let request = match self.endpoint_url(path) {
            Some(url) => self.client.request(method, url),
            // Not a URL: reqwest reports why when the request is sent.
            None => self.client.request(method, self.endpoint(path)),
        };
        #[cfg(feature = "replay")]
        let request = request.with_extension(harness::recorder::ProviderLabel(self.id.clone()));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// `GET {base}/models`: the `data` entries the provider lists.
    pub async fn list_models(&self) -> Result<Vec<Value>, ProviderError> {
        let request = self.request(reqwest::Method::GET, "models");
        let response = self.send(request).await?;
        let body = self.read_body(response).await?;
        let value: Value = self.parse_json(&body)?;
        match value.get("data") {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(ProviderError::InvalidResponse {
                provider: self.id.clone(),
                message: "GET /models did not return a list with a `data` array".into(),
            }),
        }
    }

    /// POSTs a JSON body and returns the JSON answer (non-streaming requests).
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ProviderError> {
        let response = self.send(self.post(path, body)).await?;
        let bytes = self.read_body(response).await?;
        self.parse_json(&bytes)
    }

    /// POSTs a JSON body and returns the answer, which must be a JSON object, as its text split
    /// into members ([`RawObject`]: not parsed further).
    pub async fn post_json_object(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<RawObject, ProviderError> {
        let response = self.send(self.post(path, body)).await?;
        let bytes = self.read_body(response).await?;
        RawObject::parse(&bytes).map_err(|e| match e {
            NotAnObject::NotJson(e) => self.not_json(e, &bytes),
            NotAnObject::NotObject => ProviderError::InvalidResponse {
                provider: self.id.clone(),
                message: "expected a JSON object".into(),
            },
        })
    }

    /// POSTs a JSON body asking for a stream. The request is sent (and its status checked) before
    /// this returns; the events are read as the returned stream is polled.
    pub async fn post_stream(&self, path: &str, body: &Value) -> Result<DataStream, ProviderError> {
        let response = self.send(self.post(path, body)).await?;
        Ok(sse::data_events(self.id.clone(), response))
    }

    fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        // Written straight into the buffer: `Display` goes through a formatter adapter and took
        // twice as long. A `Value` cannot fail to serialize; were it to, `Display` says the same.
        let bytes = serde_json::to_vec(body).unwrap_or_else(|_| body.to_string().into_bytes());
        self.request(reqwest::Method::POST, path)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(bytes)
    }

    /// Sends a request; a non-2xx answer becomes [`ProviderError::Status`].
    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::from_send(&self.id, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let err = ProviderError::from_status(&self.id, status.as_u16(), &body);
        tracing::warn!(provider = %self.id, status = status.as_u16(), "provider error: {err}");
        Err(err)
    }

    async fn read_body(&self, response: reqwest::Response) -> Result<bytes::Bytes, ProviderError> {
        response
            .bytes()
            .await
            .map_err(|e| ProviderError::from_reqwest(&self.id, e))
    }

    fn parse_json(&self, body: &[u8]) -> Result<Value, ProviderError> {
        serde_json::from_slice(body).map_err(|e| self.not_json(e, body))
    }

    /// The error for an answer `body` that is not JSON.
    fn not_json(&self, e: impl std::fmt::Display, body: &[u8]) -> ProviderError {
        ProviderError::InvalidResponse {
            provider: self.id.clone(),
            message: format!(
                "expected JSON ({e}); got: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        }
    }
}

#[cfg(all(test, feature = "replay"))]
mod recorded_tests;
#[cfg(test)]
mod tls_tests;
