//! A Rust LLM stack in the spirit of Llama Stack: one OpenAI-compatible API in front of remote
//! OpenAI-compatible providers (OpenAI, Ollama, vLLM, llama.cpp), routing `provider_id/model`.
//!
//! One [`RunConfig`] builds a [`Stack`]; the stack is served over HTTP by [`server`] or used
//! in-process through [`client::StackClient::library`], with the same answers either way.
//!
//! Modules:
//! - [`config`]: the run config (TOML, `${env.VAR}` substitution) and built-in distributions.
//! - [`providers`]: the OpenAI-compatible provider adapter and the HTTP client it sends with
//!   ([`providers::http`], the recorder's place).
//! - [`model_registry`]: resolves `provider/model` ids to the provider that serves them.
//! - [`api`]: endpoints, request validation and the inference handlers.
//! - [`responses`]: the Responses API (orchestration, MCP tools, storage).
//! - [`mcp`]: the MCP client (rmcp on the recorded HTTP client).
//! - [`safety`]: shields, run-shield, moderations (Llama Guard on a stack model).
//! - [`storage`]: the SQLite database (stored responses and chat completions).
//! - [`ids`]: ids the stack mints (deterministic inside tests).
//! - [`error`]: OpenAI-style API errors.
//! - [`server`]: the axum HTTP server; [`listen`]: its accept loop and limits.
//! - [`client`]: the stack's own API client (for tests and embedders), in-process or over HTTP.
//! - [`context`]: test identity (feature `replay`).
//! - [`telemetry`]: OpenTelemetry spans and metrics (GenAI semantic conventions), SDK setup.

#![warn(missing_docs)]

pub mod api;
pub mod body_deadline;
pub mod cli;
pub mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod ids;
pub mod listen;
pub mod log_time;
pub mod log_writer;
pub mod mcp;
pub mod model_registry;
pub mod providers;
pub mod responses;
pub mod safety;
pub mod server;
pub mod storage;
pub mod telemetry;

#[cfg(test)]
mod testutil;

use std::sync::Arc;
use std::time::Duration;

use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};

pub use api::{Endpoint, Params, Reply};
pub use client::{ClientError, StackClient};
pub use config::RunConfig;
pub use error::ApiError;

use model_registry::ModelRegistry;
use providers::{ClientSetupError, Provider};
use telemetry::Telemetry;

/// How long model discovery may take per provider at start.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a stack could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The run config is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The provider client could not be set up (e.g. the recorder was asked for without the
    /// `replay` feature).
    #[error(transparent)]
    Client(#[from] ClientSetupError),
    /// The responses database could not be opened.
    #[error(transparent)]
    Storage(#[from] storage::StoreError),
}

/// A running stack: its config, providers and models. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Stack {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RunConfig,
    registry: ModelRegistry,
    telemetry: Telemetry,
    client: ClientWithMiddleware,
    responses: responses::ResponseStore,
    /// Stored chat completions; `None` when the run config turns them off.
    chat_store: Option<Arc<storage::chat_completions::ChatCompletionStore>>,
    shields: safety::Shields,
    /// Each enabled inference provider's health as model discovery found it.
    health: std::collections::HashMap<String, api::providers::Health>,
}

impl Stack {
    /// Builds the stack: sets up the provider client (with the recorder when
    /// `LLAMA_STACK_TEST_INFERENCE_MODE` is set, feature `replay`), then discovers each enabled
    /// provider's models with `GET {base_url}/models`. A discovery failure is logged and leaves
    /// that provider with its registered models only.
    pub async fn from_config(config: RunConfig) -> Result<Stack, StackError> {
        Self::from_config_with_telemetry(config, Telemetry::global()).await
    }

    /// [`Stack::from_config`] with every span and metric of the stack (GenAI and provider client
    /// spans) sent where `telemetry` says: explicit providers ([`Telemetry::with_providers`]),
    /// or nowhere ([`Telemetry::disabled`]).
    pub async fn from_config_with_telemetry(
        config: RunConfig,
        telemetry: Telemetry,
    ) -> Result<Stack, StackError> {
        let spans = telemetry::ClientSpanMiddleware::with_telemetry(telemetry.clone());
        let client = providers::provider_client_with(spans)?;
        Self::from_config_with(config, client, telemetry).await
    }

    /// [`Stack::from_config`] with a caller-made provider client (e.g. one carrying its own
    /// middleware). No recorder is added and `LLAMA_STACK_TEST_INFERENCE_MODE` is not looked at;
    /// nor is the provider client span middleware: put
    /// [`telemetry::ClientSpanMiddleware`] first on the client for provider spans.
    pub async fn from_config_with_client(
        config: RunConfig,
        client: ClientWithMiddleware,
    ) -> Result<Stack, StackError> {
        Self::from_config_with(config, client, Telemetry::global()).await
    }

