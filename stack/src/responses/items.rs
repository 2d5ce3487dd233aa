//! Output items in the OpenAI Responses wire format, and the conversation (input and output
//! items) as chat-completion messages for the next model turn.

use serde_json::{Value, json};

use crate::ids;

/// An assistant `message` item with one `output_text` part.
pub fn message(id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": if status == "completed" || !text.is_empty() { vec![output_text(text)] } else { vec![] },
    })
}

/// An assistant `message` item whose content is a `refusal` part (a guardrail's verdict).
pub fn refusal(id: &str, text: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "refusal", "refusal": text}],
    })
}

/// An `output_text` content part.
pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `function_call` item (the client runs the function).
pub fn function_call(id: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// An `mcp_list_tools` item; `tools` are MCP tool objects, shown as OpenAI does
/// (`name`, `description`, `input_schema`, `annotations`).
pub fn mcp_list_tools(id: &str, server_label: &str, tools: &[Value], error: Option<&str>) -> Value {
    let tools: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "name": t.get("name").cloned().unwrap_or(Value::Null),
                "description": t.get("description").cloned().unwrap_or(Value::Null),
                "input_schema": t.get("inputSchema").or(t.get("input_schema")).cloned().unwrap_or(json!({})),
                "annotations": t.get("annotations").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({
        "id": id,
        "type": "mcp_list_tools",
        "server_label": server_label,
        "tools": tools,
        "error": error,
    })
}

/// An `mcp_call` item.
pub fn mcp_call(
    id: &str,
    server_label: &str,
    name: &str,
    arguments: &str,
    output: Option<&str>,
    error: Option<&str>,
    status: &str,
) -> Value {
    json!({
        "id": id,
        "type": "mcp_call",
        "status": status,
        "server_label": server_label,
        "name": name,
        "arguments": arguments,
        "output": output,
        "error": error,
        "approval_request_id": null,
    })
}

/// An `mcp_approval_request` item.
pub fn mcp_approval_request(id: &str, server_label: &str, name: &str, arguments: &str) -> Value {
    json!({
        "id": id,
        "type": "mcp_approval_request",
        "server_label": server_label,
        "name": name,
        "arguments": arguments,
    })
}

/// Input items as stored and listed: each gets an id when it has none (`msg_` for messages,
/// the type's prefix otherwise), and a message gets `status: completed`.
pub fn with_ids(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut item| {
            if item.get("id").and_then(Value::as_str).is_none() {
                let prefix = match item.get("type").and_then(Value::as_str) {
                    Some("message") => "msg",
                    Some("function_call") => "fc",
                    Some("function_call_output") => "fco",
                    Some("mcp_approval_response") => "mcpa",
                    Some("mcp_call") => "mcp",
                    Some("mcp_list_tools") => "mcpl",
                    _ => "item",
                };
                item["id"] = Value::from(ids::mint(prefix));
            }
            item
        })
        .collect()
}

/// The text of a message item's content (a string, or its text parts joined).
fn message_text(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").or(p.get("refusal")).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The chat messages for a conversation: `instructions` as a system message first, then every
/// item in order. Calls become assistant `tool_calls` (consecutive calls share one message) and
/// their outputs `tool` messages; `mcp_list_tools` and approval items say nothing to the model.
pub fn to_messages<'a>(
    instructions: Option<&str>,
    items: impl IntoIterator<Item = &'a Value>,
) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    if let Some(text) = instructions {
        messages.push(json!({"role": "system", "content": text}));
    }
    let push_call = |messages: &mut Vec<Value>, id: &str, name: &str, arguments: &str| {
        let call = json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}});
        if let Some(last) = messages.last_mut()
            && last["role"] == "assistant"
            && let Some(calls) = last.get_mut("tool_calls").and_then(Value::as_array_mut)
        {
            calls.push(call);
            return;
        }
        messages.push(json!({"role": "assistant", "content": "", "tool_calls": [call]}));
    };
    let str_of = |item: &Value, key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    for item in items {
        match item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
        {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") => "system",
                    Some(r) => r,
                    None => "user",
                };
                messages.push(json!({"role": role, "content": message_text(item)}));
            }
            "function_call" => push_call(
                &mut messages,
                &str_of(item, "call_id"),
                &str_of(item, "name"),
                &str_of(item, "arguments"),
            ),
            "function_call_output" => messages.push(json!({
                "role": "tool",
                "tool_call_id": str_of(item, "call_id"),
                "content": str_of(item, "output"),
            })),
            "mcp_call" => {
                let id = str_of(item, "id");
                push_call(
                    &mut messages,
                    &id,
                    &str_of(item, "name"),
                    &str_of(item, "arguments"),
                );
                let content = match item.get("error").and_then(Value::as_str) {
                    Some(e) => format!("Error: {e}"),
                    None => str_of(item, "output"),
                };
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            _ => {}
        }
    }
    messages
}

/// The text of every `output_text` part of the `message` items of an output, joined: what the
/// SDKs' `output_text` gives.
pub fn output_text_of(output: &[Value]) -> String {
    output
        .iter()
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("message"))
        .flat_map(|i| {
            i.get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("output_text"))
        .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_becomes_chat_messages() {
        let items = vec![
            json!({"type": "message", "role": "developer", "content": "be brief"}),
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]}),
            json!({"type": "mcp_list_tools", "server_label": "s", "tools": []}),
            json!({"type": "mcp_call", "id": "mcp_1", "server_label": "s", "name": "get_weather",
                   "arguments": "{\"city\":\"Paris\"}", "output": "18C", "error": null}),
            json!({"type": "message", "role": "assistant", "content": [output_text("It is 18C.")]}),
            json!({"type": "function_call", "call_id": "call_a", "name": "f", "arguments": "{}"}),
            json!({"type": "function_call", "call_id": "call_b", "name": "g", "arguments": "{}"}),
            json!({"type": "function_call_output", "call_id": "call_a", "output": "A"}),
        ];
        let messages = to_messages(Some("sys"), &items);
        assert_eq!(messages[0], json!({"role": "system", "content": "sys"}));
        assert_eq!(
            messages[1],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(messages[2], json!({"role": "user", "content": "weather?"}));
        assert_eq!(messages[3]["tool_calls"][0]["id"], "mcp_1");
        assert_eq!(
            messages[4],
            json!({"role": "tool", "tool_call_id": "mcp_1", "content": "18C"})
        );
        assert_eq!(
            messages[5],
            json!({"role": "assistant", "content": "It is 18C."})
        );
        assert_eq!(
            messages[6]["tool_calls"].as_array().unwrap().len(),
            2,
            "consecutive calls share a message"
        );
        assert_eq!(messages[7]["tool_call_id"], "call_a");
        assert_eq!(messages.len(), 8);
    }

    #[test]
    fn output_text_joins_message_text_only() {
        let output = vec![
            mcp_list_tools("l", "s", &[], None),
            message("m1", "Hello", "completed"),
            message("m2", " world", "completed"),
        ];
        assert_eq!(output_text_of(&output), "Hello world");
    }
}
