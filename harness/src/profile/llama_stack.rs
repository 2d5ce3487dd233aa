//! Llama Stack's names, as [`Profile::llama_stack`](super::Profile::llama_stack) uses them.

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
/// The recorder's variables: the names above.
pub const RECORDER_ENV: super::EnvNames = super::EnvNames {
    mode: MODE_ENV,
    recording_dir: RECORDING_DIR_ENV,
    replay_timing: REPLAY_TIMING_ENV,
    record_command: RECORD_COMMAND_ENV,
    debug: DEBUG_ENV,
    record_errors: RECORD_ERRORS_ENV,
};
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

/// Environment variable naming the suite of a run.
pub const SUITE_ENV: &str = "LLAMA_STACK_TEST_SUITE";
/// Environment variable naming the setup of a run.
pub const SETUP_ENV: &str = "LLAMA_STACK_TEST_SETUP";
/// Environment variable restricting a run to some area folders (comma-separated).
pub const SUBDIRS_ENV: &str = "LLAMA_STACK_TEST_SUBDIRS";
/// Environment variable holding the embedding dimension.
pub const EMBEDDING_DIMENSION_ENV: &str = "LLAMA_STACK_TEST_EMBEDDING_DIMENSION";
/// Environment variable that makes a test process replace a running server (`1`, `true`, `yes`).
pub const FORCE_RESTART_ENV: &str = "LLAMA_STACK_TEST_FORCE_SERVER_RESTART";
/// Environment variable saying where the stack under test lives.
pub const STACK_CONFIG_ENV: &str = "LLAMA_STACK_TEST_STACK_CONFIG";
/// The older name of [`STACK_CONFIG_ENV`], read when that is unset.
pub const LEGACY_STACK_CONFIG_ENV: &str = "LLAMA_STACK_CONFIG";
/// Environment variable giving the server port when the stack config gives none.
pub const PORT_ENV: &str = "LLAMA_STACK_PORT";

/// The test runner's variables: the `LLAMA_STACK_TEST_*` names above.
pub const RUNNER_ENV: super::RunnerEnv = super::RunnerEnv {
    suite: SUITE_ENV,
    setup: SETUP_ENV,
    subdirs: SUBDIRS_ENV,
    embedding_dimension: EMBEDDING_DIMENSION_ENV,
    force_restart: FORCE_RESTART_ENV,
    stack_config: STACK_CONFIG_ENV,
    legacy_stack_config: Some(LEGACY_STACK_CONFIG_ENV),
    port: PORT_ENV,
};

/// Handles on Llama Stack's model roles, for [`TestCase::needs`](crate::testkit::TestCase::needs).
pub mod roles {
    use crate::profile::Role;

    /// A chat model (`txt`).
    pub const TEXT: Role = Role::new("txt");
    /// A vision (image input) model (`vis`).
    pub const VISION: Role = Role::new("vis");
    /// A plain-completion model (`cmpl`).
    pub const COMPLETION: Role = Role::new("cmpl");
    /// An embedding model (`emb`).
    pub const EMBEDDING: Role = Role::new("emb");
    /// A safety shield (`shield`).
    pub const SAFETY_SHIELD: Role = Role::new("shield");
    /// A judge model, for scoring (`judge`).
    pub const JUDGE: Role = Role::new("judge");
    /// A rerank model (`rerank`).
    pub const RERANK: Role = Role::new("rerank");
}

const fn role(
    id: &'static str,
    label: &'static str,
    env: &'static str,
    setup_key: &'static str,
    flag: &'static str,
) -> super::ModelRole {
    super::ModelRole {
        id,
        label,
        env,
        setup_key,
        flag,
    }
}

/// Llama Stack's model roles, in the order of their parameters in test ids.
pub const ROLES: &[super::ModelRole] = &[
    role(
        "txt",
        "text model",
        "LLAMA_STACK_TEST_TEXT_MODEL",
        "text_model",
        "--text-model",
    ),
    role(
        "vis",
        "vision model",
        "LLAMA_STACK_TEST_VISION_MODEL",
        "vision_model",
        "--vision-model",
    ),
    role(
        "cmpl",
        "completion model",
        "LLAMA_STACK_TEST_COMPLETION_MODEL",
        "completion_model",
        "--completion-model",
    ),
    role(
        "emb",
        "embedding model",
        "LLAMA_STACK_TEST_EMBEDDING_MODEL",
        "embedding_model",
        "--embedding-model",
    ),
    role(
        "shield",
        "safety shield",
        "LLAMA_STACK_TEST_SAFETY_SHIELD",
        "safety_shield",
        "--safety-shield",
    ),
    role(
        "judge",
        "judge model",
        "LLAMA_STACK_TEST_JUDGE_MODEL",
        "judge_model",
        "--judge-model",
    ),
    role(
        "rerank",
        "rerank model",
        "LLAMA_STACK_TEST_RERANK_MODEL",
        "rerank_model",
        "--rerank-model",
    ),
];

/// Llama Stack's named accessors on a trial's values: `env.text_model()` for
/// `env.need(roles::TEXT)`. Each panics (failing the test) if the test did not list the role in
/// its `needs`.
pub trait LlamaStackModels {
    /// The text model ([`roles::TEXT`]).
    fn text_model(&self) -> &str;
    /// The vision model ([`roles::VISION`]).
    fn vision_model(&self) -> &str;
    /// The completion model ([`roles::COMPLETION`]).
    fn completion_model(&self) -> &str;
    /// The embedding model ([`roles::EMBEDDING`]).
    fn embedding_model(&self) -> &str;
    /// The safety shield ([`roles::SAFETY_SHIELD`]).
    fn safety_shield(&self) -> &str;
    /// The judge model ([`roles::JUDGE`]).
    fn judge_model(&self) -> &str;
    /// The rerank model ([`roles::RERANK`]).
    fn rerank_model(&self) -> &str;
}

impl LlamaStackModels for crate::testkit::TestEnv {
    fn text_model(&self) -> &str {
        self.need(roles::TEXT)
    }
    fn vision_model(&self) -> &str {
        self.need(roles::VISION)
    }
    fn completion_model(&self) -> &str {
        self.need(roles::COMPLETION)
    }
    fn embedding_model(&self) -> &str {
        self.need(roles::EMBEDDING)
    }
    fn safety_shield(&self) -> &str {
        self.need(roles::SAFETY_SHIELD)
    }
    fn judge_model(&self) -> &str {
        self.need(roles::JUDGE)
    }
    fn rerank_model(&self) -> &str {
        self.need(roles::RERANK)
    }
}
