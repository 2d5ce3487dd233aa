//! The model registry: resolves `provider/model` ids to the provider that serves each model,
//! and knows which models exist.
//!
//! A model's id is `provider_id/provider_model_id` (the provider model id may itself contain
//! `/`). Models come from each provider's `GET /models` at start and from `[[models]]` in the run
//! config; a registered model with the id of a discovered one refines it (type, metadata).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::config::{ModelConfig, ModelType};
use crate::providers::Provider;

/// One model the stack can route to.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// Stack-wide id, `provider_id/provider_model_id`.
    pub id: String,
    /// The provider serving it.
    pub provider_id: String,
    /// Its id at the provider.
    pub provider_model_id: String,
    /// Kind of model (discovered models are `llm` unless the provider marks them as embedding
    /// models or the run config registers them otherwise).
    pub model_type: ModelType,
    /// Metadata from the run config (e.g. `embedding_dimension`).
    pub metadata: Map<String, Value>,
    /// Creation time (unix seconds) as the provider reports it, else the stack's start time.
    pub created: i64,
    /// Whether the run config registers it (as opposed to discovered only).
    pub registered: bool,
}

impl ModelEntry {
    /// The entry as an OpenAI model object (`GET /v1/models`), with Llama Stack's
    /// `custom_metadata`: `model_type`, `provider_id`, `provider_resource_id` (the provider's
    /// model id) and the model's metadata (`embedding_dimension`, ...), as Llama Stack 0.7 lists
    /// them (its clients read `model.custom_metadata`).
    pub fn to_openai(&self) -> Value {
        let mut custom = self.metadata.clone();
        custom.insert("model_type".into(), self.model_type.as_str().into());
        custom.insert("provider_id".into(), self.provider_id.clone().into());
        custom.insert(
            "provider_resource_id".into(),
            self.provider_model_id.clone().into(),
        );
        json!({
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.provider_id,
            "custom_metadata": custom,
        })
    }

    /// The entry as Llama Stack's model resource (`GET /v1/models/{model_id}`): `identifier`,
    /// `provider_resource_id`, `provider_id`, `type`, `model_type`, `metadata`, with the OpenAI
    /// model object's fields beside them (`id`, `object`, `created`, `owned_by`), so that the
    /// OpenAI SDKs' `models.retrieve()` reads it as well as `llama-stack-client`.
    pub fn to_resource(&self) -> Value {
        json!({
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.provider_id,
            "identifier": self.id,
            "provider_resource_id": self.provider_model_id,
            "provider_id": self.provider_id,
            "type": "model",
            "model_type": self.model_type.as_str(),
            "metadata": self.metadata,
        })
    }

    /// The length of this model's vectors, when known (an embedding model's
    /// `embedding_dimension`).
    pub fn embedding_dimension(&self) -> Option<u64> {
        self.metadata
            .get("embedding_dimension")
            .and_then(Value::as_u64)
    }
}

/// The vector length of well-known embedding models, by the provider's model id (any
/// `org/` prefix, `:tag` or quantization suffix ignored), for providers whose model listing does
/// not say (llama.cpp's router mode, Ollama, vLLM). Llama Stack keeps the same kind of table
/// (`embedding_model_metadata`) in its provider adapters; `[[models]]` metadata overrides it.
fn known_embedding_dimension(provider_model_id: &str) -> Option<u64> {
    let name = provider_model_id
        .rsplit('/')
        .next()
        .unwrap_or(provider_model_id)
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    const KNOWN: &[(&str, u64)] = &[
        ("all-minilm-l6-v2", 384),
        ("all-minilm", 384),
        ("all-mpnet-base-v2", 768),
        ("nomic-embed-text", 768),
        ("nomic-embed-text-v1.5", 768),
        ("mxbai-embed-large", 1024),
        ("bge-small-en-v1.5", 384),
        ("bge-base-en-v1.5", 768),
        ("bge-large-en-v1.5", 1024),
        ("bge-m3", 1024),
        ("snowflake-arctic-embed", 1024),
        ("text-embedding-3-small", 1536),
        ("text-embedding-3-large", 3072),
        ("text-embedding-ada-002", 1536),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| name == *known || name.strip_suffix(".gguf") == Some(known))
        .map(|(_, dim)| *dim)
}

/// The type of a listed model, from what the provider says about it: a `model_type` or `type`
/// of `embedding`, or (llama.cpp router mode) a model started with `--embedding(s)`. Anything
/// else is an `llm`.
fn discovered_type(entry: &Value) -> ModelType {
    let declared = ["model_type", "type"]
        .iter()
        .filter_map(|k| entry.get(*k).and_then(Value::as_str))
        .any(|t| t == "embedding");
    let llamacpp_embeddings = entry
        .pointer("/status/args")
        .and_then(Value::as_array)
        .is_some_and(|args| {
            args.iter()
                .any(|a| matches!(a.as_str(), Some("--embedding" | "--embeddings")))
        });
    if declared || llamacpp_embeddings {
        ModelType::Embedding
    } else {
        ModelType::Llm
    }
}

