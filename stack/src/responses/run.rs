//! The orchestration of one response: list the MCP servers' tools (unless the conversation
//! already listed them), then model turns through the stack's own chat completions (recorded and
//! traced like any inference call) until the model answers in text. MCP calls are executed by the
//! stack (`mcp_call` items); function calls end the response with `function_call` items for the
//! client; calls that need an approval end it with `mcp_approval_request` items. The loop also
//! stops at `max_tool_calls` (the next turn gets no tools) and at [`MAX_TURNS`].
//!
//! A failure after the response started (a provider error, an MCP server that cannot list its
//! tools) gives status `failed` with an error object, never a bare 5xx.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use opentelemetry::KeyValue;
use opentelemetry::trace::FutureExt as _;
use serde_json::{Value, json};

use super::events::Emitter;
use super::items;
use super::request::{CreateRequest, McpTool, Tool};
use crate::Stack;
use crate::api::Reply;
use crate::error::ApiError;
use crate::ids;
use crate::mcp::McpSession;
use crate::safety::Shield;
use crate::safety::llama_guard::{self, Role};
use crate::telemetry::agent::{AgentSpan, ToolCall};
use crate::telemetry::semconv as sc;

/// Most model turns in one response (Llama Stack's `max_infer_iters` default).
pub const MAX_TURNS: usize = 10;
/// Most tool calls read from one streamed turn (a provider's call index beyond it is ignored).
pub const MAX_CALLS_PER_TURN: usize = 64;

/// Where a tool name offered to the model leads.
#[derive(Debug, Clone)]
enum Route {
    Function,
    Mcp(usize),
}

/// What one model turn gave.
#[derive(Debug, Default)]
struct Turn {
    text: String,
    /// (name, arguments) in the order the model made them.
    calls: Vec<(String, String)>,
    input_tokens: u64,
    output_tokens: u64,
    /// The text was streamed and its `message` item is already in the output.
    message_done: bool,
}

/// How a response ended.
#[derive(Debug)]
pub(super) struct Outcome {
    pub status: &'static str,
    pub output: Vec<Value>,
    pub error: Option<Value>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One response being made.
pub(super) struct Run<'a> {
    pub stack: &'a Stack,
    pub req: &'a CreateRequest,
    /// Items before this response's output: the chain's conversation, then this input.
    pub conversation: Vec<Value>,
    pub emitter: Emitter,
    pub span: &'a AgentSpan,
    /// The shields checking the input and each answer (`guardrails`).
    guards: Vec<Shield>,
    output: Vec<Value>,
    /// Open sessions by tool index (ordered, so sessions end in the same order every run).
    sessions: BTreeMap<usize, McpSession>,
    /// Tool definitions offered to the model, and where each name leads.
    offered: Vec<Value>,
    routes: HashMap<String, Route>,
    tool_calls_made: u64,
    input_tokens: u64,
    output_tokens: u64,
}

/// A failure that fails the response.
struct Failed {
    code: String,
    message: String,
}

impl From<ApiError> for Failed {
    fn from(e: ApiError) -> Self {
        let code = e
            .code()
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if e.status >= 500 {
                    "server_error".into()
                } else {
                    e.error_type.clone()
                }
            });
        Failed {
            code,
            message: e.message,
        }
    }
}

impl<'a> Run<'a> {
    pub fn new(
        stack: &'a Stack,
        req: &'a CreateRequest,
        conversation: Vec<Value>,
        emitter: Emitter,
        span: &'a AgentSpan,
        guards: Vec<Shield>,
    ) -> Self {
        Self {
            stack,
            req,
            conversation,
            emitter,
            span,
            guards,
            output: Vec::new(),
            sessions: BTreeMap::new(),
            offered: Vec::new(),
            routes: HashMap::new(),
            tool_calls_made: 0,
            input_tokens: 0,
            output_tokens: 0,
        }
    }

    /// Runs the response to its end and closes its MCP sessions.
    pub async fn run(mut self) -> (Outcome, Emitter) {
        let result = self.steps().await;
        for (_, session) in std::mem::take(&mut self.sessions) {
            session.close(self.span.context().clone()).await;
        }
        let outcome = match result {
            Ok(()) => Outcome {
                status: "completed",
                output: self.output,
                error: None,
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
            },
            Err(f) => Outcome {
                status: "failed",
                output: self.output,
                error: Some(json!({"code": f.code, "message": f.message})),
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
            },
        };
        (outcome, self.emitter)
    }

