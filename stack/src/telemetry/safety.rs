//! The span of one shield run and the verdict counter.
//!
//! Guardrail spans are in no released version of the semantic conventions. The stack follows the
//! GenAI SIG's open proposal (semantic-conventions-genai #427, as of November 2026), pinned here:
//! span `run_guardrail {shield_id}` (INTERNAL) with `gen_ai.operation.name` = `run_guardrail`,
//! `gen_ai.guardrail.target.type` (`input` or `output`), `gen_ai.guardrail.verdict.type` (`pass`
//! or `violation`), `gen_ai.guardrail.action.type` (`none`, `warn` or `block`). Beside them,
//! Llama Stack's own names, which the seed's dashboards read: `llama_stack.safety.request.shield_id`,
//! `llama_stack.safety.response.violation.level`, `llama_stack.safety.response.violation.user_message`,
//! `llama_stack.safety.response.metadata` (JSON), and, only with
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, `llama_stack.safety.request.messages`
//! and `llama_stack.safety.response.guard_answer` (Llama Stack records messages always; the stack
//! does not). The guard model's `chat {model}` span is the shield span's child.
//! Counter `llama_stack.safety.verdicts` (`{verdict}`): one per shield run, by
//! `llama_stack.safety.shield_id` and `gen_ai.guardrail.verdict.type` (`error` when the run failed).

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

use super::sink::Telemetry;

/// `gen_ai.operation.name` of a shield run (proposal).
pub const OPERATION_RUN_GUARDRAIL: &str = "run_guardrail";
/// `gen_ai.guardrail.target.type` (proposal).
pub const GUARDRAIL_TARGET_TYPE: &str = "gen_ai.guardrail.target.type";
/// `gen_ai.guardrail.verdict.type` (proposal).
pub const GUARDRAIL_VERDICT_TYPE: &str = "gen_ai.guardrail.verdict.type";
/// `gen_ai.guardrail.action.type` (proposal).
pub const GUARDRAIL_ACTION_TYPE: &str = "gen_ai.guardrail.action.type";
/// Llama Stack: the shield id of the request.
pub const SHIELD_ID: &str = "llama_stack.safety.request.shield_id";
/// Llama Stack: the messages checked (opt-in).
pub const REQUEST_MESSAGES: &str = "llama_stack.safety.request.messages";
/// Llama Stack: the violation level.
pub const VIOLATION_LEVEL: &str = "llama_stack.safety.response.violation.level";
/// Llama Stack: the violation's user message.
pub const VIOLATION_USER_MESSAGE: &str = "llama_stack.safety.response.violation.user_message";
/// Llama Stack: the violation's metadata (JSON).
pub const RESPONSE_METADATA: &str = "llama_stack.safety.response.metadata";
/// Custom: the guard model's raw answer (opt-in).
pub const GUARD_ANSWER: &str = "llama_stack.safety.response.guard_answer";
/// Custom: the verdict counter.
pub const METRIC_VERDICTS: &str = "llama_stack.safety.verdicts";
/// Custom: the shield id on the verdict counter.
pub const METRIC_SHIELD_ID: &str = "llama_stack.safety.shield_id";

/// One shield run in flight.
pub struct ShieldSpan {
    cx: Context,
    telemetry: Telemetry,
    shield_id: String,
}

impl std::fmt::Debug for ShieldSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShieldSpan")
            .field("shield_id", &self.shield_id)
            .finish_non_exhaustive()
    }
}

/// How a shield run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// No violation.
    Pass,
    /// A violation of `level` (`error`, `warn`, `info`) with this user message and metadata.
    Violation {
        /// The violation level.
        level: &'a str,
        /// What the user is told.
        user_message: &'a str,
        /// The metadata (JSON text).
        metadata: &'a str,
    },
    /// The run failed (`error.type`, message).
    Failed(&'a str, &'a str),
}

impl ShieldSpan {
    /// Starts the span of running `shield_id` on `target` (`input` or `output`) with the guard
    /// model `model`, as a child of the current context. `messages` (JSON) go on the span only
    /// when message content is captured.
    pub fn start(
        telemetry: &Telemetry,
        shield_id: &str,
        model: &str,
        target: &str,
        messages: &str,
    ) -> ShieldSpan {
        let mut attributes = vec![
            KeyValue::new(
                super::semconv::GEN_AI_OPERATION_NAME,
                OPERATION_RUN_GUARDRAIL,
            ),
            KeyValue::new(SHIELD_ID, shield_id.to_owned()),
            KeyValue::new(GUARDRAIL_TARGET_TYPE, target.to_owned()),
            KeyValue::new(super::semconv::GEN_AI_REQUEST_MODEL, model.to_owned()),
        ];
        if telemetry.captures_content() {
            attributes.push(KeyValue::new(REQUEST_MESSAGES, messages.to_owned()));
        }
        let tracer = telemetry.tracer();
        let parent = Context::current();
        let span = tracer
            .span_builder(format!("{OPERATION_RUN_GUARDRAIL} {shield_id}"))
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .start_with_context(tracer.as_ref(), &parent);
        ShieldSpan {
            cx: parent.with_span(span),
            telemetry: telemetry.clone(),
            shield_id: shield_id.to_owned(),
        }
    }

    /// The context to call the guard model in.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Ends the span with the outcome (and the guard's answer, when content is captured) and
    /// counts the verdict.
    pub fn finish(self, outcome: Outcome<'_>, guard_answer: Option<&str>) {
        let span = self.cx.span();
        if let Some(answer) = guard_answer.filter(|_| self.telemetry.captures_content()) {
            span.set_attribute(KeyValue::new(GUARD_ANSWER, answer.to_owned()));
        }
        let verdict = match outcome {
            Outcome::Pass => {
                span.set_attribute(KeyValue::new(GUARDRAIL_VERDICT_TYPE, "pass"));
                span.set_attribute(KeyValue::new(GUARDRAIL_ACTION_TYPE, "none"));
                "pass"
            }
            Outcome::Violation {
                level,
                user_message,
                metadata,
            } => {
                let action = if level == "error" { "block" } else { "warn" };
                span.set_attributes([
                    KeyValue::new(GUARDRAIL_VERDICT_TYPE, "violation"),
                    KeyValue::new(GUARDRAIL_ACTION_TYPE, action),
                    KeyValue::new(VIOLATION_LEVEL, level.to_owned()),
                    KeyValue::new(VIOLATION_USER_MESSAGE, user_message.to_owned()),
                    KeyValue::new(RESPONSE_METADATA, metadata.to_owned()),
                ]);
                "violation"
            }
            Outcome::Failed(error_type, message) => {
                span.set_attribute(KeyValue::new(
                    super::semconv::ERROR_TYPE,
                    error_type.to_owned(),
                ));
                span.set_status(Status::error(message.to_owned()));
                "error"
            }
        };
        span.end();
        self.telemetry
            .meter()
            .u64_counter(METRIC_VERDICTS)
            .with_unit("{verdict}")
            .with_description("Shield runs, by shield and verdict.")
            .build()
            .add(
                1,
                &[
                    KeyValue::new(METRIC_SHIELD_ID, self.shield_id.clone()),
                    KeyValue::new(GUARDRAIL_VERDICT_TYPE, verdict),
                ],
            );
    }
}
