//! `GET /v1/providers` and `GET /v1/providers/{provider_id}`: the providers of the running
//! stack, as Llama Stack's Providers API lists them (`api`, `provider_id`, `provider_type`,
//! `config` with secrets redacted, `health`). Llama Stack's client fixtures call
//! `client.providers.list()` before anything else.
//!
//! Health is what the stack knows without calling anyone: an inference provider's is the outcome
//! of its model discovery at start (`OK`, or `Error` with the reason), so listing providers makes
//! no provider request (and needs no recording in replay); the built-in safety provider has no
//! health check (`Not Implemented`, as Llama Stack says for providers without one).

use serde_json::{Value, json};

use crate::Stack;
use crate::error::{ApiError, INVALID_REQUEST};

/// What the stack shows in place of a secret in a provider's config.
pub const REDACTED: &str = "********";

/// The built-in safety provider (Llama Guard on a stack model).
const SAFETY_PROVIDER: (&str, &str) = ("llama-guard", "inline::llama-guard");

/// A provider's health, Llama Stack's `HealthResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// It answered (its model listing, at start).
    Ok,
    /// It did not; why.
    Error(String),
    /// The provider has no health check.
    NotImplemented,
}

impl Health {
    fn to_json(&self) -> Value {
        match self {
            Self::Ok => json!({"status": "OK"}),
            Self::Error(message) => json!({"status": "Error", "message": message}),
            Self::NotImplemented => json!({"status": "Not Implemented"}),
        }
    }
}

impl Stack {
    /// `GET /v1/providers`: `{"data": [ProviderInfo, ...]}`, the enabled inference providers in
    /// config order, then the safety provider.
    pub fn list_providers(&self) -> Value {
        json!({"data": self.provider_infos()})
    }

    /// `GET /v1/providers/{provider_id}`: one `ProviderInfo`; an unknown id is a 404 listing the
    /// known ones.
    pub fn get_provider(&self, provider_id: &str) -> Result<Value, ApiError> {
        let infos = self.provider_infos();
        if let Some(found) = infos.iter().find(|p| p["provider_id"] == provider_id) {
            return Ok(found.clone());
        }
        let known: Vec<&str> = infos
            .iter()
            .filter_map(|p| p["provider_id"].as_str())
            .collect();
        Err(ApiError::new(
            404,
            INVALID_REQUEST,
            format!(
                "Provider '{provider_id}' not found. Available providers: {}",
                known.join(", ")
            ),
            Some("provider_id"),
            Some("provider_not_found"),
        ))
    }

    /// `GET /v1/inspect/routes`: `{"data": [{"route", "method", "provider_types"}]}`, every
    /// route the stack serves (all `v1`; `?api_filter=v1alpha|v1beta|deprecated` lists none).
    /// The provider types are the inference providers' for inference routes, the built-in
    /// safety provider's for safety routes.
    pub fn list_routes(&self, params: &crate::api::Params) -> Value {
        if params.query("api_filter").is_some_and(|f| f != "v1") {
            return json!({"data": []});
        }
        let inference: Vec<&str> = self
            .config()
            .enabled_providers()
            .map(|p| p.provider_type.llama_stack_name())
            .collect();
        let data: Vec<Value> = crate::api::Endpoint::ALL
            .iter()
            .map(|e| {
                use crate::api::Endpoint as E;
                let types: Vec<&str> = match e {
                    E::ChatCompletions | E::Completions | E::Embeddings | E::Models | E::GetModel => {
                        inference.clone()
                    }
                    E::RunShield | E::Moderations | E::ListShields | E::RegisterShield | E::GetShield
                    | E::DeleteShield => vec![SAFETY_PROVIDER.1],
                    _ => Vec::new(),
                };
                json!({"route": e.path().replace("{*", "{"), "method": e.method(), "provider_types": types})
            })
            .collect();
        json!({"data": data})
    }

    fn provider_infos(&self) -> Vec<Value> {
        let mut infos: Vec<Value> = self
            .config()
            .enabled_providers()
            .map(|p| {
                let health = self
                    .inner
                    .health
                    .get(&p.provider_id)
                    .cloned()
                    .unwrap_or(Health::NotImplemented);
                json!({
                    "api": "inference",
                    "provider_id": p.provider_id,
                    "provider_type": p.provider_type.llama_stack_name(),
                    "config": {
                        "base_url": p.base_url.as_ref().map(|u| u.as_str()),
                        "api_key": p.api_key.as_ref().map(|_| REDACTED),
                    },
                    "health": health.to_json(),
                })
            })
            .collect();
        let (id, provider_type) = SAFETY_PROVIDER;
        infos.push(json!({
            "api": "safety",
            "provider_id": id,
            "provider_type": provider_type,
            "config": {},
            "health": Health::NotImplemented.to_json(),
        }));
        infos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[tokio::test]
    async fn providers_list_redacts_secrets_and_reports_discovery_health() {
        let server = fake_provider().await;
        let mut config = crate::RunConfig::from_toml_str_with_env(
            &format!(
                "[[providers]]\nprovider_id = \"up\"\nprovider_type = \"remote::llamacpp\"\n\
                 base_url = \"{}\"\napi_key = \"sk-secret-value\"\n\
                 [[providers]]\nprovider_id = \"down\"\nprovider_type = \"remote::vllm\"\n\
                 base_url = \"http://127.0.0.1:9\"\n",
                server.uri()
            ),
            "test",
            &|_| None,
        )
        .unwrap();
        config.storage.db_path = test_db_path();
        let stack = stack_with(config, plain_client()).await;
        let list = stack.list_providers();
        let text = list.to_string();
        assert!(!text.contains("sk-secret-value"), "{text}");
        let data = list["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(data[0]["provider_type"], "remote::llama-cpp-server");
        assert_eq!(data[0]["config"]["api_key"], REDACTED);
        assert_eq!(data[0]["health"]["status"], "OK");
        assert_eq!(data[1]["health"]["status"], "Error");
        assert!(
            data[1]["health"]["message"]
                .as_str()
                .unwrap()
                .contains("discovery")
        );
        assert_eq!(data[1]["config"]["api_key"], Value::Null);
        assert_eq!(
            (data[2]["api"].as_str(), data[2]["provider_id"].as_str()),
            (Some("safety"), Some("llama-guard"))
        );
        assert_eq!(stack.get_provider("down").unwrap(), data[1]);
        let routes = stack.list_routes(&crate::api::Params::default());
        let chat = routes["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "/v1/chat/completions" && r["method"] == "POST")
            .unwrap();
        assert_eq!(
            chat["provider_types"],
            serde_json::json!(["remote::llama-cpp-server", "remote::vllm"])
        );
        assert!(routes.to_string().contains("/v1/models/{model_id}"));
        let missing = stack.get_provider("nope").unwrap_err();
        assert_eq!(missing.status, 404);
        assert!(
            missing.message.contains("up, down, llama-guard"),
            "{}",
            missing.message
        );
    }
}
