//! The TOML run config's shape as serde types (unknown keys are errors), and the checks that
//! turn it into a [`RunConfig`]: ids, provider types, URLs, duplicates, models of unknown
//! providers. Strings are substituted before (see [`super::subst::substitute_all`]).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, de};
use serde_json::{Map, Value};

use super::{
    ConfigError, DEFAULT_HOST, DEFAULT_PORT, ModelConfig, ModelType, ProviderConfig, ProviderType,
    RunConfig, ServerConfig, ShieldConfig, StorageConfig, normalize_base_url,
};

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawRunConfig {
    #[serde(default)]
    name: String,
    server: Option<RawServer>,
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    models: Vec<RawModel>,
    storage: Option<RawStorage>,
    #[serde(default)]
    shields: Vec<RawShield>,
}

/// `[server]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawServer {
    host: Option<String>,
    #[serde(default, deserialize_with = "port")]
    port: Option<u16>,
}

/// One `[[providers]]` entry; required keys are options so that their absence names the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawProvider {
    provider_id: Option<String>,
    provider_type: Option<ProviderType>,
    base_url: Option<String>,
    api_key: Option<String>,
}

/// One `[[models]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawModel {
    provider_id: Option<String>,
    provider_model_id: Option<String>,
    model_type: Option<ModelType>,
    metadata: Option<toml::Table>,
}

/// One `[[shields]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawShield {
    shield_id: Option<String>,
    provider_id: Option<String>,
    provider_shield_id: Option<String>,
    params: Option<toml::Table>,
}

/// `[storage]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawStorage {
    db_path: Option<String>,
    #[serde(default, deserialize_with = "boolean")]
    store_chat_completions: Option<bool>,
}

impl TryFrom<String> for ProviderType {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Self::parse(&name).ok_or_else(|| {
            format!(
                "unknown provider type '{name}'; expected one of: {}",
                Self::ALL.map(|(n, _)| n).join(", ")
            )
        })
    }
}

impl TryFrom<String> for ModelType {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "llm" => Ok(Self::Llm),
            "embedding" => Ok(Self::Embedding),
            other => Err(format!(
                "unknown model type '{other}'; expected llm or embedding"
            )),
        }
    }
}

/// An integer written as one or as a (substituted) string, e.g. `port = "${env.PORT:=8321}"`.
struct IntegerOrText;

impl de::Visitor<'_> for IntegerOrText {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<i64, E> {
        Ok(n)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<i64, E> {
        i64::try_from(n).map_err(|_| E::custom(format!("{n} is too large")))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<i64, E> {
        s.trim()
            .parse()
            .map_err(|_| E::custom(format!("expected an integer, found \"{s}\"")))
    }
}

/// A boolean written as one or as a string that substitutes to `true` or `false`.
struct BoolOrText;

impl de::Visitor<'_> for BoolOrText {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("true or false")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
        Ok(b)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        match s.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(E::custom(format!(
                "expected true or false, found '{other}'"
            ))),
        }
    }
}

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let n = d.deserialize_any(IntegerOrText)?;
    u16::try_from(n)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{n} is not a port number (0-65535)")))
}

fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(BoolOrText).map(Some)
}

