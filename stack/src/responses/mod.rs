//! The OpenAI Responses API (`docs/responses.md`): `POST /v1/responses` (plain and streamed),
//! `GET /v1/responses/{id}`, `GET /v1/responses` (Llama Stack's listing), `DELETE
//! /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`.
//!
//! Modules, one job each:
//! - [`request`]: parsing and checking a create request (400s that name the field).
//! - [`run`]: the orchestration: MCP tool listing, model turns, tool calls.
//! - [`items`]: output items, and the conversation as chat messages.
//! - [`events`]: numbered streaming events.
//! - [`store`]: the SQLite store of responses, their input items and conversations.

pub mod events;
pub mod items;
pub mod request;
pub mod run;
pub mod store;

use futures::StreamExt;
use opentelemetry::trace::FutureExt as _;
use serde_json::{Value, json};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::api::listing::{blocking, list_object, page};
use crate::api::{Params, Reply};
use crate::config::ModelType;
use crate::context::Captured;
use crate::error::{ApiError, INVALID_REQUEST};
use crate::telemetry::agent::{AgentRequest, AgentSpan};
use crate::telemetry::provider_name;
use crate::{Stack, ids};
use events::Emitter;
use request::CreateRequest;
pub use store::{Order, ResponseStore, StoreError, StoredResponse};

/// A create request ready to run.
struct Prepared {
    req: CreateRequest,
    /// The shields of `guardrails`.
    guards: Vec<crate::safety::Shield>,
    /// The request's `tools`, as echoed (no credentials).
    tools: Value,
    id: String,
    created_at: i64,
    input_items: Vec<Value>,
    /// The chain's conversation followed by this input.
    conversation: Vec<Value>,
    conversation_id: String,
    provider_name: &'static str,
    provider_model_id: String,
}

impl Prepared {
    /// The response object in its current state.
    fn object(
        &self,
        status: &str,
        output: &[Value],
        error: Option<Value>,
        usage: Option<(u64, u64)>,
    ) -> Value {
        let r = &self.req;
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": r.model,
            "output": output,
            "error": error,
            "incomplete_details": null,
            "instructions": r.instructions,
            "max_output_tokens": r.max_output_tokens,
            "max_tool_calls": r.max_tool_calls,
            "metadata": r.metadata,
            "parallel_tool_calls": r.parallel_tool_calls,
            "previous_response_id": r.previous_response_id,
            "store": r.store,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "text": r.text,
            "tool_choice": r.tool_choice,
            "tools": self.tools,
            "truncation": "disabled",
            "usage": usage.map(|(input, output)| json!({
                "input_tokens": input,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input + output,
            })),
            "user": null,
        })
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        404,
        INVALID_REQUEST,
        format!("Response with id '{id}' not found."),
        Some("response_id"),
        Some("response_not_found"),
    )
}

impl Stack {
    /// Runs `f` on the responses store on a blocking thread (see [`crate::api::listing::blocking`]).
    async fn with_store<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&ResponseStore) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        blocking("responses", move || f(this.response_store())).await
    }
}

