//! The names the stack's telemetry uses: OpenTelemetry semantic conventions **v1.41.1** (GenAI
//! spans and metrics, HTTP, server, error), defined here rather than taken from
//! `opentelemetry-semantic-conventions` (its `gen_ai.*` constants are experimental and deprecated
//! there), plus the stack's own custom names, which are marked as such.
//!
//! `docs/telemetry.md` lists every one of them with where it appears.

/// The semantic conventions version the names and bucket boundaries follow.
pub const SEMCONV_VERSION: &str = "1.41.1";

/// The instrumentation scope of every span and metric the stack emits itself.
pub const SCOPE_NAME: &str = "llama-stack";

// --- GenAI attributes (semconv) -------------------------------------------------------------

/// `gen_ai.operation.name`: `chat`, `text_completion` or `embeddings`.
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name`: the provider flavor (see [`crate::telemetry::provider_name`]).
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// `gen_ai.request.model`: the model name as sent to the provider.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.request.max_tokens`.
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// `gen_ai.request.temperature`.
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// `gen_ai.request.top_p`.
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// `gen_ai.request.top_k`.
pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
/// `gen_ai.request.stop_sequences` (string array).
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
/// `gen_ai.request.seed`.
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
/// `gen_ai.request.choice.count` (only when the request asks for a count other than 1).
pub const GEN_AI_REQUEST_CHOICE_COUNT: &str = "gen_ai.request.choice.count";
/// `gen_ai.request.frequency_penalty`.
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
/// `gen_ai.request.presence_penalty`.
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
/// `gen_ai.request.encoding_formats` (string array, embeddings).
pub const GEN_AI_REQUEST_ENCODING_FORMATS: &str = "gen_ai.request.encoding_formats";
/// `gen_ai.request.stream`: `true` on streaming requests only (unset means not streaming).
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
/// `gen_ai.output.type`: `text` or `json`, when the request names an output format.
pub const GEN_AI_OUTPUT_TYPE: &str = "gen_ai.output.type";
/// `gen_ai.response.model`: the model name the provider answered with.
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.response.id`.
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
/// `gen_ai.response.finish_reasons` (string array, one per choice, in choice order).
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// `gen_ai.response.time_to_first_chunk` (seconds, streams).
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
/// `gen_ai.usage.input_tokens`.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens`.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.usage.cache_read.input_tokens` (from `usage.prompt_tokens_details.cached_tokens`).
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// `gen_ai.usage.reasoning.output_tokens` (from `usage.completion_tokens_details.reasoning_tokens`).
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
/// `gen_ai.embeddings.dimension.count`.
pub const GEN_AI_EMBEDDINGS_DIMENSION_COUNT: &str = "gen_ai.embeddings.dimension.count";
/// `gen_ai.input.messages` (opt-in, JSON string).
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// `gen_ai.output.messages` (opt-in, JSON string).
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// `gen_ai.token.type` (metric attribute): `input` or `output`.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";

// --- General attributes (semconv, stable) ---------------------------------------------------

/// `server.address`: the provider's host.
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`: the provider's port.
pub const SERVER_PORT: &str = "server.port";
/// `error.type`: the class of a failure (see [`crate::providers::ProviderError::error_type`]).
pub const ERROR_TYPE: &str = "error.type";
/// `http.request.method`.
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// `http.response.status_code`.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `url.full` (provider client spans; never carries credentials: the stack sends keys in headers).
pub const URL_FULL: &str = "url.full";

// --- Agent, tool and MCP attributes (semconv) -------------------------------------------------

/// `gen_ai.tool.name`.
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
/// `gen_ai.tool.call.id`.
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// `gen_ai.tool.type`: `function` (executed by the client) or `extension` (executed by the
/// stack on the model's behalf, as MCP tools are).
pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
/// `gen_ai.tool.call.arguments` (opt-in, with message content).
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
/// `gen_ai.tool.call.result` (opt-in, with message content).
pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
/// `gen_ai.conversation.id`: the first response of a `previous_response_id` chain.
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// `mcp.method.name`.
pub const MCP_METHOD_NAME: &str = "mcp.method.name";
/// `mcp.session.id`.
pub const MCP_SESSION_ID: &str = "mcp.session.id";
/// `mcp.protocol.version`: the version the server negotiated.
pub const MCP_PROTOCOL_VERSION: &str = "mcp.protocol.version";
/// `jsonrpc.request.id`.
pub const JSONRPC_REQUEST_ID: &str = "jsonrpc.request.id";
/// `rpc.response.status_code`: the JSON-RPC error code of an error answer.
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
/// `network.transport`: `tcp` for streamable HTTP.
pub const NETWORK_TRANSPORT: &str = "network.transport";
/// `network.protocol.name`: `http`.
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";

