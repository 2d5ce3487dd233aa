//! A Llama Stack `run.yaml` (format `version: 2`, as Llama Stack 0.7 writes it) read as a run
//! config, so `stack run path/to/run.yaml` starts from the file a Llama Stack user already has.
//!
//! What this stack serves is taken over, written into the TOML run config's shape and then
//! parsed like any TOML config (same `${env.VAR...}` substitution, same checks):
//!
//! - `image_name` -> `name`; `server.port`/`server.host` -> `[server]`;
//! - `providers.inference` entries of the types this stack has (`remote::openai`,
//!   `remote::ollama`, `remote::vllm`, `remote::llama-cpp-server`) -> `[[providers]]`, their
//!   `config.base_url` (or `url`) and `config.api_key` (or vLLM's `api_token`);
//! - `providers.safety` `inline::llama-guard` (built in) with its `excluded_categories`, and
//!   `registered_resources.shields` -> `[[shields]]`;
//! - `registered_resources.models` -> `[[models]]`;
//! - `storage.backends.sql_default.db_path` -> `[storage] db_path`.
//!
//! Everything else is named in a warning (an enabled provider of another type, config keys the
//! stack does not use, APIs and sections it does not serve), never dropped silently.

use serde_json::Value;

use super::{ConfigError, subst};

/// Provider types this stack has, in Llama Stack's spelling (`remote::llamacpp` is ours).
const INFERENCE_TYPES: &[&str] = &[
    "remote::openai",
    "remote::ollama",
    "remote::vllm",
    "remote::llama-cpp-server",
    "remote::llamacpp",
];

/// Provider types of other APIs that the stack serves with its built-in implementation.
const BUILT_IN: &[(&str, &str)] = &[
    ("safety", "inline::llama-guard"),
    ("agents", "inline::meta-reference"),
    ("tool_runtime", "remote::model-context-protocol"),
];

/// A `run.yaml` turned into a TOML run config, and what it says that the stack does not use.
#[derive(Debug)]
pub struct Translated {
    /// The run config in the TOML shape.
    pub table: toml::Table,
    /// One line per thing not taken over.
    pub warnings: Vec<String>,
}

