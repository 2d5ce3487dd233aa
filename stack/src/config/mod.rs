//! The run config: which providers the stack talks to and which models it registers.
//!
//! A run config is a TOML file (or a built-in distribution, see [`distributions`]):
//!
//! ```toml
//! name = "my-stack"                       # optional, defaults to the file name
//!
//! [server]                                # optional
//! host = "127.0.0.1"                      # default 127.0.0.1
//! port = 8321                             # default 8321
//!
//! [[providers]]
//! provider_id = "llamacpp"                # the first part of model ids: llamacpp/<model>
//! provider_type = "remote::llamacpp"      # remote::openai | remote::ollama | remote::vllm | remote::llamacpp
//! base_url = "${env.LLAMACPP_URL:=}"      # empty => provider disabled
//! api_key = "${env.LLAMACPP_API_KEY:=}"   # optional, empty => none
//!
//! [[models]]                              # optional: models to register besides the discovered ones
//! provider_id = "llamacpp"
//! provider_model_id = "all-minilm-l6-v2"
//! model_type = "embedding"                # llm (default) | embedding
//! metadata = { embedding_dimension = 384 }
//! ```
//!
//! Every string may use `${env.VAR}`, `${env.VAR:=default}` and `${env.VAR:+value}` (see
//! [`subst`]); `port` and `embedding_dimension` may be strings so that they can be substituted.
//! A provider whose `base_url` or `provider_id` resolves to the empty string is disabled, and
//! models registered for it are skipped. For `remote::ollama`, `remote::vllm` and
//! `remote::llamacpp` the base URL is accepted with or without its trailing `/v1`.

pub mod distributions;
pub mod llama_stack_yaml;
mod raw;
pub mod subst;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use url::Url;

/// Default address the server binds to.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default port the server listens on.
pub const DEFAULT_PORT: u16 = 8321;

/// A parsed and substituted run config.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Name of the configuration (distribution name or file stem).
    pub name: String,
    /// Where the config came from (file path or `built-in distribution 'starter'`), for messages.
    pub source: String,
    /// Server address.
    pub server: ServerConfig,
    /// Every provider of the config, enabled or not, in file order.
    pub providers: Vec<ProviderConfig>,
    /// Models registered in the config for enabled providers, in file order.
    pub models: Vec<ModelConfig>,
    /// Where the stack keeps what it stores (responses).
    pub storage: StorageConfig,
    /// Safety shields registered at start (those whose `provider_shield_id` is not empty).
    pub shields: Vec<ShieldConfig>,
    /// What the config says that this stack does not use (a Llama Stack `run.yaml`'s other APIs,
    /// provider types and keys), one line each; `stack run` logs them at start.
    pub warnings: Vec<String>,
}

/// A `[[shields]]` entry: a safety shield and the guard model it runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct ShieldConfig {
    /// The id callers name (`llama-guard`).
    pub shield_id: String,
    /// The safety provider (`llama-guard`, the only one: `inline::llama-guard`).
    pub provider_id: String,
    /// The guard model, a stack model id (`llamacpp/qwen2.5-coder-0.5b`).
    pub provider_shield_id: String,
    /// Provider parameters (e.g. `excluded_categories = ["S6"]`).
    pub params: Map<String, Value>,
}

/// The `[storage]` table: the SQLite database of stored responses (and their input items) and
/// of stored chat completions (Llama Stack's inference store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The database file (created with its directory when missing).
    pub db_path: PathBuf,
    /// Whether every chat completion is stored, for `GET /v1/chat/completions` (default: yes,
    /// as in Llama Stack).
    pub store_chat_completions: bool,
}