// --- Custom attributes (not in the semantic conventions) ------------------------------------

/// Custom (Llama Stack's names, read by the seed's dashboards): the `server_label` of an MCP tool.
pub const LLAMA_STACK_MCP_SERVER_LABEL: &str = "llama_stack.mcp.server_label";
/// Custom: the `server_url` of an MCP tool.
pub const LLAMA_STACK_MCP_SERVER_URL: &str = "llama_stack.mcp.server_url";
/// Custom: the id of the `mcp_list_tools` output item a listing produced.
pub const LLAMA_STACK_MCP_LIST_TOOLS_ID: &str = "llama_stack.mcp.list_tools_id";
/// Custom: the stack's response id (`resp_...`) on the response span.
pub const LLAMA_STACK_RESPONSE_ID: &str = "llama_stack.response.id";

/// Custom: the stack's model id, `provider_id/provider_model_id`.
pub const LLAMA_STACK_MODEL_ID: &str = "llama_stack.model_id";
/// Custom: the stack's provider id (the prefix of its model ids).
pub const LLAMA_STACK_PROVIDER_ID: &str = "llama_stack.provider_id";
/// Custom: how many chunks of a stream reached the caller.
pub const GEN_AI_RESPONSE_CHUNK_COUNT: &str = "gen_ai.response.chunk_count";

// --- Metrics (semconv) ------------------------------------------------------------------------

/// `gen_ai.client.token.usage`: histogram of tokens, `{token}`.
pub const METRIC_CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// `gen_ai.client.operation.duration`: histogram, seconds.
pub const METRIC_CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// `gen_ai.client.operation.time_to_first_chunk`: histogram, seconds (streams only).
pub const METRIC_CLIENT_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
/// `gen_ai.server.time_to_first_token`: histogram, seconds (streams only; the stack is the model
/// server of its own callers).
pub const METRIC_SERVER_TIME_TO_FIRST_TOKEN: &str = "gen_ai.server.time_to_first_token";

/// `mcp.client.operation.duration`: histogram, seconds.
pub const METRIC_MCP_CLIENT_OPERATION_DURATION: &str = "mcp.client.operation.duration";

/// Explicit bucket boundaries advised for `mcp.client.operation.duration`.
pub const MCP_DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Explicit bucket boundaries advised for `gen_ai.client.token.usage`.
pub const TOKEN_USAGE_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Explicit bucket boundaries advised for `gen_ai.client.operation.duration` and
/// `gen_ai.client.operation.time_to_first_chunk`.
pub const CLIENT_DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Explicit bucket boundaries advised for `gen_ai.server.time_to_first_token`.
pub const SERVER_TIME_TO_FIRST_TOKEN_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

// --- Values ---------------------------------------------------------------------------------

/// `gen_ai.operation.name` of chat completions.
pub const OPERATION_CHAT: &str = "chat";
/// `gen_ai.operation.name` of (legacy) text completions.
pub const OPERATION_TEXT_COMPLETION: &str = "text_completion";
/// `gen_ai.operation.name` of embeddings.
pub const OPERATION_EMBEDDINGS: &str = "embeddings";
/// `gen_ai.operation.name` of an agent invocation (a whole Responses API response).
pub const OPERATION_INVOKE_AGENT: &str = "invoke_agent";
/// `gen_ai.operation.name` of a tool call.
pub const OPERATION_EXECUTE_TOOL: &str = "execute_tool";
/// `error.type` of an MCP tool result with `isError: true`.
pub const ERROR_TYPE_TOOL_ERROR: &str = "tool_error";
/// `error.type` when nothing more specific is known.
pub const ERROR_TYPE_OTHER: &str = "_OTHER";
