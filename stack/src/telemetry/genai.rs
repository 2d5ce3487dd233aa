//! GenAI spans and metrics for one inference operation (chat, text completion, embeddings),
//! following the GenAI semantic conventions v1.41.1.
//!
//! [`GenAiCall::start`] opens a CLIENT span named `{gen_ai.operation.name} {gen_ai.request.model}`
//! as a child of the current OpenTelemetry context (the HTTP server span in server mode, the
//! caller's context in library mode), with the request attributes set at creation.
//! Run the provider call inside [`GenAiCall::context`] so that the provider HTTP client span nests
//! under it. [`GenAiCall::finish`] sets the response attributes, the status and `error.type`,
//! ends the span and records the metrics. A call dropped unfinished (a cancelled request) ends
//! its span without recording metrics.

use std::time::Instant;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Array, Context, KeyValue, StringValue};
use serde_json::Value;

use super::content;
use super::semconv as sc;
use super::sink::{Instruments, Telemetry};
use crate::config::ProviderType;
use crate::error::{ApiError, REPLAY_MISS};
use crate::model_registry::ModelEntry;
use crate::providers::error::{
    ERROR_CONNECTION, ERROR_INVALID_RESPONSE, ERROR_TIMEOUT, ERROR_TRANSPORT,
};
use crate::providers::{Provider, ProviderError};

/// Longest span status description kept (a replay miss carries a whole diagnostic).
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// The GenAI operations the stack performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/chat/completions`: `chat`.
    Chat,
    /// `POST /v1/completions`: `text_completion`.
    TextCompletion,
    /// `POST /v1/embeddings`: `embeddings`.
    Embeddings,
}

impl Operation {
    /// The `gen_ai.operation.name` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => sc::OPERATION_CHAT,
            Self::TextCompletion => sc::OPERATION_TEXT_COMPLETION,
            Self::Embeddings => sc::OPERATION_EMBEDDINGS,
        }
    }
}

/// The `gen_ai.provider.name` of a provider type: the conventions' well-known `openai` for
/// `remote::openai`; the project's own lowercase name for the others, which the conventions do
/// not list (`ollama`, `vllm`, `llamacpp`).
pub fn provider_name(provider_type: ProviderType) -> &'static str {
    match provider_type {
        ProviderType::OpenAi => "openai",
        ProviderType::Ollama => "ollama",
        ProviderType::Vllm => "vllm",
        ProviderType::LlamaCpp => "llamacpp",
    }
}

/// What an answer (or a whole stream) said about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseSummary {
    /// `id`.
    pub id: Option<String>,
    /// `model`, as the provider sent it.
    pub model: Option<String>,
    /// `choices[].finish_reason`, in choice order.
    pub finish_reasons: Vec<String>,
    /// `usage.prompt_tokens`.
    pub input_tokens: Option<u64>,
    /// `usage.completion_tokens`.
    pub output_tokens: Option<u64>,
    /// `usage.prompt_tokens_details.cached_tokens`.
    pub cache_read_input_tokens: Option<u64>,
    /// `usage.completion_tokens_details.reasoning_tokens`.
    pub reasoning_output_tokens: Option<u64>,
    /// Length of the first embedding vector.
    pub dimension_count: Option<u64>,
    /// `gen_ai.output.messages`, when content is captured.
    pub output_messages: Option<Value>,
}

impl ResponseSummary {
    /// Reads a non-streamed answer; output messages only when `capture` is set.
    pub fn from_answer(operation: Operation, answer: &Value, capture: bool) -> Self {
        let mut summary = Self::default();
        summary.read_header(answer);
        summary.read_usage(answer);
        if operation == Operation::Embeddings {
            summary.dimension_count = answer
                .pointer("/data/0/embedding")
                .and_then(Value::as_array)
                .map(|v| v.len() as u64);
            return summary;
        }
        let mut reasons: Vec<(u64, String)> = content::indexed(answer.get("choices"))
            .filter_map(|(index, c)| Some((index, c.get("finish_reason")?.as_str()?.to_owned())))
            .collect();
        reasons.sort_by_key(|(i, _)| *i);
        summary.finish_reasons = reasons.into_iter().map(|(_, r)| r).collect();
        if capture {
            summary.output_messages = Some(content::output(answer));
        }
        summary
    }

    /// Takes `id` and `model` when the value has them (the first seen wins).
    pub(crate) fn read_header(&mut self, value: &Value) {
        if self.id.is_none() {
            self.id = value
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
        }
        if self.model.is_none() {
            self.model = value
                .get("model")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
        }
    }