impl Stack {
    /// `POST /v1/responses` with a parsed body: a response object, or its events when
    /// `stream` is set.
    pub async fn create_response(&self, body: Value) -> Result<Reply, ApiError> {
        let req = request::parse(&body)?;
        let route = self.registry().resolve(&req.model)?;
        if route.model.model_type == ModelType::Embedding {
            return Err(ApiError::new(
                400,
                INVALID_REQUEST,
                format!(
                    "Model '{}' is an embedding model; it does not support responses.",
                    req.model
                ),
                Some("model"),
                Some("model_not_supported"),
            ));
        }
        let guards = req
            .guardrails
            .iter()
            .map(|id| self.shields().get(id))
            .collect::<Result<Vec<_>, _>>()?;
        let provider_name = provider_name(route.provider.provider_type());
        let provider_model_id = route.model.provider_model_id.clone();
        let previous = match &req.previous_response_id {
            Some(id) => {
                let key = id.clone();
                let stored = self
                    .with_store(move |s| s.get(&key))
                    .await?
                    .ok_or_else(|| {
                        let mut e = not_found(id);
                        e.param = Some("previous_response_id".into());
                        e.message = format!("Previous response with id '{id}' not found.");
                        e
                    })?;
                Some(stored)
            }
            None => None,
        };
        let input_items = items::with_ids(req.input.clone());
        let id = ids::mint("resp");
        let created_at = ids::created_at();
        let (mut conversation, conversation_id) = match previous {
            Some(p) => (p.conversation, p.conversation_id),
            None => (Vec::new(), id.clone()),
        };
        conversation.extend(input_items.iter().cloned());
        let prepared = Prepared {
            guards,
            tools: request::echoed_tools(&body),
            req,
            id,
            created_at,
            input_items,
            conversation,
            conversation_id,
            provider_name,
            provider_model_id,
        };
        if !prepared.req.stream {
            return self
                .execute(prepared, Emitter::none())
                .await
                .map(Reply::Json);
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let this = self.clone();
        let cx = opentelemetry::Context::current();
        // The response runs to its end even if the client goes away, and is stored.
        let task = Captured::current().scope(async move {
            if let Err(e) = this.execute(prepared, Emitter::to(tx)).await {
                tracing::warn!("a streamed response could not be stored: {}", e.message);
            }
        });
        tokio::spawn(task.with_context(cx));
        Ok(Reply::Events(
            UnboundedReceiverStream::new(rx).map(Ok).boxed(),
        ))
    }

    /// Runs a prepared response, stores it and gives its final object.
    async fn execute(&self, p: Prepared, mut emitter: Emitter) -> Result<Value, ApiError> {
        let output_type = match p.req.text.pointer("/format/type").and_then(Value::as_str) {
            Some("json_object" | "json_schema") => "json",
            _ => "text",
        };
        let span = AgentSpan::start(
            self.telemetry(),
            &AgentRequest {
                provider_name: p.provider_name,
                request_model: &p.provider_model_id,
                response_id: &p.id,
                conversation_id: &p.conversation_id,
                temperature: p.req.temperature,
                top_p: p.req.top_p,
                max_tokens: p.req.max_output_tokens,
                output_type,
            },
        );
        let started = p.object("in_progress", &[], None, None);
        emitter.emit("response.created", json!({"response": started}));
        emitter.emit("response.in_progress", json!({"response": started}));
        let run = run::Run::new(
            self,
            &p.req,
            p.conversation.clone(),
            emitter,
            &span,
            p.guards.clone(),
        );
        let (outcome, mut emitter) = run.run().with_context(span.context().clone()).await;
        let response = p.object(
            outcome.status,
            &outcome.output,
            outcome.error.clone(),
            Some((outcome.input_tokens, outcome.output_tokens)),
        );
        let mut conversation = p.conversation;
        conversation.extend(outcome.output.iter().cloned());
        let stored = if p.req.store {
            let row = StoredResponse {
                response: response.clone(),
                input_items: p.input_items,
                conversation,
                conversation_id: p.conversation_id,
            };
            self.with_store(move |s| s.put(&row)).await
        } else {
            Ok(())
        };
        let failure = outcome.error.as_ref().map(|e| {
            (
                e.get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("_OTHER")
                    .to_owned(),
                e.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            )
        });
        span.finish(
            outcome.input_tokens,
            outcome.output_tokens,
            failure.as_ref().map(|(t, m)| (t.as_str(), m.as_str())),
        );
        let kind = if outcome.status == "completed" {
            "response.completed"
        } else {
            "response.failed"
        };
        if let Err(e) = stored {
            emitter.emit(
                "error",
                json!({"code": "storage_error", "message": e.message, "param": null}),
            );
            return Err(e);
        }
        emitter.emit(kind, json!({"response": response}));
        Ok(response)
    }

    /// `GET /v1/responses/{id}`.
    pub async fn get_response(&self, id: &str) -> Result<Value, ApiError> {
        let key = id.to_owned();
        self.with_store(move |s| s.get(&key))
            .await?
            .map(|s| s.response)
            .ok_or_else(|| not_found(id))
    }

    /// `DELETE /v1/responses/{id}`.
    pub async fn delete_response(&self, id: &str) -> Result<Value, ApiError> {
        let key = id.to_owned();
        if self.with_store(move |s| s.delete(&key)).await? {
            Ok(json!({"id": id, "object": "response", "deleted": true}))
        } else {
            Err(not_found(id))
        }
    }

    /// `GET /v1/responses`: stored responses, newest first by default (`after`, `limit`,
    /// `order`, `model`).
    pub async fn list_responses(&self, params: &Params) -> Result<Value, ApiError> {
        let (limit, order) = page(params, Order::Desc)?;
        let after = params.query("after").map(str::to_owned);
        let model = params.query("model").map(str::to_owned);
        let (data, has_more) = self
            .with_store(move |s| s.list(after.as_deref(), limit, order, model.as_deref()))
            .await?;
        Ok(list_object(data, has_more))
    }

    /// `GET /v1/responses/{id}/input_items`: the items of the response's `input` (`after`,
    /// `before`, `limit`, `order`; newest first by default, as OpenAI).
    pub async fn list_input_items(&self, id: &str, params: &Params) -> Result<Value, ApiError> {
        let (limit, order) = page(params, Order::Desc)?;
        let key = id.to_owned();
        let stored = self
            .with_store(move |s| s.get(&key))
            .await?
            .ok_or_else(|| not_found(id))?;
        let mut all = stored.input_items;
        if order == Order::Desc {
            all.reverse();
        }
        let position = |cursor: &str| {
            all.iter()
                .position(|i| i.get("id").and_then(Value::as_str) == Some(cursor))
        };
        let start = match params.query("after") {
            Some(after) => position(after).map_or(all.len(), |i| i + 1),
            None => 0,
        };
        let end = match params.query("before") {
            Some(before) => position(before).unwrap_or(all.len()),
            None => all.len(),
        };
        let window: Vec<Value> = all.get(start..end.max(start)).unwrap_or_default().to_vec();
        let has_more = window.len() > limit;
        Ok(list_object(
            window.into_iter().take(limit).collect(),
            has_more,
        ))
    }
}
