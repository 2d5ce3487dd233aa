//! MCP client telemetry (semantic conventions v1.41.1, `mcp-v1.41.1.md`): a CLIENT span per MCP
//! request or notification, named `{mcp.method.name}` or `{mcp.method.name} {gen_ai.tool.name}`,
//! and the `mcp.client.operation.duration` metric.
//!
//! A `tools/call` made inside an `execute_tool` span does not get a span of its own: as the
//! conventions ask, its MCP attributes go on that `execute_tool` span.
//!
//! One [`Observer`] watches one MCP session: it knows the parent context the session's current
//! operation runs in, the server's address, and the protocol version the server negotiated.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::BoxStream;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::Value;

use super::semconv as sc;
use super::sink::Telemetry;

/// Where the session's operations are parented, and what it learned about the server.
#[derive(Default)]
struct State {
    parent: Context,
    /// The parent's span is an `execute_tool` span (a `tools/call` decorates it).
    in_tool_span: bool,
    protocol_version: Option<String>,
    /// Attributes for the span of the next message only.
    next_extra: Vec<KeyValue>,
}

/// The telemetry of one MCP session.
pub struct Observer {
    telemetry: Telemetry,
    server_address: Option<String>,
    server_port: Option<u16>,
    /// Attributes for every span of the session (e.g. Llama Stack's `llama_stack.mcp.*`).
    extra: Vec<KeyValue>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("server_address", &self.server_address)
            .field("server_port", &self.server_port)
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// An observer of a session with the server at `url`; operations are parented by `parent`
    /// until [`Observer::set_parent`] says otherwise, and their spans get `extra`.
    pub fn new(
        telemetry: Telemetry,
        url: &url::Url,
        parent: Context,
        extra: Vec<KeyValue>,
    ) -> Arc<Self> {
        Arc::new(Self {
            telemetry,
            server_address: url.host_str().map(str::to_owned),
            server_port: url.port_or_known_default(),
            extra,
            state: Mutex::new(State {
                parent,
                ..State::default()
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        support::sync::lock(&self.state)
    }

    /// Parents the next operations by `cx`; `in_tool_span` says that its span is the
    /// `execute_tool` span of the tool about to be called.
    pub fn set_parent(&self, cx: Context, in_tool_span: bool) {
        let mut state = self.state();
        state.parent = cx;
        state.in_tool_span = in_tool_span;
    }

    /// Adds `attributes` to the span of the next message only.
    pub fn annotate_next(&self, attributes: Vec<KeyValue>) {
        self.state().next_extra = attributes;
    }

    /// The current parent context.
    pub fn context(&self) -> Context {
        self.state().parent.clone()
    }

    /// The protocol version the server negotiated, once `initialize` was answered.
    pub fn protocol_version(&self) -> Option<String> {
        self.state().protocol_version.clone()
    }

    /// Starts the telemetry of one JSON-RPC message about to be sent.
    pub fn begin(self: &Arc<Self>, message: &Value, session_id: Option<&str>) -> McpOp {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let tool = (method == "tools/call")
            .then(|| message.pointer("/params/name").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned);
        let request_id = message
            .get("id")
            .filter(|id| !id.is_null())
            .map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let (parent, in_tool_span, version, next_extra) = {
            let mut state = self.state();
            (
                state.parent.clone(),
                state.in_tool_span,
                state.protocol_version.clone(),
                std::mem::take(&mut state.next_extra),
            )
        };
        let mut metric_attributes = vec![
            KeyValue::new(sc::MCP_METHOD_NAME, method.clone()),
            KeyValue::new(sc::NETWORK_TRANSPORT, "tcp"),
            KeyValue::new(sc::NETWORK_PROTOCOL_NAME, "http"),
        ];
        if let Some(address) = &self.server_address {
            metric_attributes.push(KeyValue::new(sc::SERVER_ADDRESS, address.clone()));
            if let Some(port) = self.server_port {
                metric_attributes.push(KeyValue::new(sc::SERVER_PORT, i64::from(port)));
            }
        }
        if let Some(version) = version {
            metric_attributes.push(KeyValue::new(sc::MCP_PROTOCOL_VERSION, version));
        }
        if let Some(tool) = &tool {
            metric_attributes.push(KeyValue::new(sc::GEN_AI_TOOL_NAME, tool.clone()));
            metric_attributes.push(KeyValue::new(
                sc::GEN_AI_OPERATION_NAME,
                sc::OPERATION_EXECUTE_TOOL,
            ));
        }
        let mut attributes = metric_attributes.clone();
        if let Some(id) = &request_id {
            attributes.push(KeyValue::new(sc::JSONRPC_REQUEST_ID, id.clone()));
        }
        if let Some(session) = session_id {
            attributes.push(KeyValue::new(sc::MCP_SESSION_ID, session.to_owned()));
        }
        attributes.extend(self.extra.iter().cloned());
        attributes.extend(next_extra);
        let decorates = tool.is_some() && in_tool_span;
        let cx = if decorates {
            let span = parent.span();
            for kv in attributes {
                // The execute_tool span has its own operation name already.
                if kv.key.as_str() != sc::GEN_AI_OPERATION_NAME {
                    span.set_attribute(kv);
                }
            }
            parent
        } else {
            let name = match &tool {
                Some(t) => format!("{method} {t}"),
                None => method.clone(),
            };
            let tracer = self.telemetry.tracer();
            let span = tracer
                .span_builder(name)
                .with_kind(SpanKind::Client)
                .with_attributes(attributes)
                .start_with_context(tracer.as_ref(), &parent);
            parent.with_span(span)
        };
        McpOp {
            observer: self.clone(),
            cx,
            owns_span: !decorates,
            is_initialize: method == "initialize",
            metric_attributes,
            started: Instant::now(),
            done: Mutex::new(false),
        }
    }
}

/// The telemetry of one MCP message in flight; ends when its answer (or failure) is known, or
/// when dropped.
pub struct McpOp {
    observer: Arc<Observer>,
    cx: Context,
    owns_span: bool,
    is_initialize: bool,
    metric_attributes: Vec<KeyValue>,
    started: Instant,
    done: Mutex<bool>,
}

impl McpOp {
    /// The context to send the message in (its span current).
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Puts the W3C trace context into the message's `params._meta`, as the MCP conventions
    /// propose (requests and notifications with `params` only; nothing when no span is
    /// recording).
    pub fn inject_into(&self, message: &mut Value) {
        if message.get("method").is_none() || !self.cx.span().span_context().is_valid() {
            return;
        }
        let mut carrier = std::collections::HashMap::new();
        TraceContextPropagator::new().inject_context(&self.cx, &mut carrier);
        if carrier.is_empty() {
            return;
        }
        // Only into an existing `params` object: adding one would change the message's shape
        // (and its recording key) depending on whether a span is recording.
        let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
            return;
        };
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            for (k, v) in carrier {
                meta.insert(k, Value::String(v));
            }
        }
    }

    /// The message needed no answer and the server took it.
    pub fn finish_accepted(&self) {
        self.end(None, None);
    }

    /// The server answered with this JSON-RPC message (a result or an error).
    pub fn finish_with(&self, answer: &Value) {
        if let Some(error) = answer.get("error").filter(|e| e.is_object()) {
            let code = error
                .get("code")
                .map(|c| c.to_string())
                .unwrap_or_else(|| sc::ERROR_TYPE_OTHER.to_owned());
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            self.end(Some((code.clone(), message)), Some(code));
            return;
        }
        if self.is_initialize
            && let Some(v) = answer
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
        {
            self.observer.state().protocol_version = Some(v.to_owned());
            self.cx
                .span()
                .set_attribute(KeyValue::new(sc::MCP_PROTOCOL_VERSION, v.to_owned()));
        }
        if answer.pointer("/result/isError") == Some(&Value::Bool(true)) {
            let text = answer
                .pointer("/result/content/0/text")
                .and_then(Value::as_str)
                .unwrap_or("the tool reported an error")
                .to_owned();
            self.end(Some((sc::ERROR_TYPE_TOOL_ERROR.to_owned(), text)), None);
            return;
        }
        self.end(None, None);
    }

    /// The HTTP exchange failed with this status.
    pub fn fail_status(&self, status: u16, message: &str) {
        self.end(Some((status.to_string(), message.to_owned())), None);
    }

    /// The message could not be sent or its answer not read.
    pub fn fail_transport(&self, message: &str) {
        self.end(
            Some((sc::ERROR_TYPE_OTHER.to_owned(), message.to_owned())),
            None,
        );
    }

    /// Passes an SSE answer on, ending the operation at the first JSON-RPC answer in it (or when
    /// the stream ends or fails first).
    pub fn watch<E: std::fmt::Display + Send + 'static>(
        self,
        events: BoxStream<'static, Result<sse_stream::Sse, E>>,
    ) -> BoxStream<'static, Result<sse_stream::Sse, E>> {
        let op = Arc::new(self);
        let at_end = op.clone();
        events
            .inspect(move |item| match item {
                Ok(event) => {
                    if let Some(data) = event.data.as_deref()
                        && let Ok(value) = serde_json::from_str::<Value>(data)
                        && (value.get("result").is_some() || value.get("error").is_some())
                    {
                        op.finish_with(&value);
                    }
                }
                Err(e) => op.fail_transport(&format!("the SSE answer broke: {e}")),
            })
            .chain(futures::stream::poll_fn(move |_| {
                at_end.fail_transport("the SSE answer ended without a JSON-RPC answer");
                std::task::Poll::Ready(None)
            }))
            .boxed()
    }