    /// Takes the token counts of a `usage` object when the value has one.
    pub(crate) fn read_usage(&mut self, value: &Value) {
        let Some(usage) = value.get("usage").filter(|u| u.is_object()) else {
            return;
        };
        let count = |path: &[&str]| {
            path.iter()
                .try_fold(usage, |v, key| v.get(key))
                .and_then(Value::as_u64)
        };
        self.input_tokens = count(&["prompt_tokens"]).or(self.input_tokens);
        self.output_tokens = count(&["completion_tokens"]).or(self.output_tokens);
        self.cache_read_input_tokens =
            count(&["prompt_tokens_details", "cached_tokens"]).or(self.cache_read_input_tokens);
        self.reasoning_output_tokens = count(&["completion_tokens_details", "reasoning_tokens"])
            .or(self.reasoning_output_tokens);
    }
}

/// How a stream went, for its span and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamStats {
    /// Chunks that reached the caller.
    pub chunk_count: u64,
    /// Seconds from issuing the request to the first chunk, if one came.
    pub time_to_first_chunk: Option<f64>,
}

/// How an operation failed, for `error.type` and the span status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `error.type` value (see [`crate::providers::ProviderError::error_type`]).
    pub error_type: String,
    /// The span status description.
    pub description: String,
}

impl Failure {
    /// A failure of this class with this description.
    pub fn new(error_type: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            description: description.into(),
        }
    }

    /// The failure of a provider call.
    pub fn from_provider_error(e: &ProviderError) -> Self {
        Self::new(e.error_type(), e.to_string())
    }

    /// The failure behind an API error (e.g. the error that ended a stream): the same classes
    /// as [`ProviderError::error_type`], read from the error's type and code, else its status.
    pub fn from_api_error(e: &ApiError) -> Self {
        let code = e.code().and_then(Value::as_str);
        let error_type = match (e.error_type.as_str(), code) {
            (REPLAY_MISS, _) => REPLAY_MISS.to_owned(),
            (_, Some("invalid_provider_response")) => ERROR_INVALID_RESPONSE.to_owned(),
            (_, Some("provider_timeout")) => ERROR_TIMEOUT.to_owned(),
            (_, Some("provider_unreachable")) => ERROR_CONNECTION.to_owned(),
            (_, Some("provider_transport_error")) => ERROR_TRANSPORT.to_owned(),
            _ => e.status.to_string(),
        };
        Self::new(error_type, e.message.clone())
    }
}

/// One GenAI operation in flight: its span and what its metrics need.
pub struct GenAiCall {
    cx: Context,
    operation: Operation,
    instruments: Instruments,
    metric_attributes: Vec<KeyValue>,
    started: Instant,
    capture: bool,
    finished: bool,
    /// Nothing records this call (no-op tracer and meter): no attributes, summary or metrics.
    quiet: bool,
}

impl std::fmt::Debug for GenAiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenAiCall")
            .field("operation", &self.operation)
            .field("span", &self.cx.span().span_context())
            .finish_non_exhaustive()
    }
}

