//! The spans of a Responses API response (GenAI agent spans, semantic conventions v1.41.1):
//!
//! - `invoke_agent` (INTERNAL): the response as a whole. The Responses API is an agent loop run
//!   inside the stack (model turns and tool calls until an answer), which is what the conventions'
//!   in-process `invoke_agent` span describes; it parents every model turn (`chat {model}`) and
//!   every tool call. Attributes: `gen_ai.operation.name`, `gen_ai.provider.name`,
//!   `gen_ai.request.model`, the request parameters, `gen_ai.response.id`,
//!   `gen_ai.conversation.id` (the first response of a `previous_response_id` chain), summed
//!   `gen_ai.usage.*`, `error.type` on failure.
//! - `execute_tool {gen_ai.tool.name}` (INTERNAL): one tool call, with `gen_ai.tool.name`,
//!   `gen_ai.tool.call.id`, `gen_ai.tool.type` (`extension`: the stack runs MCP tools on the
//!   model's behalf), the MCP attributes of its `tools/call` ([`super::mcp`]), Llama Stack's
//!   custom `llama_stack.mcp.*` data, and `error.type` (`tool_error` when the tool says so).

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

use super::semconv as sc;
use super::sink::Telemetry;

/// The `invoke_agent` span of one response.
pub struct AgentSpan {
    cx: Context,
    telemetry: Telemetry,
}

impl std::fmt::Debug for AgentSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpan").finish_non_exhaustive()
    }
}

/// What the response span knows at the start.
#[derive(Debug, Clone, Default)]
pub struct AgentRequest<'a> {
    /// `gen_ai.provider.name`.
    pub provider_name: &'a str,
    /// The provider's model id.
    pub request_model: &'a str,
    /// The stack's response id.
    pub response_id: &'a str,
    /// The first response of the chain.
    pub conversation_id: &'a str,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `max_output_tokens`.
    pub max_tokens: Option<u64>,
    /// `text` or `json`.
    pub output_type: &'a str,
}

impl AgentSpan {
    /// Starts the span as a child of the current context.
    pub fn start(telemetry: &Telemetry, request: &AgentRequest<'_>) -> AgentSpan {
        let mut attributes = vec![
            KeyValue::new(sc::GEN_AI_OPERATION_NAME, sc::OPERATION_INVOKE_AGENT),
            KeyValue::new(sc::GEN_AI_PROVIDER_NAME, request.provider_name.to_owned()),
            KeyValue::new(sc::GEN_AI_REQUEST_MODEL, request.request_model.to_owned()),
            KeyValue::new(sc::GEN_AI_RESPONSE_ID, request.response_id.to_owned()),
            KeyValue::new(
                sc::GEN_AI_CONVERSATION_ID,
                request.conversation_id.to_owned(),
            ),
            KeyValue::new(sc::GEN_AI_OUTPUT_TYPE, request.output_type.to_owned()),
        ];
        if let Some(t) = request.temperature {
            attributes.push(KeyValue::new(sc::GEN_AI_REQUEST_TEMPERATURE, t));
        }
        if let Some(p) = request.top_p {
            attributes.push(KeyValue::new(sc::GEN_AI_REQUEST_TOP_P, p));
        }
        if let Some(m) = request.max_tokens {
            attributes.push(KeyValue::new(
                sc::GEN_AI_REQUEST_MAX_TOKENS,
                i64::try_from(m).unwrap_or(i64::MAX),
            ));
        }
        let tracer = telemetry.tracer();
        let parent = Context::current();
        let span = tracer
            .span_builder(sc::OPERATION_INVOKE_AGENT)
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .start_with_context(tracer.as_ref(), &parent);
        AgentSpan {
            cx: parent.with_span(span),
            telemetry: telemetry.clone(),
        }
    }

    /// The context with this span current: run model turns and tools in it.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Starts the `execute_tool` span of one call, as a child of this span.
    pub fn tool(&self, tool: &ToolCall<'_>) -> Context {
        let mut attributes = vec![
            KeyValue::new(sc::GEN_AI_OPERATION_NAME, sc::OPERATION_EXECUTE_TOOL),
            KeyValue::new(sc::GEN_AI_TOOL_NAME, tool.name.to_owned()),
            KeyValue::new(sc::GEN_AI_TOOL_CALL_ID, tool.call_id.to_owned()),
            KeyValue::new(sc::GEN_AI_TOOL_TYPE, "extension"),
            KeyValue::new(
                sc::LLAMA_STACK_MCP_SERVER_LABEL,
                tool.server_label.to_owned(),
            ),
            KeyValue::new(sc::LLAMA_STACK_MCP_SERVER_URL, tool.server_url.to_owned()),
        ];
        if self.telemetry.captures_content() {
            attributes.push(KeyValue::new(
                sc::GEN_AI_TOOL_CALL_ARGUMENTS,
                tool.arguments.to_owned(),
            ));
        }
        let tracer = self.telemetry.tracer();
        let span = tracer
            .span_builder(format!("{} {}", sc::OPERATION_EXECUTE_TOOL, tool.name))
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .start_with_context(tracer.as_ref(), &self.cx);
        self.cx.with_span(span)
    }

    /// Ends a tool span: its result (recorded with message content only), or its failure.
    pub fn end_tool(&self, cx: &Context, result: Result<&str, (&str, &str)>) {
        let span = cx.span();
        match result {
            Ok(output) => {
                if self.telemetry.captures_content() {
                    span.set_attribute(KeyValue::new(
                        sc::GEN_AI_TOOL_CALL_RESULT,
                        output.to_owned(),
                    ));
                }
            }
            Err((error_type, message)) => {
                span.set_attribute(KeyValue::new(sc::ERROR_TYPE, error_type.to_owned()));
                span.set_status(Status::error(message.to_owned()));
            }
        }
        span.end();
    }

    /// Adds attributes to the response span (e.g. the id of an `mcp_list_tools` item).
    pub fn annotate(&self, attributes: Vec<KeyValue>) {
        self.cx.span().set_attributes(attributes);
    }

    /// Ends the span with the usage and, for a failed response, its error.
    pub fn finish(self, input_tokens: u64, output_tokens: u64, failure: Option<(&str, &str)>) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            sc::GEN_AI_USAGE_INPUT_TOKENS,
            i64::try_from(input_tokens).unwrap_or(i64::MAX),
        ));
        span.set_attribute(KeyValue::new(
            sc::GEN_AI_USAGE_OUTPUT_TOKENS,
            i64::try_from(output_tokens).unwrap_or(i64::MAX),
        ));
        if let Some((error_type, message)) = failure {
            span.set_attribute(KeyValue::new(sc::ERROR_TYPE, error_type.to_owned()));
            span.set_status(Status::error(message.to_owned()));
        }
        span.end();
    }
}

/// One tool call, for its `execute_tool` span.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    /// The tool's name.
    pub name: &'a str,
    /// The id the stack gave the call (the `mcp_call` item id, also sent to the model).
    pub call_id: &'a str,
    /// The MCP server's label.
    pub server_label: &'a str,
    /// The MCP server's URL.
    pub server_url: &'a str,
    /// The arguments (JSON text), recorded with message content only.
    pub arguments: &'a str,
}