impl StorageConfig {
    /// Llama Stack's default place: `$SQLITE_STORE_DIR/sql_store.db`, else
    /// `~/.llama/distributions/<name>/sql_store.db`.
    pub fn default_for(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let dir = match env("SQLITE_STORE_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                let home = env("HOME")
                    .filter(|h| !h.is_empty())
                    .map_or_else(|| PathBuf::from("."), PathBuf::from);
                let name = if name.is_empty() { "default" } else { name };
                home.join(".llama").join("distributions").join(name)
            }
        };
        Self {
            db_path: dir.join("sql_store.db"),
            store_chat_completions: true,
        }
    }
}

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
        }
    }
}

/// The kinds of remote provider; all speak the OpenAI HTTP API and differ only in URL and auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum ProviderType {
    /// `remote::openai`: OpenAI or any OpenAI-compatible endpoint, base URL used as given.
    OpenAi,
    /// `remote::ollama`: Ollama's `/v1` API.
    Ollama,
    /// `remote::vllm`: vLLM's OpenAI server.
    Vllm,
    /// `remote::llamacpp`: llama.cpp's `llama-server`.
    LlamaCpp,
}

impl ProviderType {
    /// Every provider type with its config spelling.
    pub const ALL: [(&'static str, ProviderType); 4] = [
        ("remote::openai", ProviderType::OpenAi),
        ("remote::ollama", ProviderType::Ollama),
        ("remote::vllm", ProviderType::Vllm),
        ("remote::llamacpp", ProviderType::LlamaCpp),
    ];

    /// Parses the config spelling (`remote::llama-cpp-server` is accepted for llama.cpp too).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "remote::llama-cpp-server" {
            return Some(Self::LlamaCpp);
        }
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, t)| *t)
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "remote::openai",
            Self::Ollama => "remote::ollama",
            Self::Vllm => "remote::vllm",
            Self::LlamaCpp => "remote::llamacpp",
        }
    }

    /// The name Llama Stack gives this provider type (`GET /v1/providers`): the config spelling,
    /// except llama.cpp, which Llama Stack calls `remote::llama-cpp-server`.
    pub fn llama_stack_name(self) -> &'static str {
        match self {
            Self::LlamaCpp => "remote::llama-cpp-server",
            other => other.as_str(),
        }
    }

    /// Whether the OpenAI API of this provider always lives under `/v1` of the server URL, so
    /// that a base URL without it gets `/v1` appended.
    pub fn api_under_v1(self) -> bool {
        !matches!(self, Self::OpenAi)
    }
}

/// One `[[providers]]` entry. Its `Debug` output hides the API key.
#[derive(Clone, PartialEq)]
pub struct ProviderConfig {
    /// Provider id, the prefix of its model ids. Empty when disabled by substitution.
    pub provider_id: String,
    /// Kind of provider.
    pub provider_type: ProviderType,
    /// Base URL of its OpenAI API (normalized, ending in `/v1` where applicable, no trailing
    /// slash); `None` when the provider is disabled.
    pub base_url: Option<Url>,
    /// Bearer token, if any.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider_id", &self.provider_id)
            .field("provider_type", &self.provider_type)
            .field("base_url", &self.base_url.as_ref().map(Url::as_str))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ProviderConfig {
    /// Whether the provider takes part in this run.
    pub fn is_enabled(&self) -> bool {
        self.base_url.is_some() && !self.provider_id.is_empty()
    }
}

/// The kinds of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum ModelType {
    /// A language model (chat and completions).
    Llm,
    /// An embedding model.
    Embedding,
}

impl ModelType {
    /// The config and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::Embedding => "embedding",
        }
    }
}

/// One `[[models]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The provider serving the model.
    pub provider_id: String,
    /// The model's id at the provider.
    pub provider_model_id: String,
    /// Kind of model.
    pub model_type: ModelType,
    /// Free-form metadata (`embedding_dimension` is checked to be a positive integer).
    pub metadata: Map<String, Value>,
}

impl ModelConfig {
    /// The stack-wide model id, `provider_id/provider_model_id`.
    pub fn model_id(&self) -> String {
        format!("{}/{}", self.provider_id, self.provider_model_id)
    }