/// A resolved request target.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// The model.
    pub model: &'a ModelEntry,
    /// The provider that serves it.
    pub provider: &'a Provider,
}

/// Why a model id could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// No model has this id.
    #[error("Model '{model}' not found. {}", available(.known))]
    UnknownModel {
        /// What was asked for.
        model: String,
        /// Every known model id.
        known: Vec<String>,
    },
}

fn available(known: &[String]) -> String {
    if known.is_empty() {
        "No models are available: no provider is configured or none listed any model.".to_owned()
    } else {
        format!("Available models: {}", known.join(", "))
    }
}

/// Providers and the models they serve.
#[derive(Debug, Clone, Default)]
pub struct ModelRegistry {
    providers: Vec<Provider>,
    models: Vec<ModelEntry>,
    index: HashMap<String, usize>,
}

impl ModelRegistry {
    /// A registry of these providers, with no models yet.
    pub fn new(providers: Vec<Provider>) -> Self {
        Self {
            providers,
            models: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The providers, in config order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// A provider by id.
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id() == id)
    }

    /// Adds the models a provider listed at `GET /models` (entries without a string `id` are
    /// skipped). `now` is used when an entry has no `created`.
    pub fn add_discovered(&mut self, provider_id: &str, entries: &[Value], now: i64) {
        for entry in entries {
            let Some(provider_model_id) = entry.get("id").and_then(Value::as_str) else {
                tracing::warn!(
                    provider_id,
                    "skipping a listed model without a string id: {entry}"
                );
                continue;
            };
            if provider_model_id.is_empty() {
                continue;
            }
            let created = entry.get("created").and_then(Value::as_i64).unwrap_or(now);
            let model_type = discovered_type(entry);
            let mut metadata = Map::new();
            if model_type == ModelType::Embedding
                && let Some(dim) = entry
                    .pointer("/meta/n_embd")
                    .and_then(Value::as_u64)
                    .or_else(|| known_embedding_dimension(provider_model_id))
            {
                metadata.insert("embedding_dimension".into(), Value::from(dim));
            }
            self.upsert(ModelEntry {
                id: format!("{provider_id}/{provider_model_id}"),
                provider_id: provider_id.to_owned(),
                provider_model_id: provider_model_id.to_owned(),
                model_type,
                metadata,
                created,
                registered: false,
            });
        }
    }

    /// Registers a model from the run config; it replaces the type and metadata of a discovered
    /// model with the same id.
    pub fn register(&mut self, model: &ModelConfig, now: i64) {
        let id = model.model_id();
        let created = self
            .index
            .get(&id)
            .map(|&i| self.models[i].created)
            .unwrap_or(now);
        self.upsert(ModelEntry {
            id,
            provider_id: model.provider_id.clone(),
            provider_model_id: model.provider_model_id.clone(),
            model_type: model.model_type,
            metadata: model.metadata.clone(),
            created,
            registered: true,
        });
    }

    fn upsert(&mut self, entry: ModelEntry) {
        match self.index.get(&entry.id) {
            Some(&i) => self.models[i] = entry,
            None => {
                self.index.insert(entry.id.clone(), self.models.len());
                self.models.push(entry);
            }
        }
    }