/// Turns the deserialized file into a [`RunConfig`], naming the key of each error.
pub(super) struct Checker<'a> {
    /// Where the config came from, for messages.
    pub(super) source: &'a str,
    /// The environment (for the storage's default place and `~`).
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Checker<'_> {
    /// A [`ConfigError::Field`] for `field`.
    pub(super) fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            source_name: self.source.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn required(&self, value: Option<String>, field: &str) -> Result<String, ConfigError> {
        value.ok_or_else(|| self.err(field, "missing required field"))
    }

    /// Checks the file and builds the config.
    pub(super) fn run_config(&self, raw: RawRunConfig) -> Result<RunConfig, ConfigError> {
        let name = raw.name;
        let server = raw
            .server
            .map_or_else(ServerConfig::default, |s| ServerConfig {
                host: s
                    .host
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| DEFAULT_HOST.to_owned()),
                port: s.port.unwrap_or(DEFAULT_PORT),
            });
        let providers = raw
            .providers
            .into_iter()
            .enumerate()
            .map(|(i, p)| self.provider(p, &format!("providers[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, p) in providers.iter().enumerate() {
            if p.is_enabled()
                && providers[..i]
                    .iter()
                    .any(|q| q.is_enabled() && q.provider_id == p.provider_id)
            {
                return Err(self.err(
                    &format!("providers[{i}].provider_id"),
                    format!(
                        "provider id '{}' is used by more than one enabled provider",
                        p.provider_id
                    ),
                ));
            }
        }
        let mut models = Vec::new();
        for (i, m) in raw.models.into_iter().enumerate() {
            let prefix = format!("models[{i}]");
            let model = self.model(m, &prefix)?;
            let declared = providers.iter().any(|p| p.provider_id == model.provider_id);
            let enabled = providers
                .iter()
                .any(|p| p.is_enabled() && p.provider_id == model.provider_id);
            if enabled {
                models.push(model);
            } else if !declared && !model.provider_id.is_empty() {
                return Err(self.err(
                    &format!("{prefix}.provider_id"),
                    format!(
                        "no provider with id '{}' in [[providers]]",
                        model.provider_id
                    ),
                ));
            }
        }
        let storage = match raw.storage {
            None => StorageConfig::default_for(&name, self.env),
            Some(s) => {
                let mut storage = match s.db_path.filter(|p| !p.is_empty()) {
                    Some(p) => StorageConfig {
                        db_path: expand_home(&p, self.env),
                        store_chat_completions: true,
                    },
                    None => StorageConfig::default_for(&name, self.env),
                };
                if let Some(store) = s.store_chat_completions {
                    storage.store_chat_completions = store;
                }
                storage
            }
        };
        let mut shields = Vec::new();
        for (i, s) in raw.shields.into_iter().enumerate() {
            if let Some(shield) = self.shield(s, &format!("shields[{i}]"))? {
                shields.push(shield);
            }
        }
        Ok(RunConfig {
            name,
            source: self.source.to_owned(),
            server,
            providers,
            models,
            storage,
            shields,
            warnings: Vec::new(),
        })
    }

    fn provider(&self, p: RawProvider, prefix: &str) -> Result<ProviderConfig, ConfigError> {
        let provider_id = self.required(p.provider_id, &format!("{prefix}.provider_id"))?;
        if provider_id.contains('/') || provider_id.chars().any(char::is_whitespace) {
            return Err(self.err(
                &format!("{prefix}.provider_id"),
                format!("'{provider_id}' must not contain '/' or whitespace"),
            ));
        }
        let provider_type = p.provider_type.ok_or_else(|| {
            self.err(&format!("{prefix}.provider_type"), "missing required field")
        })?;
        let raw_url = self.required(p.base_url, &format!("{prefix}.base_url"))?;
        let base_url = if raw_url.trim().is_empty() {
            None
        } else {
            Some(
                normalize_base_url(raw_url.trim(), provider_type)
                    .map_err(|m| self.err(&format!("{prefix}.base_url"), m))?,
            )
        };
        Ok(ProviderConfig {
            provider_id,
            provider_type,
            base_url,
            api_key: p.api_key.filter(|k| !k.is_empty()),
        })
    }

    /// A `[[shields]]` entry; `None` when its `provider_shield_id` (or `provider_id`) resolves
    /// to empty, as Llama Stack's `${env.SAFETY_MODEL:=}` disables it.
    fn shield(&self, s: RawShield, prefix: &str) -> Result<Option<ShieldConfig>, ConfigError> {
        let shield_id = self.required(s.shield_id, &format!("{prefix}.shield_id"))?;
        let provider_id = s.provider_id.unwrap_or_else(|| "llama-guard".to_owned());
        let model = s.provider_shield_id.unwrap_or_default();
        if model.is_empty() || provider_id.is_empty() {
            return Ok(None);
        }
        if shield_id.is_empty() {
            return Err(self.err(&format!("{prefix}.shield_id"), "must not be empty"));
        }
        if provider_id != "llama-guard" {
            return Err(self.err(
                &format!("{prefix}.provider_id"),
                format!("unknown safety provider '{provider_id}'; expected llama-guard"),
            ));
        }
        let params = match s.params {
            None => Map::new(),
            Some(t) => self.json_table(t, &format!("{prefix}.params"))?,
        };
        Ok(Some(ShieldConfig {
            shield_id,
            provider_id,
            provider_shield_id: model,
            params,
        }))
    }

    fn model(&self, m: RawModel, prefix: &str) -> Result<ModelConfig, ConfigError> {
        let provider_id = self.required(m.provider_id, &format!("{prefix}.provider_id"))?;
        let provider_model_id =
            self.required(m.provider_model_id, &format!("{prefix}.provider_model_id"))?;
        if provider_model_id.is_empty() && !provider_id.is_empty() {
            return Err(self.err(&format!("{prefix}.provider_model_id"), "must not be empty"));
        }
        let meta_field = format!("{prefix}.metadata");
        let mut metadata = match m.metadata {
            None => Map::new(),
            Some(t) => self.json_table(t, &meta_field)?,
        };
        if let Some(raw) = metadata.get("embedding_dimension") {
            let field = format!("{meta_field}.embedding_dimension");
            let n = match raw {
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| self.err(&field, format!("expected an integer, found \"{s}\"")))?,
                other => other.as_i64().ok_or_else(|| {
                    self.err(&field, format!("expected an integer, found {other}"))
                })?,
            };
            if n <= 0 {
                return Err(self.err(&field, format!("expected a positive integer, found {n}")));
            }
            metadata.insert("embedding_dimension".into(), Value::from(n));
        }
        Ok(ModelConfig {
            provider_id,
            provider_model_id,
            model_type: m.model_type.unwrap_or(ModelType::Llm),
            metadata,
        })
    }

    /// A free-form TOML table (already substituted) as a JSON object.
    fn json_table(
        &self,
        table: toml::Table,
        field: &str,
    ) -> Result<Map<String, Value>, ConfigError> {
        table
            .into_iter()
            .map(|(k, v)| {
                let value = self.json(v, &format!("{field}.{k}"))?;
                Ok((k, value))
            })
            .collect()
    }

    fn json(&self, v: toml::Value, field: &str) -> Result<Value, ConfigError> {
        Ok(match v {
            toml::Value::String(s) => Value::String(s),
            toml::Value::Integer(i) => Value::from(i),
            toml::Value::Float(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| self.err(field, "non-finite numbers are not allowed"))?,
            toml::Value::Boolean(b) => Value::Bool(b),
            toml::Value::Datetime(d) => Value::String(d.to_string()),
            toml::Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| self.json(x, &format!("{field}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => Value::Object(self.json_table(t, field)?),
        })
    }
}

/// `~/x` with the home directory in front; other paths as written.
fn expand_home(path: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match (path.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) if !home.is_empty() => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