    /// `metadata.embedding_dimension`, if given.
    pub fn embedding_dimension(&self) -> Option<u64> {
        self.metadata
            .get("embedding_dimension")
            .and_then(Value::as_u64)
    }
}

/// Why a run config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read run config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("run config {source_name} is not valid TOML: {message}")]
    Syntax {
        /// Where the config came from.
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file is not valid YAML (a Llama Stack `run.yaml`).
    #[error("run config {source_name} is not valid YAML: {message}")]
    YamlSyntax {
        /// Where the config came from.
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field is missing or has a bad value.
    #[error("run config {source_name}: field `{field}`: {message}")]
    Field {
        /// Where the config came from.
        source_name: String,
        /// Path of the field, e.g. `providers[1].base_url`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// `stack run X` where X is neither a built-in nor a file.
    #[error(
        "'{target}' is neither a built-in distribution (available: {known}) nor a run-config file"
    )]
    UnknownTarget {
        /// What was asked for.
        target: String,
        /// The built-in distributions.
        known: String,
    },
}

/// Looks variables up in the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl RunConfig {
    /// Resolves `stack run`'s argument: an existing file is loaded as a run config, otherwise a
    /// built-in distribution of that name is used. Uses the process environment.
    pub fn resolve(target: &str) -> Result<RunConfig, ConfigError> {
        Self::resolve_with_env(target, &process_env)
    }

    /// [`RunConfig::resolve`] with an explicit environment.
    pub fn resolve_with_env(
        target: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let path = Path::new(target);
        if path.is_file() {
            return Self::from_file_with_env(path, env);
        }
        if let Some(text) = distributions::get(target) {
            return Self::from_toml_str_with_env(
                text,
                &format!("built-in distribution '{target}'"),
                env,
            );
        }
        if target.ends_with(".toml")
            || llama_stack_yaml::is_yaml(path)
            || target.contains(std::path::MAIN_SEPARATOR)
        {
            // Looks like a path: report the read error rather than "unknown distribution".
            return Self::from_file_with_env(path, env);
        }
        Err(ConfigError::UnknownTarget {
            target: target.to_owned(),
            known: distributions::NAMES.join(", "),
        })
    }

    /// A built-in distribution by name, with the process environment.
    pub fn distribution(name: &str) -> Result<RunConfig, ConfigError> {
        let text = distributions::get(name).ok_or_else(|| ConfigError::UnknownTarget {
            target: name.to_owned(),
            known: distributions::NAMES.join(", "),
        })?;
        Self::from_toml_str_with_env(
            text,
            &format!("built-in distribution '{name}'"),
            &process_env,
        )
    }

    /// Loads a TOML run-config file with the process environment.
    pub fn from_file(path: &Path) -> Result<RunConfig, ConfigError> {
        Self::from_file_with_env(path, &process_env)
    }

    /// Loads a TOML run-config file with an explicit environment.
    pub fn from_file_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let source = path.display().to_string();
        let mut config = if llama_stack_yaml::is_yaml(path) {
            Self::from_yaml_str_with_env(&text, &source, env)?
        } else {
            Self::from_toml_str_with_env(&text, &source, env)?
        };
        if config.name.is_empty() {
            let unnamed_default = StorageConfig::default_for("", env);
            config.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if config.storage == unnamed_default {
                config.storage = StorageConfig::default_for(&config.name, env);
            }
        }
        Ok(config)
    }

    /// Parses TOML text with the process environment; `source` names it in errors.
    pub fn from_toml_str(text: &str, source: &str) -> Result<RunConfig, ConfigError> {
        Self::from_toml_str_with_env(text, source, &process_env)
    }

    /// Parses TOML text, substituting variables from `env`; `source` names it in errors.
    pub fn from_toml_str_with_env(
        text: &str,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    source_name: source.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        Self::from_table(table, source, env)
    }

    /// Parses a Llama Stack `run.yaml` ([`llama_stack_yaml`]), substituting variables from
    /// `env`; what the stack does not use is in [`RunConfig::warnings`].
    pub fn from_yaml_str_with_env(
        text: &str,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let translated = llama_stack_yaml::translate(text, source, env)?;
        let mut config = Self::from_table(translated.table, source, env)?;
        config.warnings = translated.warnings;
        Ok(config)
    }

    /// Substitutes the strings of a run config in TOML shape, deserializes and checks it.
    fn from_table(
        table: toml::Table,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let checker = raw::Checker { source, env };
        let mut value = toml::Value::Table(table);
        subst::substitute_all(&mut value, env)
            .map_err(|e| checker.err(&e.path, e.source.to_string()))?;
        let raw: raw::RawRunConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            checker.err(&field, e.inner().message())
        })?;
        checker.run_config(raw)
    }

    /// The enabled providers.
    pub fn enabled_providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().filter(|p| p.is_enabled())
    }
}