    /// [`Stack::from_config_with_client`], with the GenAI spans and metrics sent where
    /// `telemetry` says (e.g. to a test's own providers) instead of the global providers.
    pub async fn from_config_with(
        config: RunConfig,
        client: ClientWithMiddleware,
        telemetry: Telemetry,
    ) -> Result<Stack, StackError> {
        let responses = responses::ResponseStore::open(&config.storage.db_path)?;
        let chat_store = if config.storage.store_chat_completions {
            Some(Arc::new(
                storage::chat_completions::ChatCompletionStore::open(&config.storage.db_path)?,
            ))
        } else {
            None
        };
        let mut enabled = Vec::new();
        for provider_config in config.enabled_providers() {
            let Some(provider) = Provider::new(provider_config, client.clone()) else {
                continue;
            };
            enabled.push(provider);
        }
        let discovered = futures::future::join_all(enabled.iter().map(discover)).await;
        let now = unix_now();
        let mut registry = ModelRegistry::new(enabled.clone());
        let mut health = std::collections::HashMap::new();
        for (provider, (models, found)) in enabled.iter().zip(discovered) {
            registry.add_discovered(provider.id(), &models, now);
            health.insert(provider.id().to_owned(), found);
        }
        for model in &config.models {
            registry.register(model, now);
        }
        tracing::info!(
            config = %config.source,
            providers = enabled.len(),
            models = registry.models().len(),
            "stack ready"
        );
        Ok(Stack {
            inner: Arc::new(Inner {
                shields: safety::Shields::from_config(&config.shields),
                config,
                registry,
                telemetry,
                client,
                responses,
                chat_store,
                health,
            }),
        })
    }

    /// The run config the stack was built from.
    pub fn config(&self) -> &RunConfig {
        &self.inner.config
    }

    /// The model registry.
    pub fn registry(&self) -> &ModelRegistry {
        &self.inner.registry
    }

    /// Where the stack's GenAI spans and metrics go.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// The HTTP client every provider and MCP call goes through (with the recorder, when on).
    pub fn provider_client(&self) -> &ClientWithMiddleware {
        &self.inner.client
    }

    /// The stored responses.
    pub fn response_store(&self) -> &responses::ResponseStore {
        &self.inner.responses
    }

    /// `GET /v1/health`: `{"status": "OK"}`.
    pub fn health(&self) -> Value {
        json!({"status": "OK"})
    }

    /// `GET /v1/version`: `{"version": "<crate version>"}`.
    pub fn version(&self) -> Value {
        json!({"version": env!("CARGO_PKG_VERSION")})
    }

    /// `GET /v1/models`: the OpenAI model list.
    pub fn models(&self) -> Value {
        self.inner.registry.list_openai()
    }

    /// Answers one API request given as method, path (with its query string) and raw body,
    /// exactly as the HTTP server does: unknown paths are 404, wrong methods 405, bodies that are
    /// not JSON objects 400.
    pub async fn handle(&self, method: &str, path: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let (endpoint, params) = Endpoint::route(method, path)?;
        self.call_with(endpoint, &params, body).await
    }

    /// Answers one request to `endpoint` with a raw body (ignored by the GET endpoints) and no
    /// path or query parameters.
    pub async fn call(&self, endpoint: Endpoint, body: &[u8]) -> Result<Reply, ApiError> {
        self.call_with(endpoint, &Params::default(), body).await
    }

    /// Answers one request to `endpoint` with its path and query parameters and a raw body.
    pub async fn call_with(
        &self,
        endpoint: Endpoint,
        params: &Params,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let id = || params.id.as_deref().unwrap_or_default();
        match endpoint {
            Endpoint::Health => Ok(Reply::Json(self.health())),
            Endpoint::Version => Ok(Reply::Json(self.version())),
            Endpoint::Models => Ok(Reply::Json(self.models())),
            Endpoint::GetModel => self
                .inner
                .registry
                .retrieve(id())
                .map(Reply::Json)
                .map_err(ApiError::from),
            Endpoint::ListProviders => Ok(Reply::Json(self.list_providers())),
            Endpoint::ListRoutes => Ok(Reply::Json(self.list_routes(params))),
            Endpoint::GetProvider => self.get_provider(id()).map(Reply::Json),
            Endpoint::ChatCompletions => {
                self.chat_completions(api::validate::parse_body(body)?)
                    .await
            }
            Endpoint::ListChatCompletions => {
                self.list_chat_completions(params).await.map(Reply::Json)
            }
            Endpoint::GetChatCompletion => self.get_chat_completion(id()).await.map(Reply::Json),
            Endpoint::Completions => self.completions(api::validate::parse_body(body)?).await,
            Endpoint::Embeddings => self
                .embeddings(api::validate::parse_body(body)?)
                .await
                .map(Reply::Json),
            // Boxed: the orchestration's future is large, and every request's future holds it.
            Endpoint::CreateResponse => {
                Box::pin(self.create_response(api::validate::parse_body(body)?)).await
            }
            Endpoint::ListResponses => self.list_responses(params).await.map(Reply::Json),
            Endpoint::GetResponse => self.get_response(id()).await.map(Reply::Json),
            Endpoint::DeleteResponse => self.delete_response(id()).await.map(Reply::Json),
            Endpoint::ListInputItems => self.list_input_items(id(), params).await.map(Reply::Json),
            Endpoint::ListShields => Ok(Reply::Json(self.list_shields())),
            Endpoint::RegisterShield => self
                .register_shield(&api::validate::parse_body(body)?)
                .map(Reply::Json),
            Endpoint::GetShield => self.get_shield(id()).map(Reply::Json),
            Endpoint::DeleteShield => self.unregister_shield(id()).map(Reply::Json),
            Endpoint::RunShield => self.run_shield(api::validate::parse_body(body)?).await,
            Endpoint::Moderations => self.moderations(api::validate::parse_body(body)?).await,
        }
    }
}