    async fn steps(&mut self) -> Result<(), Failed> {
        // Input guardrails first: a violation answers with a refusal and nothing else runs.
        if !self.guards.is_empty()
            && let Some(refusal) = self.guard_input().await?
        {
            let index = self.output.len();
            let item = items::refusal(&ids::mint("msg"), &refusal);
            self.emitter.item_added(index, &item);
            self.emitter.item_done(index, &item);
            self.output.push(item);
            return Ok(());
        }
        // Approved calls run first; the model then continues from their results.
        self.approvals().await?;
        self.offer_tools().await?;
        let mut tools_on = true;
        // A forced `tool_choice` ("required", a named tool) holds for the first turn only: once
        // tools ran, the model must be free to answer.
        let mut forced = true;
        for _ in 0..MAX_TURNS {
            let turn = self.turn(tools_on, forced).await?;
            forced = false;
            if !turn.message_done && (!turn.text.is_empty() || turn.calls.is_empty()) {
                self.push_message(&turn.text).await?;
            }
            if turn.calls.is_empty() {
                return Ok(());
            }
            let mut stop = false;
            for (name, arguments) in turn.calls {
                match self.routes.get(&name).cloned() {
                    Some(Route::Function) => {
                        let call_id = ids::mint("call");
                        let item =
                            items::function_call(&ids::mint("fc"), &call_id, &name, &arguments);
                        self.function_call(item, &arguments);
                        stop = true;
                    }
                    Some(Route::Mcp(i)) => {
                        let tool = self.mcp_tool(i).clone();
                        if tool.require_approval.needed_for(&name) {
                            let item = items::mcp_approval_request(
                                &ids::mint("mcpr"),
                                &tool.server.server_label,
                                &name,
                                &arguments,
                            );
                            let index = self.output.len();
                            self.emitter.item_added(index, &item);
                            self.emitter.item_done(index, &item);
                            self.output.push(item);
                            stop = true;
                        } else if self
                            .req
                            .max_tool_calls
                            .is_some_and(|max| self.tool_calls_made >= max)
                        {
                            tracing::info!(tool = %name, "max_tool_calls reached: the call is ignored and the next turn gets no tools");
                            tools_on = false;
                        } else {
                            self.mcp_call(i, &name, &arguments, None).await;
                        }
                    }
                    None => {
                        tracing::warn!(tool = %name, "the model called a tool that was not offered; the next turn gets no tools");
                        tools_on = false;
                    }
                }
            }
            if stop {
                return Ok(());
            }
            if self
                .req
                .max_tool_calls
                .is_some_and(|max| self.tool_calls_made >= max)
            {
                // No more calls may run: the next turn is offered no tools, so it answers.
                tools_on = false;
            }
        }
        tracing::info!("the response reached {MAX_TURNS} model turns and ends there");
        Ok(())
    }

    fn mcp_tool(&self, i: usize) -> &McpTool {
        match &self.req.tools[i] {
            Tool::Mcp(t) => t,
            // Routes to MCP are only made from MCP tools.
            Tool::Function { .. } => unreachable!("route to a function tool marked as MCP"),
        }
    }

