//! What an adopting project tells the framework about its world.
//!
//! The recorder is a generic HTTP record/replay layer and the test runner a generic
//! parameterized runner; everything that belongs to one project (the names of its environment
//! variables, the command a replay miss suggests, the header that carries the test identity to a
//! server, which headers are worth recording, which body field the index files recordings under,
//! the normalization rules of its providers, the test runner's variables ([`RunnerEnv`]) and the
//! model roles its tests are parameterized over ([`ModelRole`])) is a [`Profile`] the project
//! supplies. [`Profile::llama_stack`] is this repository's, and the default; its names and role
//! handles are in [`llama_stack`].
//!
//! - [`ModelRole`] (declared) and [`Role`] (its handle in `needs`): a role's short id, label,
//!   variable, setup key and script flag.
//! - [`RunnerEnv`]: the suite, setup, subdirs, embedding dimension, force-restart, stack config
//!   and port variables of the runner.
//!
//! ```
//! use harness::profile::{EnvNames, ModelRole, Profile, Role, RunnerEnv};
//! use harness::recorder::Rules;
//!
//! // A weather client's profile: its own variables, no LLM rules.
//! let weather = Profile {
//!     name: "weather",
//!     env: EnvNames {
//!         mode: "WEATHER_TEST_MODE",
//!         recording_dir: "WEATHER_TEST_RECORDING_DIR",
//!         replay_timing: "WEATHER_TEST_REPLAY_TIMING",
//!         record_command: "WEATHER_TEST_RECORD_COMMAND",
//!         debug: "WEATHER_TEST_DEBUG",
//!         record_errors: "WEATHER_TEST_RECORD_ERRORS",
//!     },
//!     default_record_command: "WEATHER_TEST_MODE=record-if-missing cargo test {test_id}",
//!     context_header: "X-Weather-Test",
//!     secret_headers: &["x-weather-key"],
//!     request_headers: &["content-type", "accept"],
//!     response_headers: &["content-type"],
//!     index_field: "city",
//!     rules: Rules::none,
//!     runner: RunnerEnv {
//!         suite: "WEATHER_TEST_SUITE",
//!         setup: "WEATHER_TEST_SETUP",
//!         subdirs: "WEATHER_TEST_SUBDIRS",
//!         embedding_dimension: "WEATHER_TEST_EMBEDDING_DIMENSION",
//!         force_restart: "WEATHER_TEST_FORCE_SERVER_RESTART",
//!         stack_config: "WEATHER_TEST_SERVICE",
//!         legacy_stack_config: None,
//!         port: "WEATHER_PORT",
//!     },
//!     // Its tests run once per forecast source: `forecast/test_today.rs::rain[src=met]`.
//!     roles: &[ModelRole {
//!         id: "src",
//!         label: "forecast source",
//!         env: "WEATHER_TEST_SOURCE",
//!         setup_key: "source",
//!         flag: "--source",
//!     }],
//! };
//! const SOURCE: Role = Role::new("src");
//! assert!(weather.is_secret_header("X-Weather-Key"));
//! assert_eq!(weather.role(SOURCE).map(|r| r.env), Some("WEATHER_TEST_SOURCE"));
//! assert_eq!(Profile::default().env.mode, "LLAMA_STACK_TEST_INFERENCE_MODE");
//! ```

pub mod llama_stack;
mod roles;
mod runner_env;

pub use roles::{ModelRole, Role};
pub use runner_env::RunnerEnv;

use crate::recorder::Rules;

/// The environment variables that configure the recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvNames {
    /// Selects the mode; its presence turns the recorder on.
    pub mode: &'static str,
    /// Names the recordings directory.
    pub recording_dir: &'static str,
    /// Chooses replay timing: `instant` (default) or `recorded`.
    pub replay_timing: &'static str,
    /// Holds the command a replay miss suggests (`{test_id}` is substituted).
    pub record_command: &'static str,
    /// Makes the recorder log every key's inputs (`1`, `true`, `yes`).
    pub debug: &'static str,
    /// Makes the recorder store transient failures too (`1`, `true`, `yes`).
    pub record_errors: &'static str,
}

/// One project's names, lists and rules (see the [module documentation](self)).
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// The project's name, for messages.
    pub name: &'static str,
    /// The recorder's environment variables.
    pub env: EnvNames,
    /// The command a replay miss suggests when [`EnvNames::record_command`] is unset
    /// (`{test_id}` is replaced by the test id).
    pub default_record_command: &'static str,
    /// The HTTP header that carries the test identity to a server (a JSON object with
    /// [`TEST_ID_KEY`](crate::context::TEST_ID_KEY)); it is always recorded as a secret.
    pub context_header: &'static str,
    /// Request headers that are secret whatever their name says, besides the built-in ones
    /// (lower case).
    pub secret_headers: &'static [&'static str],
    /// Request headers worth recording besides secret ones, which are recorded as `<redacted>`
    /// (lower case).
    pub request_headers: &'static [&'static str],
    /// Response headers worth recording and replaying; every other one (dates, request ids) is
    /// dropped (lower case).
    pub response_headers: &'static [&'static str],
    /// The top-level string field of a JSON request body that fills the index's `model` column,
    /// which a replay miss uses to find the nearest recordings.
    pub index_field: &'static str,
    /// The built-in normalization rules, before a recordings directory's `normalization.toml`.
    pub rules: fn() -> Rules,
    /// The test runner's environment variables.
    pub runner: RunnerEnv,
    /// The model roles tests are parameterized over, in the order of their parameters in a test
    /// id (see [`ModelRole`]).
    pub roles: &'static [ModelRole],
}

impl Profile {
    /// Llama Stack's profile: the `LLAMA_STACK_TEST_*` variables, the
    /// `X-LlamaStack-Provider-Data` header, the OpenAI/Anthropic/MCP header lists, `model` as
    /// the index field and the LLM rule set ([`Rules::llm_defaults`]).
    /// Its runner variables are [`llama_stack::RUNNER_ENV`] and its roles [`llama_stack::ROLES`].
    pub fn llama_stack() -> Self {
        use llama_stack::*;
        Profile {
            name: "llama-stack",
            env: RECORDER_ENV,
            default_record_command: DEFAULT_RECORD_COMMAND,
            context_header: PROVIDER_DATA_HEADER,
            secret_headers: &["x-llamastack-provider-data"],
            request_headers: REQUEST_HEADERS,
            response_headers: RESPONSE_HEADERS,
            index_field: "model",
            rules: Rules::llm_defaults,
            runner: RUNNER_ENV,
            roles: ROLES,
        }
    }

    /// Whether a request header holds a secret under this profile: a built-in secret header
    /// ([`redact::is_secret_header`](crate::recorder::redact::is_secret_header)), one of
    /// [`Profile::secret_headers`], or the [`Profile::context_header`] (which can carry
    /// credentials next to the test id).
    pub fn is_secret_header(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.context_header)
            || crate::recorder::redact::is_secret_header_among(name, self.secret_headers)
    }

    /// This profile's declaration of `role`, if it declares it.
    pub fn role(&self, role: Role) -> Option<&'static ModelRole> {
        roles::find(self.roles, role)
    }
}

impl Default for Profile {
    /// [`Profile::llama_stack`], the profile of this repository.
    fn default() -> Self {
        Profile::llama_stack()
    }
}