/// Lists a provider's models; failures are logged and give no models. Returns the models and
/// the provider's health as discovery found it (`GET /v1/providers`).
async fn discover(provider: &Provider) -> (Vec<Value>, api::providers::Health) {
    use api::providers::Health;
    match tokio::time::timeout(DISCOVERY_TIMEOUT, provider.list_models()).await {
        Ok(Ok(models)) => {
            tracing::info!(
                provider = provider.id(),
                count = models.len(),
                "discovered models"
            );
            (models, Health::Ok)
        }
        Ok(Err(e)) => {
            tracing::warn!(
                provider = provider.id(),
                "model discovery failed, using registered models only: {e}"
            );
            (
                Vec::new(),
                Health::Error(format!("model discovery failed: {e}")),
            )
        }
        Err(_) => {
            tracing::warn!(
                provider = provider.id(),
                "model discovery timed out after {DISCOVERY_TIMEOUT:?}, using registered models only"
            );
            (
                Vec::new(),
                Health::Error(format!(
                    "model discovery timed out after {DISCOVERY_TIMEOUT:?}"
                )),
            )
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;
    use wiremock::matchers::method;
    use wiremock::{Mock, ResponseTemplate};

    use super::*;
    use crate::testutil::*;

    /// Every endpoint, every field, every odd value: answers (4xx or the provider's), no panic.
    #[tokio::test]
    async fn odd_input_never_panics() {
        let server = fake_provider().await;
        // A provider that answers with odd things too.
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([1, {"model": 2}])))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        let odd = [
            json!(null),
            json!(true),
            json!(-1),
            json!(1e308),
            json!(18446744073709551615u64),
            json!(""),
            json!("\u{0}\u{10ffff}"),
            json!([]),
            json!([null, {}, [[]]]),
            json!({}),
            json!({"type": null, "function": {"name": []}}),
        ];
        let keys = [
            "model",
            "messages",
            "prompt",
            "input",
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "n",
            "stream",
            "stream_options",
            "stop",
            "seed",
            "tools",
            "tool_choice",
            "response_format",
            "encoding_format",
            "dimensions",
            "logprobs",
            "top_logprobs",
            "best_of",
            "user",
            "suffix",
        ];
        let base = json!({"model": "llamacpp/smollm2-135m", "messages": [{"role": "user", "content": "x"}],
                          "prompt": "p", "input": "i"});
        let mut calls = 0;
        for endpoint in Endpoint::ALL {
            for key in keys {
                for value in &odd {
                    let mut body = base.clone();
                    if let Some(obj) = body.as_object_mut() {
                        obj.insert(key.to_owned(), value.clone());
                    }
                    let bytes = body.to_string().into_bytes();
                    match stack.call(endpoint, &bytes).await {
                        Ok(Reply::Stream(s) | Reply::Events(s)) => {
                            drop(s.collect::<Vec<_>>().await)
                        }
                        Ok(Reply::Json(_) | Reply::Raw(_)) => {}
                        Err(e) => assert!((400..=599).contains(&e.status), "{e}"),
                    }
                    calls += 1;
                }
            }
            for raw in [
                &b""[..],
                b"{",
                b"[]",
                b"null",
                b"\xff",
                b"{\"model\": {\"model\": []}}",
                &[b'['; 10_000],
            ] {
                let _ = stack.call(endpoint, raw).await;
            }
        }
        assert_eq!(calls, Endpoint::ALL.len() * keys.len() * odd.len());
    }

    #[tokio::test]
    async fn discovery_failures_leave_registered_models() {
        let server = wiremock::MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500).set_body_string("down"))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        let ids: Vec<&str> = stack
            .registry()
            .models()
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(ids, ["llamacpp/all-minilm-l6-v2", "llamacpp/extra"]);
        assert_eq!(
            stack.models()["data"][0]["custom_metadata"]["embedding_dimension"],
            384
        );
    }
}
