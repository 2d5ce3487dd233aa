//! What an adopting project tells the framework about its world.
//!
//! The recorder is a generic HTTP record/replay layer; everything that belongs to one project (the
//! names of its environment variables, the command a replay miss suggests, the header that carries
//! the test identity to a server, which headers are worth recording, which body field the index
//! files recordings under, and the normalization rules of its providers) is a [`Profile`] the
//! project supplies. [`Profile::llama_stack`] is this repository's, and the default.
//!
//! ```
//! use harness::profile::{EnvNames, Profile};
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
//! };
//! assert!(weather.is_secret_header("X-Weather-Key"));
//! assert_eq!(Profile::default().env.mode, "LLAMA_STACK_TEST_INFERENCE_MODE");
//! //! ```

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
}

impl Profile {
    /// Llama Stack's profile: the `LLAMA_STACK_TEST_*` variables, the
    /// `X-LlamaStack-Provider-Data` header, the OpenAI/Anthropic/MCP header lists, `model` as
    /// the index field and the LLM rule set ([`Rules::llm_defaults`]).
    pub fn llama_stack() -> Self {
        use llama_stack::*;
        Profile {
            name: "llama-stack",
            env: EnvNames {
                mode: MODE_ENV,
                recording_dir: RECORDING_DIR_ENV,
                replay_timing: REPLAY_TIMING_ENV,
                record_command: RECORD_COMMAND_ENV,
                debug: DEBUG_ENV,
                record_errors: RECORD_ERRORS_ENV,
            },
            default_record_command: DEFAULT_RECORD_COMMAND,
            context_header: PROVIDER_DATA_HEADER,
            secret_headers: &["x-llamastack-provider-data"],
            request_headers: REQUEST_HEADERS,
            response_headers: RESPONSE_HEADERS,
            index_field: "model",
            rules: Rules::llm_defaults,
        }
    }

    /// Whether a request header holds a secret under this profile: a built-in secret header
    /// ([`redact::is_secret_header`](crate::recorder::redact::is_secret_header)) or one of
    /// [`Profile::secret_headers`].
    pub fn is_secret_header(&self, name: &str) -> bool {
        crate::recorder::redact::is_secret_header_among(name, self.secret_headers)
    }
}

impl Default for Profile {
    /// [`Profile::llama_stack`], the profile of this repository.
    fn default() -> Self {
        Profile::llama_stack()
    }
}

/// Llama Stack's names, as [`Profile::llama_stack`] uses them.
pub mod llama_stack {
    /// Environment variable that selects the mode. Its presence turns the recorder on.
    pub const MODE_ENV: &str = "LLAMA_STACK_TEST_INFERENCE_MODE";
    /// Environment variable naming the recordings directory.
    pub const RECORDING_DIR_ENV: &str = "LLAMA_STACK_TEST_RECORDING_DIR";
    /// Environment variable choosing replay timing: `instant` (default) or `recorded`.
    pub const REPLAY_TIMING_ENV: &str = "LLAMA_STACK_TEST_REPLAY_TIMING";
    /// Environment variable holding the command a replay miss suggests (`{test_id}` is
    /// substituted).
    pub const RECORD_COMMAND_ENV: &str = "LLAMA_STACK_TEST_RECORD_COMMAND";
    /// Environment variable that makes the recorder log every key's inputs (`1`, `true`, `yes`).
    pub const DEBUG_ENV: &str = "LLAMA_STACK_TEST_DEBUG";
    /// Environment variable that makes the recorder store transient failures too (`1`, `true`,
    /// `yes`).
    pub const RECORD_ERRORS_ENV: &str = "LLAMA_STACK_TEST_RECORD_ERRORS";
    /// The command a replay miss suggests by default.
    pub const DEFAULT_RECORD_COMMAND: &str =
        "scripts/integration-tests.sh --inference-mode record-if-missing --pattern '{test_id}'";
    /// Name of the HTTP header that carries provider data, and with it the test id, to a server.
    pub const PROVIDER_DATA_HEADER: &str = "X-LlamaStack-Provider-Data";
    /// Response headers worth keeping (everything else, e.g. dates and request ids, is dropped).
    /// `mcp-session-id` is the MCP session a server opens at `initialize`: a client sends it back
    /// on every later request of the session, so a replay without it would run session-less.
    pub const RESPONSE_HEADERS: &[&str] = &[
        "content-type",
        "content-encoding",
        "openai-version",
        "mcp-session-id",
    ];
    /// Request headers worth keeping besides secret ones (which are kept as `<redacted>`).
    pub const REQUEST_HEADERS: &[&str] = &[
        "content-type",
        "accept",
        "openai-beta",
        "anthropic-version",
        "api-version",
        "mcp-session-id",
        "mcp-protocol-version",
    ];
}
