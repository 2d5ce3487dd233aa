//! Opt-in message content for GenAI spans: OpenAI-format requests and answers turned into the
//! `gen_ai.input.messages` / `gen_ai.output.messages` shapes of the conventions (role + parts),
//! recorded as JSON strings. Only used when
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.

use serde_json::{Map, Value, json};

/// `gen_ai.input.messages` of a chat request (`messages`).
pub fn chat_input(request: &Value) -> Value {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    Value::Array(messages.iter().map(input_message).collect())
}

/// `gen_ai.input.messages` of a text completion request (`prompt`, as one user message per
/// prompt string).
pub fn completion_input(request: &Value) -> Value {
    let prompts: Vec<Value> = match request.get("prompt") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    };
    Value::Array(
        prompts
            .into_iter()
            .map(|p| json!({"role": "user", "parts": [text_part(p)]}))
            .collect(),
    )
}

fn text_part(content: Value) -> Value {
    let content = match content {
        Value::String(s) => Value::String(s),
        other => Value::String(other.to_string()),
    };
    json!({"type": "text", "content": content})
}

fn input_message(message: &Value) -> Value {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("user");
    let mut parts = Vec::new();
    if role == "tool" {
        let mut part = Map::new();
        part.insert("type".into(), "tool_call_response".into());
        if let Some(id) = message.get("tool_call_id") {
            part.insert("id".into(), id.clone());
        }
        part.insert(
            "response".into(),
            message.get("content").cloned().unwrap_or(Value::Null),
        );
        parts.push(Value::Object(part));
    } else {
        content_parts(message.get("content"), &mut parts);
    }
    tool_call_parts(message.get("tool_calls"), &mut parts);
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    out.insert("parts".into(), Value::Array(parts));
    if let Some(name) = message.get("name").filter(|n| n.is_string()) {
        out.insert("name".into(), name.clone());
    }
    Value::Object(out)
}

/// The parts of an OpenAI `content`: a string, or an array of typed parts.
fn content_parts(content: Option<&Value>, parts: &mut Vec<Value>) {
    match content {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => parts.push(text_part(Value::String(s.clone()))),
        Some(Value::Array(items)) => {
            for item in items {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
                let part = match kind {
                    "text" => text_part(item.get("text").cloned().unwrap_or(Value::Null)),
                    "image_url" => json!({
                        "type": "uri",
                        "modality": "image",
                        "uri": item.pointer("/image_url/url").cloned().unwrap_or(Value::Null),
                    }),
                    _ => item.clone(),
                };
                parts.push(part);
            }
        }
        Some(other) => parts.push(text_part(other.clone())),
    }
}

/// `tool_calls` of an assistant message (or message delta) as `tool_call` parts.
fn tool_call_parts(tool_calls: Option<&Value>, parts: &mut Vec<Value>) {
    for call in tool_calls.and_then(Value::as_array).into_iter().flatten() {
        let arguments = call.pointer("/function/arguments").map(|a| match a {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| a.clone()),
            other => other.clone(),
        });
        let mut part = Map::new();
        part.insert("type".into(), "tool_call".into());
        if let Some(id) = call.get("id") {
            part.insert("id".into(), id.clone());
        }
        part.insert(
            "name".into(),
            call.pointer("/function/name")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if let Some(arguments) = arguments {
            part.insert("arguments".into(), arguments);
        }
        parts.push(Value::Object(part));
    }
}

/// The items of a JSON array (none when `list` is not one), each with its `index` field, or its
/// position when it has none: OpenAI's `choices` and `tool_calls`.
pub(crate) fn indexed(list: Option<&Value>) -> impl Iterator<Item = (u64, &Value)> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, item)| {
            let index = item.get("index").and_then(Value::as_u64);
            (index.unwrap_or(i as u64), item)
        })
}