    /// Executes the calls the input approves (`mcp_approval_response` items answering the
    /// conversation's `mcp_approval_request`s); whether any ran.
    async fn approvals(&mut self) -> Result<bool, Failed> {
        let responses: Vec<(String, bool)> = self
            .conversation
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("mcp_approval_response"))
            .filter_map(|i| {
                Some((
                    i.get("approval_request_id")?.as_str()?.to_owned(),
                    i.get("approve")?.as_bool()?,
                ))
            })
            .collect();
        let mut answered: Vec<String> = self
            .conversation
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("mcp_call"))
            .filter_map(|i| {
                i.get("approval_request_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let mut ran = false;
        for (request_id, approve) in responses {
            if !approve || answered.contains(&request_id) {
                continue;
            }
            let Some(request) = self
                .conversation
                .iter()
                .find(|i| {
                    i.get("type").and_then(Value::as_str) == Some("mcp_approval_request")
                        && i.get("id").and_then(Value::as_str) == Some(request_id.as_str())
                })
                .cloned()
            else {
                return Err(Failed {
                    code: "invalid_request_error".into(),
                    message: format!(
                        "No mcp_approval_request with id '{request_id}' in this conversation."
                    ),
                });
            };
            let label = request["server_label"].as_str().unwrap_or_default();
            let Some(i) = self
                .req
                .tools
                .iter()
                .position(|t| matches!(t, Tool::Mcp(m) if m.server.server_label == label))
            else {
                return Err(Failed {
                    code: "invalid_request_error".into(),
                    message: format!(
                        "The approved call is for MCP server '{label}', which is not among this request's tools."
                    ),
                });
            };
            let name = request["name"].as_str().unwrap_or_default().to_owned();
            let arguments = request["arguments"].as_str().unwrap_or("{}").to_owned();
            self.mcp_call(i, &name, &arguments, Some(&request_id)).await;
            answered.push(request_id);
            ran = true;
        }
        Ok(ran)
    }

    /// Lists the tools of every MCP server (or takes them from an `mcp_list_tools` item the
    /// conversation already has) and builds the tool definitions offered to the model.
    async fn offer_tools(&mut self) -> Result<(), Failed> {
        for i in 0..self.req.tools.len() {
            match &self.req.tools[i] {
                Tool::Function { name, definition } => {
                    self.offered
                        .push(json!({"type": "function", "function": definition}));
                    self.routes.entry(name.clone()).or_insert(Route::Function);
                }
                Tool::Mcp(tool) => {
                    let tool = tool.clone();
                    let listed = self.listed_before(&tool.server.server_label);
                    let tools = match listed {
                        Some(tools) => tools,
                        None => self.list_tools(i, &tool).await?,
                    };
                    for t in tools {
                        let Some(name) = t.get("name").and_then(Value::as_str) else {
                            continue;
                        };
                        if !tool.allows(name) || self.routes.contains_key(name) {
                            continue;
                        }
                        let mut function = json!({
                            "name": name,
                            "parameters": t.get("input_schema").or(t.get("inputSchema")).cloned().unwrap_or(json!({"type": "object", "properties": {}})),
                        });
                        if let Some(d) = t.get("description").filter(|d| d.is_string()) {
                            function["description"] = d.clone();
                        }
                        self.offered
                            .push(json!({"type": "function", "function": function}));
                        self.routes.insert(name.to_owned(), Route::Mcp(i));
                    }
                }
            }
        }
        Ok(())
    }

    /// The tools of an `mcp_list_tools` item for `label` already in the conversation.
    fn listed_before(&self, label: &str) -> Option<Vec<Value>> {
        self.conversation
            .iter()
            .rev()
            .find(|i| {
                i.get("type").and_then(Value::as_str) == Some("mcp_list_tools")
                    && i.get("server_label").and_then(Value::as_str) == Some(label)
                    && i.get("error").is_none_or(Value::is_null)
            })
            .and_then(|i| i.get("tools").and_then(Value::as_array).cloned())
    }

    async fn session(&mut self, i: usize) -> Result<&McpSession, crate::mcp::McpError> {
        if !self.sessions.contains_key(&i) {
            let tool = self.mcp_tool(i);
            let session = McpSession::connect(
                self.stack.provider_client().clone(),
                self.stack.telemetry().clone(),
                &tool.server,
                self.span.context().clone(),
            )
            .await?;
            self.sessions.insert(i, session);
        }
        // Inserted just above when missing.
        Ok(&self.sessions[&i])
    }

    async fn list_tools(&mut self, i: usize, tool: &McpTool) -> Result<Vec<Value>, Failed> {
        let label = tool.server.server_label.clone();
        let id = ids::mint("mcpl");
        let index = self.output.len();
        self.emitter
            .item_added(index, &items::mcp_list_tools(&id, &label, &[], None));
        self.emitter.emit(
            "response.mcp_list_tools.in_progress",
            json!({"item_id": id, "output_index": index}),
        );
        self.span.annotate(vec![
            KeyValue::new(sc::LLAMA_STACK_MCP_LIST_TOOLS_ID, id.clone()),
            KeyValue::new(sc::LLAMA_STACK_MCP_SERVER_LABEL, label.clone()),
            KeyValue::new(
                sc::LLAMA_STACK_MCP_SERVER_URL,
                tool.server.server_url.to_string(),
            ),
        ]);
        let parent = self.span.context().clone();
        let listed = match self.session(i).await {
            Ok(session) => session.list_tools(parent, &id).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(tools) => {
                // The item shows what the response may use: the allowed tools only.
                let tools: Vec<Value> = tools
                    .into_iter()
                    .filter(|t| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| tool.allows(n))
                    })
                    .collect();
                let item = items::mcp_list_tools(&id, &label, &tools, None);
                self.emitter.emit(
                    "response.mcp_list_tools.completed",
                    json!({"item_id": id, "output_index": index}),
                );
                self.emitter.item_done(index, &item);
                let shown = item["tools"].as_array().cloned().unwrap_or_default();
                self.output.push(item);
                Ok(shown)
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(server_label = %label, "listing MCP tools failed: {message}");
                let item = items::mcp_list_tools(&id, &label, &[], Some(&message));
                self.emitter.emit(
                    "response.mcp_list_tools.failed",
                    json!({"item_id": id, "output_index": index}),
                );
                self.emitter.item_done(index, &item);
                self.output.push(item);
                Err(Failed {
                    code: "mcp_list_tools_failed".into(),
                    message,
                })
            }
        }
    }

    async fn mcp_call(&mut self, i: usize, name: &str, arguments: &str, approval: Option<&str>) {
        let label = self.mcp_tool(i).server.server_label.clone();
        let url = self.mcp_tool(i).server.server_url.to_string();
        let id = ids::mint("mcp");
        let index = self.output.len();
        self.tool_calls_made += 1;
        let mut added = items::mcp_call(&id, &label, name, arguments, None, None, "in_progress");
        if let Some(request_id) = approval {
            added["approval_request_id"] = Value::from(request_id);
        }
        self.emitter.item_added(index, &added);
        self.emitter.emit(
            "response.mcp_call.in_progress",
            json!({"item_id": id, "output_index": index}),
        );
        self.emitter.emit(
            "response.mcp_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": arguments}),
        );
        self.emitter.emit(
            "response.mcp_call_arguments.done",
            json!({"item_id": id, "output_index": index, "arguments": arguments}),
        );
        let tool_cx = self.span.tool(&ToolCall {
            name,
            call_id: &id,
            server_label: &label,
            server_url: &url,
            arguments,
        });
        let outcome: Result<String, (String, String)> =
            match serde_json::from_str::<Value>(arguments) {
                Ok(Value::Object(args)) => match self.session(i).await {
                    Ok(session) => match session.call_tool(name, args, tool_cx.clone()).await {
                        Ok(o) if o.is_error => Err((sc::ERROR_TYPE_TOOL_ERROR.to_owned(), o.text)),
                        Ok(o) => Ok(o.text),
                        Err(e) => Err((e.error_type(), e.to_string())),
                    },
                    Err(e) => Err((e.error_type(), e.to_string())),
                },
                _ => Err((
                    sc::ERROR_TYPE_OTHER.to_owned(),
                    format!("the model's arguments for {name} are not a JSON object: {arguments}"),
                )),
            };
        let item = match &outcome {
            Ok(output) => {
                self.span.end_tool(&tool_cx, Ok(output));
                self.emitter.emit(
                    "response.mcp_call.completed",
                    json!({"item_id": id, "output_index": index}),
                );
                items::mcp_call(
                    &id,
                    &label,
                    name,
                    arguments,
                    Some(output),
                    None,
                    "completed",
                )
            }
            Err((kind, message)) => {
                self.span.end_tool(&tool_cx, Err((kind, message)));
                self.emitter.emit(
                    "response.mcp_call.failed",
                    json!({"item_id": id, "output_index": index}),
                );
                items::mcp_call(&id, &label, name, arguments, None, Some(message), "failed")
            }
        };
        let mut item = item;
        if let Some(request_id) = approval {
            item["approval_request_id"] = Value::from(request_id);
        }
        self.emitter.item_done(index, &item);
        self.output.push(item);
    }

    fn function_call(&mut self, item: Value, arguments: &str) {
        let index = self.output.len();
        let id = item["id"].clone();
        let mut added = item.clone();
        added["status"] = Value::from("in_progress");
        added["arguments"] = Value::from("");
        self.emitter.item_added(index, &added);
        self.emitter.emit(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": arguments}),
        );
        self.emitter.emit(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": index, "arguments": arguments}),
        );
        self.emitter.item_done(index, &item);
        self.output.push(item);
    }

    /// Adds the assistant's text as a `message` item (streamed turns emitted its events as the
    /// text came; a whole answer gets them here).
    async fn push_message(&mut self, text: &str) -> Result<(), Failed> {
        let index = self.output.len();
        let id = ids::mint("msg");
        self.text_events(index, &id, Some(text));
        self.finish_message(index, &id, text).await
    }

    /// Ends a message item: the output guardrails check its text once (never per delta); a
    /// violation replaces the text with a refusal.
    async fn finish_message(&mut self, index: usize, id: &str, text: &str) -> Result<(), Failed> {
        let item = match self.guard_output(text).await? {
            Some(refusal) => {
                // The text is not sent again: the part ends as a refusal.
                let part = json!({"type": "refusal", "refusal": refusal});
                self.emitter.emit("response.refusal.done", json!({"item_id": id, "output_index": index, "content_index": 0, "refusal": refusal}));
                self.emitter.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                );
                let item = items::refusal(id, &refusal);
                self.emitter.item_done(index, &item);
                item
            }
            None => {
                let item = items::message(id, text, "completed");
                self.text_done_events(index, id, text, &item);
                item
            }
        };
        self.output.push(item);
        Ok(())
    }

    /// The refusal when an input guardrail finds a violation in this request's input.
    async fn guard_input(&mut self) -> Result<Option<String>, Failed> {
        let turns: Vec<(Role, String)> = self
            .req
            .input
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("message"))
            .filter_map(|i| {
                let role = match i.get("role").and_then(Value::as_str)? {
                    "user" => Role::User,
                    "assistant" => Role::Agent,
                    _ => return None,
                };
                Some((role, llama_guard::text_of(i.get("content")?)?))
            })
            .collect();
        // The input is judged as input: up to its last user message (Llama Guard assesses the
        // last turn it is shown).
        let Some(last_user) = turns.iter().rposition(|(r, _)| *r == Role::User) else {
            return Ok(None);
        };
        self.guard(&turns[..=last_user]).await
    }

    /// The refusal when an output guardrail finds a violation in the assistant's `text` (judged
    /// after the last user message of the input).
    async fn guard_output(&mut self, text: &str) -> Result<Option<String>, Failed> {
        if self.guards.is_empty() {
            return Ok(None);
        }
        let mut turns: Vec<(Role, String)> = self
            .req
            .input
            .iter()
            .rev()
            .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|i| llama_guard::text_of(i.get("content")?))
            .map(|t| vec![(Role::User, t)])
            .unwrap_or_default();
        turns.push((Role::Agent, text.to_owned()));
        self.guard(&turns).await
    }

    async fn guard(&mut self, turns: &[(Role, String)]) -> Result<Option<String>, Failed> {
        let messages = Value::from(
            turns
                .iter()
                .map(|(r, t)| json!({"role": if *r == Role::User { "user" } else { "assistant" }, "content": t}))
                .collect::<Vec<_>>(),
        )
        .to_string();
        for shield in self.guards.clone() {
            let cx = self.span.context().clone();
            if let Some(v) = self
                .stack
                .check(&shield, turns, &messages)
                .with_context(cx)
                .await?
            {
                return Ok(Some(v.user_message));
            }
        }
        Ok(None)
    }

    fn text_events(&mut self, index: usize, id: &str, delta: Option<&str>) {
        self.emitter
            .item_added(index, &items::message(id, "", "in_progress"));
        self.emitter.emit("response.content_part.added", json!({"item_id": id, "output_index": index, "content_index": 0, "part": items::output_text("")}));
        if let Some(delta) = delta.filter(|d| !d.is_empty()) {
            self.emitter.emit("response.output_text.delta", json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}));
        }
    }

    fn text_done_events(&mut self, index: usize, id: &str, text: &str, item: &Value) {
        self.emitter.emit("response.output_text.done", json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}));
        self.emitter.emit("response.content_part.done", json!({"item_id": id, "output_index": index, "content_index": 0, "part": items::output_text(text)}));
        self.emitter.item_done(index, item);
    }

    /// The chat-completions request of the next turn.
    fn chat_request(&self, tools_on: bool, forced: bool) -> Value {
        let messages = items::to_messages(
            self.req.instructions.as_deref(),
            self.conversation.iter().chain(&self.output),
        );
        let mut body = json!({"model": self.req.model, "messages": messages});
        if tools_on && !self.offered.is_empty() {
            body["tools"] = Value::from(self.offered.clone());
            body["tool_choice"] = match &self.req.tool_choice {
                Value::Object(o) if forced => match o.get("name").and_then(Value::as_str) {
                    Some(name) => json!({"type": "function", "function": {"name": name}}),
                    None => Value::from("auto"),
                },
                Value::String(c) if c == "required" && !forced => Value::from("auto"),
                Value::Object(_) => Value::from("auto"),
                other => other.clone(),
            };
            if !self.req.parallel_tool_calls {
                body["parallel_tool_calls"] = Value::Bool(false);
            }
        }
        if let Some(m) = self.req.max_output_tokens {
            body["max_tokens"] = Value::from(m);
        }
        if let Some(t) = self.req.temperature {
            body["temperature"] = Value::from(t);
        }
        if let Some(p) = self.req.top_p {
            body["top_p"] = Value::from(p);
        }
        match self
            .req
            .text
            .pointer("/format/type")
            .and_then(Value::as_str)
        {
            Some("json_object") => body["response_format"] = json!({"type": "json_object"}),
            Some("json_schema") => {
                let f = &self.req.text["format"];
                let mut schema = json!({
                    "name": f.get("name").cloned().unwrap_or(Value::from("response")),
                    "schema": f.get("schema").cloned().unwrap_or(json!({})),
                });
                if let Some(strict) = f.get("strict").filter(|s| s.is_boolean()) {
                    schema["strict"] = strict.clone();
                }
                body["response_format"] = json!({"type": "json_schema", "json_schema": schema});
            }
            _ => {}
        }
        if self.emitter.is_streaming() {
            body["stream"] = Value::Bool(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    /// One model turn through the stack's chat completions, inside the response span. A
    /// streamed response streams the turn and passes its text on as `output_text.delta` events.
    async fn turn(&mut self, tools_on: bool, forced: bool) -> Result<Turn, Failed> {
        let body = self.chat_request(tools_on, forced);
        let cx = self.span.context().clone();
        let reply = self.stack.chat_completions(body).with_context(cx).await?;
        let turn = match reply {
            Reply::Json(answer) => read_answer(&answer),
            Reply::Raw(answer) => read_answer(&answer.to_value()),
            Reply::Events(_) => {
                return Err(Failed {
                    code: "server_error".into(),
                    message: "chat completions answered with typed events".into(),
                });
            }
            Reply::Stream(mut chunks) => {
                let mut turn = Turn::default();
                let mut calls: Vec<(String, String)> = Vec::new();
                let mut message: Option<(usize, String)> = None;
                while let Some(chunk) = chunks.next().await {
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            // The message item already announced ends, incomplete, before the
                            // response fails.
                            if let Some((index, id)) = &message {
                                let item = items::message(id, &turn.text, "incomplete");
                                self.emitter.item_done(*index, &item);
                                self.output.push(item);
                            }
                            return Err(e.into());
                        }
                    };
                    read_usage(&chunk, &mut turn);
                    let Some(delta) = chunk.pointer("/choices/0/delta") else {
                        continue;
                    };
                    if let Some(text) = delta
                        .get("content")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        let (index, id) = match &message {
                            Some(m) => m.clone(),
                            None => {
                                let m = (self.output.len(), ids::mint("msg"));
                                self.text_events(m.0, &m.1, None);
                                message = Some(m.clone());
                                m
                            }
                        };
                        self.emitter.emit("response.output_text.delta", json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}));
                        turn.text.push_str(text);
                    }
                    for call in delta
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let index =
                            call.get("index")
                                .and_then(Value::as_u64)
                                .unwrap_or(calls.len() as u64) as usize;
                        if index >= MAX_CALLS_PER_TURN {
                            tracing::warn!(
                                "a tool-call delta with index {index} is ignored (at most {MAX_CALLS_PER_TURN} calls a turn)"
                            );
                            continue;
                        }
                        if calls.len() <= index {
                            calls.resize(index + 1, (String::new(), String::new()));
                        }
                        if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                            calls[index].0.push_str(name);
                        }
                        if let Some(args) =
                            call.pointer("/function/arguments").and_then(Value::as_str)
                        {
                            calls[index].1.push_str(args);
                        }
                    }
                }
                turn.calls = calls.into_iter().filter(|(n, _)| !n.is_empty()).collect();
                if let Some((index, id)) = message {
                    self.finish_message(index, &id, &turn.text).await?;
                    turn.message_done = true;
                }
                turn
            }
        };
        self.input_tokens += turn.input_tokens;
        self.output_tokens += turn.output_tokens;
        Ok(turn)
    }
}

/// Reads a whole chat answer: its text, its tool calls and its usage.
fn read_answer(answer: &Value) -> Turn {
    let mut turn = Turn::default();
    read_usage(answer, &mut turn);
    let message = answer.pointer("/choices/0/message");
    turn.text = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    turn.calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.pointer("/function/name")?.as_str()?.to_owned();
            let arguments = match c.pointer("/function/arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "{}".to_owned(),
            };
            Some((name, arguments))
        })
        .collect();
    turn
}

fn read_usage(value: &Value, turn: &mut Turn) {
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        turn.input_tokens = usage
            .get("prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        turn.output_tokens = usage
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
    }
}