/// Parses a provider base URL, strips trailing slashes and appends `/v1` for providers whose
/// API always lives there.
pub fn normalize_base_url(raw: &str, provider_type: ProviderType) -> Result<Url, String> {
    let mut url = Url::parse(raw).map_err(|e| format!("'{raw}' is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{raw}' must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{raw}' has no host"));
    }
    let mut path = url.path().trim_end_matches('/').to_owned();
    if provider_type.api_under_v1() && !path.ends_with("/v1") {
        path.push_str("/v1");
    }
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn parse(
        text: &str,
        pairs: &'static [(&'static str, &'static str)],
    ) -> Result<RunConfig, ConfigError> {
        RunConfig::from_toml_str_with_env(text, "test.toml", &env_of(pairs))
    }

    const FULL: &str = r#"
name = "t"
[server]
host = "${env.HOST:=127.0.0.1}"
port = "${env.PORT:=9000}"

[[providers]]
provider_id = "llamacpp"
provider_type = "remote::llamacpp"
base_url = "${env.LLAMACPP_URL}"

[[providers]]
provider_id = "vllm"
provider_type = "remote::vllm"
base_url = "${env.VLLM_URL:=}"
api_key = "${env.VLLM_API_TOKEN:=}"

[[models]]
provider_id = "llamacpp"
provider_model_id = "all-minilm-l6-v2"
model_type = "embedding"
metadata = { embedding_dimension = "${env.DIM:=384}", note = "x" }