/// `gen_ai.output.messages` of a (non-streamed) chat or text completion answer: one message per
/// choice, in choice order.
pub fn output(answer: &Value) -> Value {
    let mut messages: Vec<(u64, Value)> = indexed(answer.get("choices"))
        .map(|(index, choice)| {
            let mut parts = Vec::new();
            let role = match choice.get("message") {
                Some(message) => {
                    content_parts(message.get("content"), &mut parts);
                    tool_call_parts(message.get("tool_calls"), &mut parts);
                    message
                        .get("role")
                        .and_then(Value::as_str)
                        .unwrap_or("assistant")
                }
                None => {
                    content_parts(choice.get("text"), &mut parts);
                    "assistant"
                }
            };
            let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
            (
                index,
                json!({"role": role, "parts": parts, "finish_reason": finish}),
            )
        })
        .collect();
    messages.sort_by_key(|(i, _)| *i);
    Value::Array(messages.into_iter().map(|(_, m)| m).collect())
}

/// The output of a stream, gathered chunk by chunk: text and tool calls per choice.
#[derive(Debug, Default)]
pub struct StreamedOutput {
    choices: std::collections::BTreeMap<u64, StreamedChoice>,
}

#[derive(Debug, Default)]
struct StreamedChoice {
    role: Option<String>,
    text: String,
    /// Tool calls by their index in the delta: id, name, concatenated arguments.
    tool_calls: std::collections::BTreeMap<u64, (Option<Value>, Option<Value>, String)>,
    finish_reason: Option<String>,
}

impl StreamedOutput {
    /// Adds what one chunk carries.
    pub fn add(&mut self, chunk: &Value) {
        for (index, choice) in indexed(chunk.get("choices")) {
            let entry = self.choices.entry(index).or_default();
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                entry.finish_reason = Some(reason.to_owned());
            }
            if let Some(text) = choice.get("text").and_then(Value::as_str) {
                entry.text.push_str(text);
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(role) = delta.get("role").and_then(Value::as_str) {
                entry.role = Some(role.to_owned());
            }
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                entry.text.push_str(text);
            }
            for (k, call) in indexed(delta.get("tool_calls")) {
                let slot = entry.tool_calls.entry(k).or_default();
                if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                    slot.0 = Some(id.clone());
                }
                if let Some(name) = call.pointer("/function/name").filter(|v| !v.is_null()) {
                    slot.1 = Some(name.clone());
                }
                if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    slot.2.push_str(args);
                }
            }
        }
    }

    /// `gen_ai.output.messages` of what was gathered.
    pub fn messages(&self) -> Value {
        Value::Array(
            self.choices
                .values()
                .map(|c| {
                    let mut parts = Vec::new();
                    if !c.text.is_empty() {
                        parts.push(text_part(Value::String(c.text.clone())));
                    }
                    for (id, name, args) in c.tool_calls.values() {
                        let arguments = serde_json::from_str::<Value>(args)
                            .unwrap_or_else(|_| Value::String(args.clone()));
                        parts.push(json!({"type": "tool_call", "id": id, "name": name, "arguments": arguments}));
                    }
                    json!({
                        "role": c.role.as_deref().unwrap_or("assistant"),
                        "parts": parts,
                        "finish_reason": c.finish_reason,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_messages_become_role_and_parts() {
        let request = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ]});
        assert_eq!(
            chat_input(&request),
            json!([
                {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                {"role": "user", "parts": [{"type": "text", "content": "hi"}, {"type": "uri", "modality": "image", "uri": "http://x/y.png"}]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]}
            ])
        );
        assert_eq!(
            completion_input(&json!({"prompt": "p"})),
            json!([{"role": "user", "parts": [{"type": "text", "content": "p"}]}])
        );
    }

    #[test]
    fn outputs_of_answers_and_streams_agree() {
        let answer = json!({"choices": [
            {"index": 1, "message": {"role": "assistant", "content": "b"}, "finish_reason": "length"},
            {"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}
        ]});
        let expected = json!([
            {"role": "assistant", "parts": [{"type": "text", "content": "a"}], "finish_reason": "stop"},
            {"role": "assistant", "parts": [{"type": "text", "content": "b"}], "finish_reason": "length"}
        ]);
        assert_eq!(output(&answer), expected);
        let mut streamed = StreamedOutput::default();
        for chunk in [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}}]}),
            json!({"choices": [{"index": 1, "delta": {"content": "b"}, "finish_reason": "length"}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 1}}),
        ] {
            streamed.add(&chunk);
        }
        assert_eq!(streamed.messages(), expected);
    }
}