impl GenAiCall {
    /// Starts the span of `operation` on `model` (served by `provider`) for `request`, the body
    /// as it is sent to the provider, as a child of the current context.
    pub fn start(
        telemetry: &Telemetry,
        operation: Operation,
        provider: &Provider,
        model: &ModelEntry,
        request: &Value,
        stream: bool,
    ) -> GenAiCall {
        let request_model = model.provider_model_id.as_str();
        if !telemetry.records_spans() && !telemetry.records_metrics() {
            // Still a span: a no-op one carries the caller's trace context to the provider.
            let tracer = telemetry.tracer();
            let parent = Context::current();
            let span = tracer
                .span_builder(operation.name())
                .with_kind(SpanKind::Client)
                .start_with_context(tracer.as_ref(), &parent);
            return GenAiCall {
                cx: parent.with_span(span),
                operation,
                instruments: telemetry.instruments(),
                metric_attributes: Vec::new(),
                started: Instant::now(),
                capture: false,
                finished: false,
                quiet: true,
            };
        }
        let mut metric_attributes = vec![
            KeyValue::new(sc::GEN_AI_OPERATION_NAME, operation.name()),
            KeyValue::new(
                sc::GEN_AI_PROVIDER_NAME,
                provider_name(provider.provider_type()),
            ),
            KeyValue::new(sc::GEN_AI_REQUEST_MODEL, request_model.to_owned()),
        ];
        let url = provider.base_url();
        if let Some(host) = url.host_str() {
            metric_attributes.push(KeyValue::new(sc::SERVER_ADDRESS, host.to_owned()));
            if let Some(port) = url.port_or_known_default() {
                metric_attributes.push(KeyValue::new(sc::SERVER_PORT, i64::from(port)));
            }
        }
        let capture = telemetry.captures_content();
        let mut attributes = metric_attributes.clone();
        attributes.push(KeyValue::new(sc::LLAMA_STACK_MODEL_ID, model.id.clone()));
        attributes.push(KeyValue::new(
            sc::LLAMA_STACK_PROVIDER_ID,
            provider.id().to_owned(),
        ));
        request_attributes(operation, request, &mut attributes);
        if stream {
            attributes.push(KeyValue::new(sc::GEN_AI_REQUEST_STREAM, true));
        }
        if capture {
            let input = match operation {
                Operation::Chat => Some(content::chat_input(request)),
                Operation::TextCompletion => Some(content::completion_input(request)),
                Operation::Embeddings => None,
            };
            if let Some(input) = input {
                attributes.push(KeyValue::new(sc::GEN_AI_INPUT_MESSAGES, input.to_string()));
            }
        }
        let tracer = telemetry.tracer();
        let parent = Context::current();
        let span = tracer
            .span_builder(format!("{} {request_model}", operation.name()))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer.as_ref(), &parent);
        GenAiCall {
            cx: parent.with_span(span),
            operation,
            instruments: telemetry.instruments(),
            metric_attributes,
            started: Instant::now(),
            capture,
            finished: false,
            quiet: false,
        }
    }

    /// The context with this operation's span current: run the provider call in it.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// Whether message content is recorded.
    pub fn captures_content(&self) -> bool {
        self.capture
    }

    /// Whether nothing records this call: its summary need not be read.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// The summary of a non-streamed `answer` for [`GenAiCall::finish`] (empty when nothing
    /// records it).
    pub fn summarize(&self, answer: &Value) -> ResponseSummary {
        if self.quiet {
            return ResponseSummary::default();
        }
        ResponseSummary::from_answer(self.operation, answer, self.capture)
    }

    /// [`GenAiCall::summarize`] of an answer passed through as text, parsed whole only when
    /// something records the call.
    pub fn summarize_raw(&self, answer: &crate::providers::RawObject) -> ResponseSummary {
        if self.quiet {
            return ResponseSummary::default();
        }
        self.summarize(&answer.to_value())
    }

    /// When the operation started (the request was about to be issued).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Sets the response attributes, the outcome and the stream figures, ends the span and
    /// records the metrics.
    pub fn finish(
        mut self,
        summary: &ResponseSummary,
        failure: Option<&Failure>,
        stream: Option<StreamStats>,
    ) {
        self.finished = true;
        let span = self.cx.span();
        if self.quiet {
            span.end();
            return;
        }
        if let Some(model) = &summary.model {
            span.set_attribute(KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, model.clone()));
        }
        if let Some(id) = &summary.id {
            span.set_attribute(KeyValue::new(sc::GEN_AI_RESPONSE_ID, id.clone()));
        }
        if !summary.finish_reasons.is_empty() {
            span.set_attribute(KeyValue::new(
                sc::GEN_AI_RESPONSE_FINISH_REASONS,
                string_array(summary.finish_reasons.iter().cloned()),
            ));
        }
        let counts = [
            (sc::GEN_AI_USAGE_INPUT_TOKENS, summary.input_tokens),
            (sc::GEN_AI_USAGE_OUTPUT_TOKENS, summary.output_tokens),
            (
                sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
                summary.cache_read_input_tokens,
            ),
            (
                sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
                summary.reasoning_output_tokens,
            ),
        ];
        for (key, value) in counts {
            if let Some(v) = value {
                span.set_attribute(KeyValue::new(key, to_i64(v)));
            }
        }
        if let Some(dims) = summary.dimension_count {
            span.set_attribute(KeyValue::new(
                sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
                to_i64(dims),
            ));
        }
        if let Some(messages) = summary.output_messages.as_ref().filter(|_| self.capture) {
            span.set_attribute(KeyValue::new(
                sc::GEN_AI_OUTPUT_MESSAGES,
                messages.to_string(),
            ));
        }
        if let Some(stats) = stream {
            span.set_attribute(KeyValue::new(
                sc::GEN_AI_RESPONSE_CHUNK_COUNT,
                to_i64(stats.chunk_count),
            ));
            if let Some(ttfc) = stats.time_to_first_chunk {
                span.set_attribute(KeyValue::new(sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttfc));
            }
        }
        if let Some(failure) = failure {
            span.set_attribute(KeyValue::new(sc::ERROR_TYPE, failure.error_type.clone()));
            span.set_status(Status::error(truncate(&failure.description)));
        }
        span.end();

        let mut attrs = self.metric_attributes.clone();
        if let Some(model) = &summary.model {
            attrs.push(KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, model.clone()));
        }
        let mut duration_attrs = attrs.clone();
        if let Some(failure) = failure {
            duration_attrs.push(KeyValue::new(sc::ERROR_TYPE, failure.error_type.clone()));
        }
        self.instruments
            .operation_duration
            .record(self.started.elapsed().as_secs_f64(), &duration_attrs);
        for (kind, tokens) in [
            ("input", summary.input_tokens),
            ("output", summary.output_tokens),
        ] {
            if let Some(tokens) = tokens {
                let mut token_attrs = attrs.clone();
                token_attrs.push(KeyValue::new(sc::GEN_AI_TOKEN_TYPE, kind));
                self.instruments.token_usage.record(tokens, &token_attrs);
            }
        }
        if let Some(ttfc) = stream.and_then(|s| s.time_to_first_chunk)
            && failure.is_none()
        {
            self.instruments
                .client_time_to_first_chunk
                .record(ttfc, &attrs);
            self.instruments
                .server_time_to_first_token
                .record(ttfc, &attrs);
        }
    }
}