[[models]]
provider_id = "vllm"
provider_model_id = "skipped"
"#;

    #[test]
    fn parses_substitutes_and_normalizes() {
        let c = parse(
            FULL,
            &[("LLAMACPP_URL", "http://127.0.0.1:8080/"), ("PORT", "9100")],
        )
        .unwrap();
        assert_eq!(c.name, "t");
        assert_eq!(
            c.server,
            ServerConfig {
                host: "127.0.0.1".into(),
                port: 9100
            }
        );
        assert_eq!(c.providers.len(), 2);
        let l = &c.providers[0];
        assert!(l.is_enabled());
        assert_eq!(
            l.base_url.as_ref().unwrap().as_str(),
            "http://127.0.0.1:8080/v1"
        );
        assert!(!c.providers[1].is_enabled(), "empty base_url disables vllm");
        assert_eq!(
            c.models.len(),
            1,
            "models of disabled providers are skipped"
        );
        assert_eq!(c.models[0].model_id(), "llamacpp/all-minilm-l6-v2");
        assert_eq!(c.models[0].model_type, ModelType::Embedding);
        assert_eq!(c.models[0].embedding_dimension(), Some(384));
        assert_eq!(c.models[0].metadata["note"], "x");
    }

    #[test]
    fn v1_suffix_is_accepted_with_or_without() {
        for raw in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/v1",
            "http://h:1/v1/",
        ] {
            assert_eq!(
                normalize_base_url(raw, ProviderType::Ollama)
                    .unwrap()
                    .as_str(),
                "http://h:1/v1"
            );
        }
        assert_eq!(
            normalize_base_url("https://api.example.com/openai/", ProviderType::OpenAi)
                .unwrap()
                .as_str(),
            "https://api.example.com/openai"
        );
        assert!(normalize_base_url("ftp://h", ProviderType::OpenAi).is_err());
        assert!(normalize_base_url("not a url", ProviderType::OpenAi).is_err());
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = parse(FULL, &[]).unwrap_err().to_string();
        assert!(
            e.contains("test.toml")
                && e.contains("providers[0].base_url")
                && e.contains("LLAMACPP_URL"),
            "{e}"
        );

        let bad_type =
            "[[providers]]\nprovider_id='x'\nprovider_type='remote::nope'\nbase_url='http://h'";
        let e = parse(bad_type, &[]).unwrap_err().to_string();
        assert!(
            e.contains("providers[0].provider_type") && e.contains("remote::nope"),
            "{e}"
        );

        let e = parse("[server]\nport = 70000", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.port"), "{e}");

        let e = parse("[server]\nprot = 1", &[]).unwrap_err().to_string();
        assert!(
            e.contains("server.prot") && e.contains("unknown field"),
            "{e}"
        );

        let e = parse(
            "[[models]]\nprovider_id='ghost'\nprovider_model_id='m'",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("models[0].provider_id") && e.contains("ghost"),
            "{e}"
        );

        let e = parse(
            "[[providers]]\nprovider_id='x'\nprovider_type='remote::openai'",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("providers[0].base_url") && e.contains("missing"),
            "{e}"
        );

        let e = parse("server = [", &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");

        let dup = "[[providers]]\nprovider_id='a'\nprovider_type='remote::openai'\nbase_url='http://h'\n\
                   [[providers]]\nprovider_id='a'\nprovider_type='remote::openai'\nbase_url='http://g'";
        let e = parse(dup, &[]).unwrap_err().to_string();
        assert!(e.contains("providers[1].provider_id"), "{e}");
    }

    #[test]
    fn shipped_example_config_parses() {
        let text = include_str!("../../configs/llamacpp.toml");
        let c = parse(text, &[]).unwrap();
        let p = &c.providers[0];
        assert_eq!(
            p.base_url.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:8080/v1")
        );
        assert_eq!(c.models[0].embedding_dimension(), Some(384));
        let keyed = parse(text, &[("LLAMACPP_API_KEY", "secret")]).unwrap();
        let shown = format!("{keyed:?}");
        assert!(
            !shown.contains("secret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn resolve_prefers_files_then_builtins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, "[server]\nport = 1234\n").unwrap();
        let c = RunConfig::resolve_with_env(path.to_str().unwrap(), &env_of(&[])).unwrap();
        assert_eq!((c.name.as_str(), c.server.port), ("mine", 1234));

        let c = RunConfig::resolve_with_env("starter", &env_of(&[])).unwrap();
        assert_eq!(c.name, "starter");
        assert_eq!(c.enabled_providers().count(), 0);

        let e = RunConfig::resolve_with_env("nope", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("starter"), "{e}");
        let missing = dir.path().join("missing.toml");
        let e = RunConfig::resolve_with_env(missing.to_str().unwrap(), &env_of(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }
    #[test]
    fn serde_errors_and_nested_substitutions_name_their_key() {
        let e = parse("[server]\nport = true", &[]).unwrap_err().to_string();
        assert!(e.contains("field `server.port`"), "{e}");
        let nested = "[[providers]]\nprovider_id='a'\nprovider_type='remote::openai'\nbase_url='http://h'\n\
                      [[models]]\nprovider_id='a'\nprovider_model_id='m'\nmetadata={a=['${env.NOPE}']}";
        let e = parse(nested, &[]).unwrap_err().to_string();
        assert!(
            e.contains("field `models[0].metadata.a[0]`") && e.contains("NOPE"),
            "{e}"
        );
    }
}