    fn end(&self, failure: Option<(String, String)>, rpc_code: Option<String>) {
        {
            let mut done = support::sync::lock(&self.done);
            if *done {
                return;
            }
            *done = true;
        }
        let mut metric_attributes = self.metric_attributes.clone();
        let span = self.cx.span();
        if let Some(code) = rpc_code {
            span.set_attribute(KeyValue::new(sc::RPC_RESPONSE_STATUS_CODE, code.clone()));
            metric_attributes.push(KeyValue::new(sc::RPC_RESPONSE_STATUS_CODE, code));
        }
        if let Some((error_type, message)) = failure {
            span.set_attribute(KeyValue::new(sc::ERROR_TYPE, error_type.clone()));
            metric_attributes.push(KeyValue::new(sc::ERROR_TYPE, error_type));
            if self.owns_span {
                span.set_status(Status::error(message));
            }
        }
        if self.owns_span {
            span.end();
        }
        self.observer
            .telemetry
            .mcp_operation_duration()
            .record(self.started.elapsed().as_secs_f64(), &metric_attributes);
    }
}

impl Drop for McpOp {
    fn drop(&mut self) {
        self.end(
            Some((sc::ERROR_TYPE_OTHER.to_owned(), "cancelled".to_owned())),
            None,
        );
    }
}
