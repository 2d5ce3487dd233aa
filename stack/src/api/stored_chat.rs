//! Stored chat completions (Llama Stack's inference store): every answered chat completion is
//! kept with its input messages ([`crate::storage::chat_completions`]), and listed or retrieved
//! by `GET /v1/chat/completions` and `GET /v1/chat/completions/{completion_id}`.
//!
//! A streamed completion is stored once its stream ends well, assembled from its chunks
//! ([`Assembler`]); one that fails or that the caller drops is not stored. A store failure is
//! logged and does not fail the completion the caller already has.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::Stack;
use crate::api::listing::{blocking, list_object, page};
use crate::api::{ChunkStream, Params, Reply};
use crate::error::{ApiError, INVALID_REQUEST};
use crate::storage::Order;
use crate::storage::chat_completions::Row;

impl Stack {
    /// Whether answered chat completions are stored (the run config's
    /// `[storage] store_chat_completions`).
    pub(crate) fn stores_chat(&self) -> bool {
        self.inner.chat_store.is_some()
    }

    /// `GET /v1/chat/completions`: stored completions, newest first by default (`after`,
    /// `limit`, `order`, `model`).
    pub async fn list_chat_completions(&self, params: &Params) -> Result<Value, ApiError> {
        let (limit, order) = page(params, Order::Desc)?;
        let after = params.query("after").map(str::to_owned);
        let model = params.query("model").map(str::to_owned);
        let Some(store) = self.inner.chat_store.clone() else {
            return Ok(list_object(Vec::new(), false));
        };
        let (data, has_more) = blocking("chat completions", move || {
            store.list(after.as_deref(), limit, order, model.as_deref())
        })
        .await?;
        Ok(list_object(data, has_more))
    }

    /// `GET /v1/chat/completions/{completion_id}`: a stored completion with its
    /// `input_messages`; 404 when there is none.
    pub async fn get_chat_completion(&self, id: &str) -> Result<Value, ApiError> {
        let found = match self.inner.chat_store.clone() {
            Some(store) => {
                let key = id.to_owned();
                blocking("chat completions", move || store.get(&key)).await?
            }
            None => None,
        };
        found.ok_or_else(|| {
            let why = if self.inner.chat_store.is_some() {
                ""
            } else {
                " (this stack stores no chat completions: the run config sets [storage] store_chat_completions = false)"
            };
            ApiError::new(
                404,
                INVALID_REQUEST,
                format!("Chat completion with id '{id}' not found.{why}"),
                Some("completion_id"),
                Some("not_found"),
            )
        })
    }

    /// Stores the completion `reply` answers to `messages` (when the stack stores them) and
    /// hands the reply back: a JSON answer is queued for the store's writer as it is returned
    /// (every later read sees it); a stream is queued when it has ended well.
    /// `messages` is their JSON array text ([`crate::storage::chat_completions::messages_text`]),
    /// `None` when the stack stores no completions ([`Stack::stores_chat`]).
    pub(crate) fn store_chat(&self, reply: Reply, messages: Option<String>) -> Reply {
        let (Some(store), Some(messages)) = (self.inner.chat_store.clone(), messages) else {
            return reply;
        };
        match reply {
            Reply::Json(answer) => {
                store.put_later(Row::new(&answer, &messages));
                Reply::Json(answer)
            }
            Reply::Raw(answer) => {
                store.put_later(Row::from_raw(&answer, &messages));
                Reply::Raw(answer)
            }
            Reply::Stream(chunks) => Reply::Stream(store_when_done(chunks, move |completion| {
                store.put_later(Row::new(&completion, &messages));
            })),
            other => other,
        }
    }
}

/// Passes `chunks` through, assembling them; when the stream ends without an error, hands the
/// assembled completion to `done`.
fn store_when_done(chunks: ChunkStream, done: impl FnOnce(Value) + Send + 'static) -> ChunkStream {
    let mut state = Some((Assembler::default(), done));
    let mut failed = false;
    chunks
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .filter_map(move |item| {
            let out = match item {
                Some(Ok(chunk)) => {
                    if let Some((assembler, _)) = state.as_mut() {
                        assembler.add(&chunk);
                    }
                    Some(Ok(chunk))
                }
                Some(Err(e)) => {
                    failed = true;
                    Some(Err(e))
                }
                None => {
                    if let Some((assembler, done)) = state.take()
                        && !failed
                    {
                        done(assembler.finish());
                    }
                    None
                }
            };
            futures::future::ready(out)
        })
        .boxed()
}