impl Drop for GenAiCall {
    fn drop(&mut self) {
        if !self.finished {
            self.cx.span().end();
        }
    }
}

/// The request parameters the conventions name, when the request gives them.
fn request_attributes(operation: Operation, request: &Value, out: &mut Vec<KeyValue>) {
    let get = |key: &str| request.get(key).filter(|v| !v.is_null());
    let int = |key: &str| get(key).and_then(Value::as_i64);
    let float = |key: &str| get(key).and_then(Value::as_f64);
    if operation == Operation::Embeddings {
        if let Some(format) = get("encoding_format").and_then(Value::as_str) {
            out.push(KeyValue::new(
                sc::GEN_AI_REQUEST_ENCODING_FORMATS,
                string_array([format.to_owned()]),
            ));
        }
        if let Some(dims) = int("dimensions") {
            out.push(KeyValue::new(sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT, dims));
        }
        return;
    }
    let max_tokens = match operation {
        Operation::Chat => int("max_completion_tokens").or_else(|| int("max_tokens")),
        _ => int("max_tokens"),
    };
    if let Some(v) = max_tokens {
        out.push(KeyValue::new(sc::GEN_AI_REQUEST_MAX_TOKENS, v));
    }
    for (key, attr) in [
        ("temperature", sc::GEN_AI_REQUEST_TEMPERATURE),
        ("top_p", sc::GEN_AI_REQUEST_TOP_P),
        ("top_k", sc::GEN_AI_REQUEST_TOP_K),
        ("frequency_penalty", sc::GEN_AI_REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", sc::GEN_AI_REQUEST_PRESENCE_PENALTY),
    ] {
        if let Some(v) = float(key) {
            out.push(KeyValue::new(attr, v));
        }
    }
    if let Some(seed) = int("seed") {
        out.push(KeyValue::new(sc::GEN_AI_REQUEST_SEED, seed));
    }
    if let Some(n) = int("n").filter(|n| *n != 1) {
        out.push(KeyValue::new(sc::GEN_AI_REQUEST_CHOICE_COUNT, n));
    }
    let stop: Option<Vec<String>> = match get("stop") {
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    };
    if let Some(stop) = stop {
        out.push(KeyValue::new(
            sc::GEN_AI_REQUEST_STOP_SEQUENCES,
            string_array(stop),
        ));
    }
    if operation == Operation::Chat {
        let output_type = get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .map(|t| match t {
                "json_object" | "json_schema" => "json",
                "text" => "text",
                other => other,
            });
        if let Some(t) = output_type {
            out.push(KeyValue::new(sc::GEN_AI_OUTPUT_TYPE, t.to_owned()));
        }
    }
}

fn string_array(items: impl IntoIterator<Item = String>) -> opentelemetry::Value {
    opentelemetry::Value::Array(Array::String(
        items.into_iter().map(StringValue::from).collect(),
    ))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A span status description: `text`, cut after [`MAX_DESCRIPTION_CHARS`] characters.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}