    /// Every model, providers in config order, each provider's models in listing order, then
    /// registered-only models.
    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    /// A model by id.
    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.index.get(id).map(|&i| &self.models[i])
    }

    /// Finds the model and its provider; an unknown id gets an error listing the known ids.
    pub fn resolve(&self, model: &str) -> Result<Route<'_>, RouterError> {
        let unknown = || RouterError::UnknownModel {
            model: model.to_owned(),
            known: self.models.iter().map(|m| m.id.clone()).collect(),
        };
        let entry = self.get(model).ok_or_else(unknown)?;
        let provider = self.provider(&entry.provider_id).ok_or_else(unknown)?;
        Ok(Route {
            model: entry,
            provider,
        })
    }

    /// A model's Llama Stack resource (`GET /v1/models/{model_id}`); an unknown id is a 404
    /// listing the known ones.
    pub fn retrieve(&self, model: &str) -> Result<Value, RouterError> {
        self.resolve(model).map(|route| route.model.to_resource())
    }

    /// The OpenAI model list: `{"object": "list", "data": [...]}`.
    pub fn list_openai(&self) -> Value {
        json!({
            "object": "list",
            "data": self.models.iter().map(ModelEntry::to_openai).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderConfig, ProviderType};
    use crate::error::ApiError;

    fn provider(id: &str) -> Provider {
        let cfg = ProviderConfig {
            provider_id: id.into(),
            provider_type: ProviderType::LlamaCpp,
            base_url: Some(url::Url::parse("http://127.0.0.1:9/v1").unwrap()),
            api_key: None,
        };
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
        Provider::new(&cfg, client).unwrap()
    }

    fn registry() -> ModelRegistry {
        let mut r = ModelRegistry::new(vec![provider("llamacpp"), provider("vllm")]);
        r.add_discovered(
            "llamacpp",
            &[
                json!({"id": "smollm2-135m", "created": 7}),
                json!({"id": "all-minilm-l6-v2"}),
                json!({"no": "id"}),
            ],
            100,
        );
        r.add_discovered("vllm", &[json!({"id": "meta-llama/Llama-3.2-1B"})], 100);
        r.register(
            &ModelConfig {
                provider_id: "llamacpp".into(),
                provider_model_id: "all-minilm-l6-v2".into(),
                model_type: ModelType::Embedding,
                metadata: json!({"embedding_dimension": 384})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            200,
        );
        r
    }

    #[test]
    fn routes_by_provider_prefixed_id() {
        let r = registry();
        let route = r.resolve("vllm/meta-llama/Llama-3.2-1B").unwrap();
        assert_eq!(route.provider.id(), "vllm");
        assert_eq!(route.model.provider_model_id, "meta-llama/Llama-3.2-1B");
        let emb = r.resolve("llamacpp/all-minilm-l6-v2").unwrap().model;
        assert_eq!(
            (emb.model_type, emb.created, emb.registered),
            (ModelType::Embedding, 100, true)
        );
        assert_eq!(
            r.models().len(),
            3,
            "registration refines the discovered entry"
        );
    }

    #[test]
    fn discovered_embedding_models_are_recognized() {
        let mut r = ModelRegistry::new(vec![provider("llamacpp")]);
        r.add_discovered(
            "llamacpp",
            &[
                json!({"id": "e", "status": {"value": "unloaded", "args": ["llama-server", "--embeddings", "--port", "0"]}}),
                json!({"id": "f", "model_type": "embedding", "meta": {"n_embd": 384}}),
                json!({"id": "c", "status": {"args": ["llama-server", "--jinja"]}, "meta": {"n_embd": 576}}),
            ],
            0,
        );
        let types: Vec<_> = r
            .models()
            .iter()
            .map(|m| (m.id.as_str(), m.model_type))
            .collect();
        assert_eq!(
            types,
            [
                ("llamacpp/e", ModelType::Embedding),
                ("llamacpp/f", ModelType::Embedding),
                ("llamacpp/c", ModelType::Llm)
            ]
        );
        assert_eq!(
            r.models()[1].metadata.get("embedding_dimension"),
            Some(&json!(384))
        );
        assert!(r.models()[2].metadata.is_empty());
    }

    #[test]
    fn unknown_model_lists_known_ids() {
        let r = registry();
        let err = r.resolve("smollm2-135m").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'smollm2-135m' not found"), "{msg}");
        assert!(
            msg.contains(
                "llamacpp/smollm2-135m, llamacpp/all-minilm-l6-v2, vllm/meta-llama/Llama-3.2-1B"
            ),
            "{msg}"
        );
        let api: ApiError = err.into();
        assert_eq!((api.status, api.param.as_deref()), (404, Some("model")));
        let empty = ModelRegistry::default()
            .resolve("x")
            .unwrap_err()
            .to_string();
        assert!(empty.contains("No models are available"), "{empty}");
    }

    #[test]
    fn openai_list_shape() {
        let list = registry().list_openai();
        assert_eq!(list["object"], "list");
        let first = &list["data"][0];
        assert_eq!(first["id"], "llamacpp/smollm2-135m");
        assert_eq!(first["object"], "model");
        assert_eq!(first["created"], 7);
        assert_eq!(first["owned_by"], "llamacpp");
        let custom = &list["data"][1]["custom_metadata"];
        assert_eq!(custom["model_type"], "embedding");
        assert_eq!(custom["embedding_dimension"], 384);
        assert_eq!(custom["provider_id"], "llamacpp");
        assert_eq!(custom["provider_resource_id"], "all-minilm-l6-v2");
        assert_eq!(first["custom_metadata"]["model_type"], "llm");
    }

    #[test]
    fn retrieve_is_llama_stacks_model_resource() {
        let r = registry();
        let m = r.retrieve("vllm/meta-llama/Llama-3.2-1B").unwrap();
        assert_eq!(
            m,
            json!({"id": "vllm/meta-llama/Llama-3.2-1B", "object": "model", "created": 100, "owned_by": "vllm",
                   "identifier": "vllm/meta-llama/Llama-3.2-1B", "provider_resource_id": "meta-llama/Llama-3.2-1B",
                   "provider_id": "vllm", "type": "model", "model_type": "llm", "metadata": {}})
        );
        assert!(
            r.retrieve("nope")
                .unwrap_err()
                .to_string()
                .contains("Available models")
        );
    }

    #[test]
    fn well_known_embedding_models_get_their_dimension() {
        let mut r = ModelRegistry::new(vec![provider("ollama")]);
        r.add_discovered(
            "ollama",
            &[
                json!({"id": "nomic-embed-text:latest", "model_type": "embedding"}),
                json!({"id": "mystery-embed", "model_type": "embedding"}),
            ],
            0,
        );
        assert_eq!(r.models()[0].embedding_dimension(), Some(768));
        assert_eq!(r.models()[1].embedding_dimension(), None);
    }
}