/// Assembles a chat completion from its stream chunks: per choice, the role, the content and
/// each tool call's pieces joined, the last finish reason; the usage chunk's usage.
#[derive(Debug, Default)]
pub struct Assembler {
    head: Map<String, Value>,
    choices: BTreeMap<u64, ChoiceParts>,
    usage: Option<Value>,
}

#[derive(Debug, Default)]
struct ChoiceParts {
    role: Option<String>,
    content: Option<String>,
    finish_reason: Option<Value>,
    tool_calls: BTreeMap<u64, (Map<String, Value>, String, String)>,
}

impl Assembler {
    /// Takes one chunk.
    pub fn add(&mut self, chunk: &Value) {
        for key in [
            "id",
            "created",
            "model",
            "system_fingerprint",
            "service_tier",
        ] {
            // Known after the first chunk: no lookup in the chunk, no key copied, then.
            if !self.head.contains_key(key)
                && let Some(v) = chunk.get(key).filter(|v| !v.is_null())
            {
                self.head.insert(key.to_owned(), v.clone());
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let parts = self.choices.entry(index).or_default();
            if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                parts.finish_reason = Some(reason.clone());
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(role) = delta.get("role").and_then(Value::as_str) {
                parts.role = Some(role.to_owned());
            }
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                parts.content.get_or_insert_default().push_str(text);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let at = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let (head, name, arguments) = parts.tool_calls.entry(at).or_default();
                for key in ["id", "type"] {
                    if let Some(v) = call.get(key).filter(|v| !v.is_null()) {
                        head.entry(key).or_insert_with(|| v.clone());
                    }
                }
                if let Some(f) = call.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        name.push_str(n);
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        arguments.push_str(a);
                    }
                }
            }
        }
    }

    /// The assembled `chat.completion` object.
    pub fn finish(self) -> Value {
        let mut completion = self.head;
        completion.insert("object".into(), "chat.completion".into());
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, parts)| {
                let mut message = json!({
                    "role": parts.role.unwrap_or_else(|| "assistant".to_owned()),
                    "content": parts.content,
                });
                if !parts.tool_calls.is_empty() {
                    message["tool_calls"] = parts
                        .tool_calls
                        .into_values()
                        .map(|(mut head, name, arguments)| {
                            head.entry("type").or_insert_with(|| "function".into());
                            head.insert(
                                "function".into(),
                                json!({"name": name, "arguments": arguments}),
                            );
                            Value::Object(head)
                        })
                        .collect();
                }
                json!({"index": index, "message": message,
                       "finish_reason": parts.finish_reason.unwrap_or(Value::Null)})
            })
            .collect();
        completion.insert("choices".into(), choices.into());
        if let Some(usage) = self.usage {
            completion.insert("usage".into(), usage);
        }
        Value::Object(completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_assembles_into_the_completion_it_streamed() {
        let mut a = Assembler::default();
        for chunk in [
            json!({"id": "c1", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
            json!({"id": "c1", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_", "arguments": "{\"a\""}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
        ] {
            a.add(&chunk);
        }
        assert_eq!(
            a.finish(),
            json!({"id": "c1", "created": 5, "model": "m", "object": "chat.completion",
                   "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                       "role": "assistant", "content": "Hello",
                       "tool_calls": [{"id": "call_1", "type": "function",
                                       "function": {"name": "get_weather", "arguments": "{\"a\": 1}"}}]}}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        );
    }

    #[tokio::test]
    async fn only_a_stream_that_ends_well_is_handed_over() {
        use std::sync::{Arc, Mutex};
        let got = Arc::new(Mutex::new(Vec::new()));
        for (items, want) in [
            (vec![Ok(json!({"id": "a", "choices": []}))], 1),
            (
                vec![
                    Ok(json!({"id": "b", "choices": []})),
                    Err(ApiError::invalid_request("boom", None, None)),
                ],
                0,
            ),
        ] {
            got.lock().unwrap().clear();
            let sink = got.clone();
            let stream = store_when_done(futures::stream::iter(items).boxed(), move |c| {
                sink.lock().unwrap().push(c)
            });
            let _: Vec<_> = stream.collect().await;
            assert_eq!(got.lock().unwrap().len(), want);
        }
    }
}