/// Whether a run-config path names a YAML file.
pub fn is_yaml(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Translates the text of a Llama Stack `run.yaml`; `env` decides which providers are enabled
/// (for the warnings: disabled providers of other types are not worth one).
pub fn translate(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Translated, ConfigError> {
    let syntax = |e: serde_yaml_ng::Error| ConfigError::YamlSyntax {
        source_name: source.to_owned(),
        message: e.to_string(),
    };
    // Merge keys (`<<: *anchor`) are applied first, as PyYAML, and so Llama Stack, applies them.
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(syntax)?;
    yaml.apply_merge().map_err(syntax)?;
    let root: Value = serde_yaml_ng::from_value(yaml).map_err(syntax)?;
    let Value::Object(root) = root else {
        return Err(ConfigError::Field {
            source_name: source.to_owned(),
            field: String::new(),
            message: "a Llama Stack run.yaml is a mapping (image_name, providers, ...)".into(),
        });
    };
    let mut out = Translator {
        env,
        table: toml::Table::new(),
        warnings: Vec::new(),
        excluded: Value::Null,
        inference_ids: Vec::new(),
    };
    // Providers first: the models and shields sections refer to them.
    if let Some(providers) = root.get("providers") {
        out.providers(providers);
    }
    for (key, value) in &root {
        match key.as_str() {
            "version" | "apis" | "external_providers_dir" => {}
            "image_name" => out.set("name", value),
            "server" => out.server(value),
            "providers" => {}
            "registered_resources" => out.registered_resources(value),
            "storage" => out.storage(value),
            // Llama Stack 0.7's top-level model and shield lists (older files).
            "models" => out.models(value, "models"),
            "shields" => out.shields(value, "shields"),
            other if is_empty(value) => {
                tracing::debug!("run.yaml: empty section {other} ignored");
            }
            other => out.warnings.push(format!(
                "section `{other}` is not used by this stack (it serves inference, safety and the \
                 Responses API)"
            )),
        }
    }
    Ok(Translated {
        table: out.table,
        warnings: out.warnings,
    })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

struct Translator<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    table: toml::Table,
    warnings: Vec<String>,
    /// The built-in Llama Guard provider's `excluded_categories`, for every shield it runs.
    excluded: Value,
    /// Every inference provider id taken over, as substituted (empty ones: disabled).
    inference_ids: Vec<String>,
}

impl Translator<'_> {
    /// The substituted text of a YAML scalar (for deciding, not for the config: the parser
    /// substitutes the config's own copy).
    fn resolved(&self, value: Option<&Value>) -> String {
        match value {
            Some(Value::String(s)) => subst::substitute(s, self.env).unwrap_or_default(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    fn set(&mut self, key: &str, value: &Value) {
        if let Some(v) = to_toml(value) {
            self.table.insert(key.to_owned(), v);
        }
    }

    fn push(&mut self, array: &str, entry: toml::Table) {
        if let toml::Value::Array(items) = self
            .table
            .entry(array)
            .or_insert_with(|| toml::Value::Array(Vec::new()))
        {
            items.push(toml::Value::Table(entry));
        }
    }

    fn server(&mut self, value: &Value) {
        let mut server = toml::Table::new();
        for (key, v) in value.as_object().into_iter().flatten() {
            match key.as_str() {
                "port" | "host" => {
                    if let Some(v) = to_toml(v) {
                        server.insert(key.clone(), v);
                    }
                }
                other if is_empty(v) => tracing::debug!("run.yaml: server.{other} empty"),
                other => self
                    .warnings
                    .push(format!("`server.{other}` is not used by this stack")),
            }
        }
        self.table
            .insert("server".into(), toml::Value::Table(server));
    }

    fn providers(&mut self, value: &Value) {
        for (api, entries) in value.as_object().into_iter().flatten() {
            let entries = entries.as_array().cloned().unwrap_or_default();
            for (i, entry) in entries.iter().enumerate() {
                let at = format!("providers.{api}[{i}]");
                let provider_type = entry
                    .get("provider_type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let enabled = !self.resolved(entry.get("provider_id")).is_empty();
                let id = self.resolved(entry.get("provider_id"));
                if api == "inference" && INFERENCE_TYPES.contains(&provider_type) {
                    self.inference_ids.push(id.clone());
                    self.inference_provider(entry, &at);
                } else if BUILT_IN.contains(&(api.as_str(), provider_type)) {
                    if api == "safety" {
                        self.safety_provider(entry, &at);
                    }
                } else if enabled {
                    self.warnings.push(format!(
                        "{at}: provider `{id}` ({provider_type}) is not one this stack has; skipped \
                         (inference types it has: {})",
                        INFERENCE_TYPES.join(", ")
                    ));
                }
            }
        }
    }

    fn inference_provider(&mut self, entry: &Value, at: &str) {
        let mut out = toml::Table::new();
        for key in ["provider_id", "provider_type"] {
            if let Some(v) = entry.get(key).and_then(to_toml) {
                out.insert(key.into(), v);
            }
        }
        let mut unused = Vec::new();
        for (key, v) in entry
            .get("config")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let ours = match key.as_str() {
                "base_url" | "url" => "base_url",
                "api_key" | "api_token" => "api_key",
                _ => {
                    if !is_empty(v) {
                        unused.push(key.as_str());
                    }
                    continue;
                }
            };
            if let Some(v) = to_toml(v) {
                out.insert(ours.into(), v);
            }
        }
        if !unused.is_empty() && !self.resolved(entry.get("provider_id")).is_empty() {
            self.warnings.push(format!(
                "{at}: config keys not used by this stack: {}",
                unused.join(", ")
            ));
        }
        self.push("providers", out);
    }

    /// The built-in Llama Guard provider: its `excluded_categories` go to every shield it runs.
    fn safety_provider(&mut self, entry: &Value, at: &str) {
        for (key, v) in entry
            .get("config")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if key == "excluded_categories" {
                self.excluded = v.clone();
            } else if !is_empty(v) {
                self.warnings.push(format!(
                    "{at}: config key `{key}` is not used by this stack"
                ));
            }
        }
    }

    fn registered_resources(&mut self, value: &Value) {
        for (kind, items) in value.as_object().into_iter().flatten() {
            match kind.as_str() {
                "models" => self.models(items, "registered_resources.models"),
                "shields" => self.shields(items, "registered_resources.shields"),
                other if is_empty(items) => tracing::debug!("run.yaml: no {other}"),
                other => self.warnings.push(format!(
                    "registered_resources.{other} is not used by this stack"
                )),
            }
        }
    }

    fn models(&mut self, items: &Value, at: &str) {
        for (i, m) in items.as_array().into_iter().flatten().enumerate() {
            let mut out = toml::Table::new();
            for (key, v) in m.as_object().into_iter().flatten() {
                match key.as_str() {
                    "provider_id" | "provider_model_id" | "model_type" | "metadata" => {
                        if let Some(v) = to_toml(v) {
                            out.insert(key.clone(), v);
                        }
                    }
                    "model_id" => {}
                    other => self
                        .warnings
                        .push(format!("{at}[{i}].{other} is not used by this stack")),
                }
            }
            let provider = self.resolved(m.get("provider_id"));
            if !self.inference_ids.contains(&provider) {
                if !provider.is_empty() {
                    self.warnings.push(format!(
                        "{at}[{i}]: provider `{provider}` is not an enabled inference provider of \
                         this stack; model skipped"
                    ));
                }
                continue;
            }
            // Llama Stack registers `model_id` and, without `provider_model_id`, serves it
            // under that name at the provider.
            if !out.contains_key("provider_model_id")
                && let Some(v) = m.get("model_id").and_then(to_toml)
            {
                out.insert("provider_model_id".into(), v);
            }
            self.push("models", out);
        }
    }

    fn shields(&mut self, items: &Value, at: &str) {
        let excluded = self.excluded.clone();
        for (i, s) in items.as_array().into_iter().flatten().enumerate() {
            let mut out = toml::Table::new();
            for (key, v) in s.as_object().into_iter().flatten() {
                match key.as_str() {
                    "shield_id" | "provider_id" | "provider_shield_id" | "params" => {
                        if let Some(v) = to_toml(v) {
                            out.insert(key.clone(), v);
                        }
                    }
                    other => self
                        .warnings
                        .push(format!("{at}[{i}].{other} is not used by this stack")),
                }
            }
            let provider = self.resolved(s.get("provider_id"));
            if !provider.is_empty() && provider != "llama-guard" {
                self.warnings.push(format!(
                    "{at}[{i}]: shield provider `{provider}` is not one this stack has (it has \
                     llama-guard); skipped"
                ));
                continue;
            }
            if excluded.as_array().is_some_and(|a| !a.is_empty())
                && let Some(v) = to_toml(&excluded)
            {
                let params = out
                    .entry("params")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(p) = params {
                    p.entry("excluded_categories").or_insert(v);
                }
            }
            self.push("shields", out);
        }
    }

    fn storage(&mut self, value: &Value) {
        if let Some(path) = value
            .pointer("/backends/sql_default/db_path")
            .and_then(to_toml)
        {
            let mut storage = toml::Table::new();
            storage.insert("db_path".into(), path);
            self.table
                .insert("storage".into(), toml::Value::Table(storage));
        }
    }
}

/// A YAML (JSON) value as TOML; `None` for null (TOML has none).
fn to_toml(value: &Value) -> Option<toml::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(items.iter().filter_map(to_toml).collect()),
        Value::Object(map) => toml::Value::Table(
            map.iter()
                .filter_map(|(k, v)| to_toml(v).map(|v| (k.clone(), v)))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderType, RunConfig};

    /// Parts of Llama Stack's own `starter` run.yaml (its shape as 0.7 writes it).
    const STARTER: &str = r#"
version: 2
image_name: starter
apis: [agents, inference, safety, vector_io]
providers:
  inference:
  - provider_id: ${env.CEREBRAS_API_KEY:+cerebras}
    provider_type: remote::cerebras
    config:
      base_url: https://api.cerebras.ai/v1
  - provider_id: ${env.OLLAMA_URL:+ollama}
    provider_type: remote::ollama
    config:
      base_url: ${env.OLLAMA_URL:=http://localhost:11434/v1}
  - provider_id: ${env.VLLM_URL:+vllm}
    provider_type: remote::vllm
    config:
      base_url: ${env.VLLM_URL:=}
      max_tokens: ${env.VLLM_MAX_TOKENS:=4096}
      api_token: ${env.VLLM_API_TOKEN:=fake}
      tls_verify: ${env.VLLM_TLS_VERIFY:=true}
  - provider_id: fireworks
    provider_type: remote::fireworks
    config:
      api_key: ${env.FIREWORKS_API_KEY:=}
  - provider_id: sentence-transformers
    provider_type: inline::sentence-transformers
  vector_io:
  - provider_id: faiss
    provider_type: inline::faiss
  safety:
  - provider_id: llama-guard
    provider_type: inline::llama-guard
    config:
      excluded_categories: [S6]
  agents:
  - provider_id: meta-reference
    provider_type: inline::meta-reference
storage:
  backends:
    sql_default:
      type: sql_sqlite
      db_path: ${env.SQLITE_STORE_DIR:=~/.llama/distributions/starter}/sql_store.db
registered_resources:
  models:
  - model_id: all-minilm
    provider_id: ollama
    model_type: embedding
    metadata: {embedding_dimension: 384}
  shields:
  - shield_id: llama-guard
    provider_id: ${env.SAFETY_MODEL:+llama-guard}
    provider_shield_id: ${env.SAFETY_MODEL:=}
  - shield_id: code-scanner
    provider_id: ${env.CODE_SCANNER_MODEL:+code-scanner}
    provider_shield_id: ${env.CODE_SCANNER_MODEL:=}
  tool_groups:
  - toolgroup_id: builtin::rag
    provider_id: rag-runtime
server:
  port: 8321
vector_stores:
  default_provider_id: faiss
"#;

    #[test]
    fn llama_stacks_starter_runs_with_what_this_stack_has_and_names_the_rest() {
        let env = |name: &str| match name {
            "VLLM_URL" => Some("http://127.0.0.1:8000".to_owned()),
            "SAFETY_MODEL" => Some("vllm/guard".to_owned()),
            "HOME" => Some("/home/u".to_owned()),
            _ => None,
        };
        let t = translate(STARTER, "run.yaml", &env).unwrap();
        let warnings = t.warnings.join("\n");
        for named in [
            "remote::fireworks",
            "inline::sentence-transformers",
            "inline::faiss",
            "max_tokens, tls_verify",
            "registered_resources.tool_groups",
            "`vector_stores`",
        ] {
            assert!(warnings.contains(named), "{named} in:\n{warnings}");
        }
        assert!(
            !warnings.contains("cerebras"),
            "disabled providers need no warning:\n{warnings}"
        );
        let config = RunConfig::from_yaml_str_with_env(STARTER, "run.yaml", &env).unwrap();
        assert_eq!(config.name, "starter");
        let enabled: Vec<_> = config
            .enabled_providers()
            .map(|p| {
                (
                    p.provider_id.as_str(),
                    p.provider_type,
                    p.api_key.as_deref(),
                )
            })
            .collect();
        assert_eq!(enabled, [("vllm", ProviderType::Vllm, Some("fake"))]);
        assert_eq!(config.shields.len(), 1);
        assert_eq!(config.shields[0].provider_shield_id, "vllm/guard");
        assert_eq!(
            config.shields[0].params["excluded_categories"],
            serde_json::json!(["S6"])
        );
        assert_eq!(
            config.storage.db_path,
            std::path::PathBuf::from("/home/u/.llama/distributions/starter/sql_store.db")
        );
        assert_eq!(config.warnings, t.warnings);
    }

    #[test]
    fn stack_run_takes_a_run_yaml_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.yaml");
        std::fs::write(&path, STARTER).unwrap();
        let env = |name: &str| (name == "OLLAMA_URL").then(|| "http://127.0.0.1:11434".to_owned());
        let config = RunConfig::resolve_with_env(path.to_str().unwrap(), &env).unwrap();
        assert_eq!(config.name, "starter");
        let ids: Vec<_> = config
            .enabled_providers()
            .map(|p| p.provider_id.as_str())
            .collect();
        assert_eq!(ids, ["ollama"]);
        assert_eq!(config.models.len(), 1, "all-minilm on the enabled ollama");
        assert_eq!(config.models[0].provider_model_id, "all-minilm");
        assert!(config.shields.is_empty(), "SAFETY_MODEL unset");
        let missing =
            RunConfig::resolve_with_env(dir.path().join("nope.yaml").to_str().unwrap(), &env)
                .unwrap_err()
                .to_string();
        assert!(missing.contains("nope.yaml"), "{missing}");
    }

    #[test]
    fn merge_keys_are_applied_as_pyyaml_applies_them() {
        let text = "version: 2\nimage_name: merge\nx-common: &common\n  base_url: http://127.0.0.1:8080/v1\n  max_tokens: 8\nproviders:\n  inference:\n  - provider_id: llama-cpp\n    provider_type: remote::llama-cpp-server\n    config:\n      <<: *common\n      max_tokens: 64\n";
        let t = translate(text, "merge.yaml", &|_| None).unwrap();
        let provider = &t.table["providers"].as_array().unwrap()[0];
        assert_eq!(
            provider.get("base_url").and_then(|v| v.as_str()),
            Some("http://127.0.0.1:8080/v1"),
            "{provider:?}"
        );
    }

    #[test]
    fn bad_yaml_says_so() {
        let err = translate("providers: [", "bad.yaml", &|_| None).unwrap_err();
        assert!(err.to_string().contains("not valid YAML"), "{err}");
        let err = translate("- a list", "list.yaml", &|_| None).unwrap_err();
        assert!(err.to_string().contains("mapping"), "{err}");
    }
}
