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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        Parser { source, env }.run_config(&table)
    }

    /// Parses a Llama Stack `run.yaml` ([`llama_stack_yaml`]), substituting variables from
    /// `env`; what the stack does not use is in [`RunConfig::warnings`].
    pub fn from_yaml_str_with_env(
        text: &str,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let translated = llama_stack_yaml::translate(text, source, env)?;
        let mut config = Parser { source, env }.run_config(&translated.table)?;
        config.warnings = translated.warnings;
        Ok(config)
    }

    /// The enabled providers.
    pub fn enabled_providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().filter(|p| p.is_enabled())
    }
}

/// `~/x` with the home directory in front; other paths as written.
fn expand_home(path: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match (path.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) if !home.is_empty() => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Walks the TOML table, substituting strings and naming fields in errors.
struct Parser<'a> {
    source: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            source_name: self.source.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn check_keys(
        &self,
        table: &toml::Table,
        prefix: &str,
        allowed: &[&str],
    ) -> Result<(), ConfigError> {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(self.err(
                    &join(prefix, key),
                    format!("unknown field; expected one of: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// A string field, substituted; `None` when absent.
    fn string(
        &self,
        table: &toml::Table,
        prefix: &str,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        let field = join(prefix, key);
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => subst::substitute(s, self.env)
                .map(Some)
                .map_err(|e| self.err(&field, e.to_string())),
            Some(other) => Err(self.err(
                &field,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    fn required_string(
        &self,
        table: &toml::Table,
        prefix: &str,
        key: &str,
    ) -> Result<String, ConfigError> {
        self.string(table, prefix, key)?
            .ok_or_else(|| self.err(&join(prefix, key), "missing required field"))
    }

    /// A boolean, written as one or as a string (`"${env.X:=true}"`) that substitutes to
    /// `true` or `false`.
    fn boolean(&self, value: &toml::Value, field: &str) -> Result<bool, ConfigError> {
        match value {
            toml::Value::Boolean(b) => Ok(*b),
            toml::Value::String(raw) => {
                let text =
                    subst::substitute(raw, self.env).map_err(|e| self.err(field, e.to_string()))?;
                match text.trim() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    other => {
                        Err(self.err(field, format!("expected true or false, found '{other}'")))
                    }
                }
            }
            other => Err(self.err(
                field,
                format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }

    /// An integer field that may also be written as a (substituted) string.
    fn integer(&self, value: &toml::Value, field: &str) -> Result<i64, ConfigError> {
        match value {
            toml::Value::Integer(i) => Ok(*i),
            toml::Value::String(s) => {
                let s =
                    subst::substitute(s, self.env).map_err(|e| self.err(field, e.to_string()))?;
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| self.err(field, format!("expected an integer, found \"{s}\"")))
            }
            other => Err(self.err(
                field,
                format!("expected an integer, found {}", other.type_str()),
            )),
        }
    }

    fn run_config(&self, root: &toml::Table) -> Result<RunConfig, ConfigError> {
        self.check_keys(
            root,
            "",
            &[
                "name",
                "server",
                "providers",
                "models",
                "storage",
                "shields",
            ],
        )?;
        let name = self.string(root, "", "name")?.unwrap_or_default();
        let server = match root.get("server") {
            None => ServerConfig::default(),
            Some(toml::Value::Table(t)) => self.server(t)?,
            Some(other) => {
                return Err(self.err(
                    "server",
                    format!("expected a table, found {}", other.type_str()),
                ));
            }
        };
        let providers = self
            .array_of_tables(root, "providers")?
            .into_iter()
            .enumerate()
            .map(|(i, t)| self.provider(t, &format!("providers[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, p) in providers.iter().enumerate() {
            if !p.is_enabled() {
                continue;
            }
            if providers[..i]
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
        for (i, t) in self
            .array_of_tables(root, "models")?
            .into_iter()
            .enumerate()
        {
            let prefix = format!("models[{i}]");
            let model = self.model(t, &prefix)?;
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
        let storage = match root.get("storage") {
            None => StorageConfig::default_for(&name, self.env),
            Some(toml::Value::Table(t)) => {
                self.check_keys(t, "storage", &["db_path", "store_chat_completions"])?;
                let mut storage = match self
                    .string(t, "storage", "db_path")?
                    .filter(|p| !p.is_empty())
                {
                    Some(p) => StorageConfig {
                        db_path: expand_home(&p, self.env),
                        store_chat_completions: true,
                    },
                    None => StorageConfig::default_for(&name, self.env),
                };
                if let Some(v) = t.get("store_chat_completions") {
                    storage.store_chat_completions =
                        self.boolean(v, "storage.store_chat_completions")?;
                }
                storage
            }
            Some(other) => {
                return Err(self.err(
                    "storage",
                    format!("expected a table, found {}", other.type_str()),
                ));
            }
        };
        let mut shields = Vec::new();
        for (i, t) in self
            .array_of_tables(root, "shields")?
            .into_iter()
            .enumerate()
        {
            if let Some(shield) = self.shield(t, &format!("shields[{i}]"))? {
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

    fn array_of_tables<'t>(
        &self,
        root: &'t toml::Table,
        key: &str,
    ) -> Result<Vec<&'t toml::Table>, ConfigError> {
        match root.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    toml::Value::Table(t) => Ok(t),
                    other => Err(self.err(
                        &format!("{key}[{i}]"),
                        format!("expected a table, found {}", other.type_str()),
                    )),
                })
                .collect(),
            Some(other) => Err(self.err(
                key,
                format!(
                    "expected an array of tables ([[{key}]]), found {}",
                    other.type_str()
                ),
            )),
        }
    }

    fn server(&self, t: &toml::Table) -> Result<ServerConfig, ConfigError> {
        self.check_keys(t, "server", &["host", "port"])?;
        let host = self
            .string(t, "server", "host")?
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        let port = match t.get("port") {
            None => DEFAULT_PORT,
            Some(v) => {
                let n = self.integer(v, "server.port")?;
                u16::try_from(n).map_err(|_| {
                    self.err("server.port", format!("{n} is not a port number (0-65535)"))
                })?
            }
        };
        Ok(ServerConfig { host, port })
    }

    fn provider(&self, t: &toml::Table, prefix: &str) -> Result<ProviderConfig, ConfigError> {
        self.check_keys(
            t,
            prefix,
            &["provider_id", "provider_type", "base_url", "api_key"],
        )?;
        let provider_id = self.required_string(t, prefix, "provider_id")?;
        if provider_id.contains('/') || provider_id.chars().any(char::is_whitespace) {
            return Err(self.err(
                &join(prefix, "provider_id"),
                format!("'{provider_id}' must not contain '/' or whitespace"),
            ));
        }
        let type_name = self.required_string(t, prefix, "provider_type")?;
        let provider_type = ProviderType::parse(&type_name).ok_or_else(|| {
            self.err(
                &join(prefix, "provider_type"),
                format!(
                    "unknown provider type '{type_name}'; expected one of: {}",
                    ProviderType::ALL.map(|(n, _)| n).join(", ")
                ),
            )
        })?;
        let raw_url = self.required_string(t, prefix, "base_url")?;
        let base_url = if raw_url.trim().is_empty() {
            None
        } else {
            Some(
                normalize_base_url(raw_url.trim(), provider_type)
                    .map_err(|m| self.err(&join(prefix, "base_url"), m))?,
            )
        };
        let api_key = self.string(t, prefix, "api_key")?.filter(|k| !k.is_empty());
        Ok(ProviderConfig {
            provider_id,
            provider_type,
            base_url,
            api_key,
        })
    }

    /// A `[[shields]]` entry; `None` when its `provider_shield_id` (or `provider_id`) resolves
    /// to empty, as Llama Stack's `${env.SAFETY_MODEL:=}` disables it.
    fn shield(&self, t: &toml::Table, prefix: &str) -> Result<Option<ShieldConfig>, ConfigError> {
        self.check_keys(
            t,
            prefix,
            &["shield_id", "provider_id", "provider_shield_id", "params"],
        )?;
        let shield_id = self.required_string(t, prefix, "shield_id")?;
        let provider_id = self
            .string(t, prefix, "provider_id")?
            .unwrap_or_else(|| "llama-guard".to_owned());
        let model = self
            .string(t, prefix, "provider_shield_id")?
            .unwrap_or_default();
        if model.is_empty() || provider_id.is_empty() {
            return Ok(None);
        }
        if shield_id.is_empty() {
            return Err(self.err(&join(prefix, "shield_id"), "must not be empty"));
        }
        if provider_id != "llama-guard" {
            return Err(self.err(
                &join(prefix, "provider_id"),
                format!("unknown safety provider '{provider_id}'; expected llama-guard"),
            ));
        }
        let params_field = join(prefix, "params");
        let params = match t.get("params") {
            None => Map::new(),
            Some(v @ toml::Value::Table(_)) => match self.json(v, &params_field)? {
                Value::Object(o) => o,
                _ => Map::new(),
            },
            Some(other) => {
                return Err(self.err(
                    &params_field,
                    format!("expected a table, found {}", other.type_str()),
                ));
            }
        };
        Ok(Some(ShieldConfig {
            shield_id,
            provider_id,
            provider_shield_id: model,
            params,
        }))
    }

    fn model(&self, t: &toml::Table, prefix: &str) -> Result<ModelConfig, ConfigError> {
        self.check_keys(
            t,
            prefix,
            &["provider_id", "provider_model_id", "model_type", "metadata"],
        )?;
        let provider_id = self.required_string(t, prefix, "provider_id")?;
        let provider_model_id = self.required_string(t, prefix, "provider_model_id")?;
        if provider_model_id.is_empty() && !provider_id.is_empty() {
            return Err(self.err(&join(prefix, "provider_model_id"), "must not be empty"));
        }
        let model_type = match self.string(t, prefix, "model_type")?.as_deref() {
            None | Some("llm") => ModelType::Llm,
            Some("embedding") => ModelType::Embedding,
            Some(other) => {
                return Err(self.err(
                    &join(prefix, "model_type"),
                    format!("unknown model type '{other}'; expected llm or embedding"),
                ));
            }
        };
        let meta_field = join(prefix, "metadata");
        let mut metadata = match t.get("metadata") {
            None => Map::new(),
            Some(toml::Value::Table(m)) => {
                match self.json(&toml::Value::Table(m.clone()), &meta_field)? {
                    Value::Object(o) => o,
                    _ => Map::new(),
                }
            }
            Some(other) => {
                return Err(self.err(
                    &meta_field,
                    format!("expected a table, found {}", other.type_str()),
                ));
            }
        };
        if let Some(raw) = t.get("metadata").and_then(|m| m.get("embedding_dimension")) {
            let field = format!("{meta_field}.embedding_dimension");
            let n = self.integer(raw, &field)?;
            if n <= 0 {
                return Err(self.err(&field, format!("expected a positive integer, found {n}")));
            }
            metadata.insert("embedding_dimension".into(), Value::from(n));
        }
        Ok(ModelConfig {
            provider_id,
            provider_model_id,
            model_type,
            metadata,
        })
    }

    /// Converts a TOML value to JSON, substituting strings.
    fn json(&self, v: &toml::Value, field: &str) -> Result<Value, ConfigError> {
        Ok(match v {
            toml::Value::String(s) => Value::String(
                subst::substitute(s, self.env).map_err(|e| self.err(field, e.to_string()))?,
            ),
            toml::Value::Integer(i) => Value::from(*i),
            toml::Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| self.err(field, "non-finite numbers are not allowed"))?,
            toml::Value::Boolean(b) => Value::Bool(*b),
            toml::Value::Datetime(d) => Value::String(d.to_string()),
            toml::Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.json(x, &format!("{field}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => Value::Object(
                t.iter()
                    .map(|(k, x)| Ok((k.clone(), self.json(x, &join(field, k))?)))
                    .collect::<Result<_, ConfigError>>()?,
            ),
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
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
}
