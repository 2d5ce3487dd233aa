//! `POST /v1/responses` request bodies: parsed into what the orchestration needs, with a 400
//! naming the field for anything malformed. Unknown fields are accepted and ignored (as the
//! OpenAI API does for fields a server does not implement).

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use url::Url;

use crate::api::validate::{self, Fields};
use crate::error::{ApiError, json_type_name};
use crate::mcp::McpServer;

/// A valid create request.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The stack model id.
    pub model: String,
    /// The input as items (a string input is one user message).
    pub input: Vec<Value>,
    /// System instructions for this response only.
    pub instructions: Option<String>,
    /// The tools, in request order.
    pub tools: Vec<Tool>,
    /// `tool_choice` as given (default `"auto"`).
    pub tool_choice: Value,
    /// `parallel_tool_calls` (default true).
    pub parallel_tool_calls: bool,
    /// At most this many MCP tool calls in the response.
    pub max_tool_calls: Option<u64>,
    /// `max_output_tokens`, per model turn.
    pub max_output_tokens: Option<u64>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `text` (`{"format": {"type": "text"}}` by default).
    pub text: Value,
    /// Store the response (default true).
    pub store: bool,
    /// Stream events.
    pub stream: bool,
    /// The response this one continues.
    pub previous_response_id: Option<String>,
    /// `metadata` (string values).
    pub metadata: Value,
    /// Shields that check the input and each answer (Llama Stack's `guardrails`, also accepted
    /// as `shields`): shield ids, or objects naming one in `type` or `shield_id`.
    pub guardrails: Vec<String>,
}

/// A tool of the request.
#[derive(Debug, Clone)]
pub enum Tool {
    /// A function the client executes.
    Function {
        /// Its name.
        name: String,
        /// The chat-completions `function` object offered to the model.
        definition: Value,
    },
    /// A remote MCP server the stack calls.
    Mcp(McpTool),
}

/// An `mcp` tool.
#[derive(Debug, Clone)]
pub struct McpTool {
    /// The server and its credentials.
    pub server: McpServer,
    /// Only these tools of the server are offered (all when `None`).
    pub allowed_tools: Option<Vec<String>>,
    /// Which calls need an approval first.
    pub require_approval: Approval,
}

/// `require_approval` of an `mcp` tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// No call needs one.
    Never,
    /// Every call needs one (OpenAI's default).
    Always,
    /// Calls of the `never` tools go ahead; the others need one.
    Except(Vec<String>),
}

impl Approval {
    /// Whether a call of `tool` needs an approval first.
    pub fn needed_for(&self, tool: &str) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Except(never) => !never.iter().any(|t| t == tool),
        }
    }
}

impl McpTool {
    /// Whether `tool` of this server may be offered.
    pub fn allows(&self, tool: &str) -> bool {
        self.allowed_tools
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == tool))
    }
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message, Some(param), Some("invalid_value"))
}

fn type_error(param: &str, expected: &str, got: &Value) -> ApiError {
    bad(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            json_type_name(got)
        ),
    )
}

/// A present, non-null field.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<String>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(type_error(param, "a string", other)),
    }
}

/// An optional boolean of a nested object, named `param` in errors.
fn opt_bool(obj: &Map<String, Value>, key: &str, param: &str) -> Result<Option<bool>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(type_error(param, "a boolean", other)),
    }
}

/// An optional number in `min..=max`.
fn number(f: &Fields<'_>, key: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
    f.number(key, min, max)?;
    Ok(f.get(key).and_then(Value::as_f64))
}

/// An optional positive integer.
fn count(f: &Fields<'_>, key: &str) -> Result<Option<u64>, ApiError> {
    f.integer(key, 1, None)?;
    Ok(f.get(key).and_then(Value::as_u64))
}

/// Parses and checks a create request.
pub fn parse(body: &Value) -> Result<CreateRequest, ApiError> {
    let obj = validate::object(body)?;
    let f = Fields(obj);
    let model = f.model()?;
    let input = match field(obj, "input") {
        None => {
            return Err(ApiError::invalid_request(
                "Missing required parameter: 'input'.",
                Some("input"),
                Some("missing_required_parameter"),
            ));
        }
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| input_item(item, &format!("input[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(type_error("input", "a string or an array of items", other)),
    };
    let tools = match field(obj, "tools") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, t)| tool(t, &format!("tools[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(type_error("tools", "an array", other)),
    };
    let tool_choice = match field(obj, "tool_choice") {
        None => Value::from("auto"),
        Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Value::from(s.as_str())
        }
        Some(v @ Value::Object(o)) if o.get("type").is_some_and(Value::is_string) => v.clone(),
        Some(other) => {
            return Err(bad(
                "tool_choice",
                format!(
                    "'tool_choice' must be \"auto\", \"none\", \"required\" or a tool object; got {other}."
                ),
            ));
        }
    };
    let text = match field(obj, "text") {
        None => json!({"format": {"type": "text"}}),
        Some(v @ Value::Object(t)) => {
            if let Some(format) = field(t, "format") {
                text_format(format)?;
            }
            let mut v = v.clone();
            if v.get("format").is_none_or(Value::is_null) {
                v["format"] = json!({"type": "text"});
            }
            v
        }
        Some(other) => return Err(type_error("text", "an object", other)),
    };
    let metadata = match field(obj, "metadata") {
        None => json!({}),
        Some(Value::Object(m)) => {
            if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_string()) {
                return Err(type_error(&format!("metadata.{k}"), "a string", v));
            }
            Value::Object(m.clone())
        }
        Some(other) => return Err(type_error("metadata", "an object", other)),
    };
    Ok(CreateRequest {
        model,
        input,
        instructions: f.string("instructions")?.map(str::to_owned),
        tools,
        tool_choice,
        parallel_tool_calls: f.boolean("parallel_tool_calls")?.unwrap_or(true),
        max_tool_calls: count(&f, "max_tool_calls")?,
        max_output_tokens: count(&f, "max_output_tokens")?,
        temperature: number(&f, "temperature", 0.0, 2.0)?,
        top_p: number(&f, "top_p", 0.0, 1.0)?,
        text,
        store: f.boolean("store")?.unwrap_or(true),
        stream: f.boolean("stream")?.unwrap_or(false),
        previous_response_id: f.string("previous_response_id")?.map(str::to_owned),
        metadata,
        guardrails: guardrails(obj)?,
    })
}

fn guardrails(obj: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let (key, value) = match (field(obj, "guardrails"), field(obj, "shields")) {
        (Some(v), _) => ("guardrails", v),
        (None, Some(v)) => ("shields", v),
        (None, None) => return Ok(Vec::new()),
    };
    let Value::Array(items) = value else {
        return Err(type_error(key, "an array of shield ids", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let id = match g {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o
                    .get("shield_id")
                    .or(o.get("type"))
                    .and_then(Value::as_str),
                _ => None,
            };
            id.filter(|s| !s.is_empty()).map(str::to_owned).ok_or_else(|| {
                bad(
                    &format!("{key}[{i}]"),
                    format!("'{key}[{i}]' must be a shield id or {{\"type\": <shield id>}}; got {g}."),
                )
            })
        })
        .collect()
}

/// Checks `text.format`.
fn text_format(format: &Value) -> Result<(), ApiError> {
    let kind = format.get("type").and_then(Value::as_str);
    match kind {
        Some("text" | "json_object") => Ok(()),
        Some("json_schema") => match format.get("schema") {
            Some(Value::Object(_)) => Ok(()),
            _ => Err(bad(
                "text.format.schema",
                "'text.format.schema' must be a JSON schema object when the type is json_schema.",
            )),
        },
        _ => Err(bad(
            "text.format.type",
            format!(
                "'text.format.type' must be one of text, json_object, json_schema; got {}.",
                format.get("type").unwrap_or(&Value::Null)
            ),
        )),
    }
}

/// One input item, checked and in its canonical shape (a message's string content kept as is).
fn input_item(item: &Value, param: &str) -> Result<Value, ApiError> {
    let Some(obj) = item.as_object() else {
        return Err(type_error(param, "an object", item));
    };
    let kind = match obj.get("type") {
        None if obj.contains_key("role") => "message",
        Some(Value::String(t)) => t.as_str(),
        _ => {
            return Err(bad(
                &format!("{param}.type"),
                format!("'{param}.type' is missing or not a string."),
            ));
        }
    };
    let need = |key: &str| -> Result<&str, ApiError> {
        obj.get(key).and_then(Value::as_str).ok_or_else(|| {
            bad(
                &format!("{param}.{key}"),
                format!("'{param}.{key}' is required and must be a string for a {kind} item."),
            )
        })
    };
    match kind {
        "message" => {
            let role = need("role")?;
            if !matches!(role, "user" | "system" | "developer" | "assistant") {
                return Err(bad(
                    &format!("{param}.role"),
                    format!(
                        "'{param}.role' must be one of user, system, developer, assistant; got '{role}'."
                    ),
                ));
            }
            match obj.get("content") {
                Some(Value::String(_)) => {}
                Some(Value::Array(parts)) => {
                    for (j, part) in parts.iter().enumerate() {
                        let ok = part.get("type").and_then(Value::as_str).is_some_and(|t| {
                            matches!(t, "input_text" | "output_text" | "text" | "refusal")
                        }) && part
                            .get("text")
                            .or(part.get("refusal"))
                            .is_some_and(Value::is_string);
                        if !ok {
                            return Err(bad(
                                &format!("{param}.content[{j}]"),
                                format!(
                                    "'{param}.content[{j}]' must be a text part ({{\"type\": \"input_text\", \"text\": ...}}); images and files are not supported."
                                ),
                            ));
                        }
                    }
                }
                other => {
                    return Err(type_error(
                        &format!("{param}.content"),
                        "a string or an array of content parts",
                        other.unwrap_or(&Value::Null),
                    ));
                }
            }
            let mut item = item.clone();
            item["type"] = Value::from("message");
            Ok(item)
        }
        "function_call" => {
            need("call_id")?;
            need("name")?;
            need("arguments")?;
            Ok(item.clone())
        }
        "function_call_output" => {
            need("call_id")?;
            if !obj.get("output").is_some_and(Value::is_string) {
                return Err(type_error(
                    &format!("{param}.output"),
                    "a string",
                    obj.get("output").unwrap_or(&Value::Null),
                ));
            }
            Ok(item.clone())
        }
        "mcp_list_tools" => {
            need("server_label")?;
            if !obj.get("tools").is_some_and(Value::is_array) {
                return Err(type_error(
                    &format!("{param}.tools"),
                    "an array",
                    obj.get("tools").unwrap_or(&Value::Null),
                ));
            }
            Ok(item.clone())
        }
        "mcp_call" => {
            need("server_label")?;
            need("name")?;
            need("arguments")?;
            Ok(item.clone())
        }
        "mcp_approval_request" => {
            need("id")?;
            need("server_label")?;
            need("name")?;
            need("arguments")?;
            Ok(item.clone())
        }
        "mcp_approval_response" => {
            need("approval_request_id")?;
            if !obj.get("approve").is_some_and(Value::is_boolean) {
                return Err(type_error(
                    &format!("{param}.approve"),
                    "a boolean",
                    obj.get("approve").unwrap_or(&Value::Null),
                ));
            }
            Ok(item.clone())
        }
        other => Err(bad(
            &format!("{param}.type"),
            format!(
                "Unsupported input item type '{other}' in '{param}'; supported: message, function_call, \
                 function_call_output, mcp_list_tools, mcp_call, mcp_approval_request, mcp_approval_response."
            ),
        )),
    }
}

/// One tool of `tools`.
fn tool(t: &Value, param: &str) -> Result<Tool, ApiError> {
    let Some(obj) = t.as_object() else {
        return Err(type_error(param, "an object", t));
    };
    let string = |key: &str| -> Result<Option<String>, ApiError> {
        opt_string(obj, key, &format!("{param}.{key}"))
    };
    let required = |key: &str| -> Result<String, ApiError> {
        string(key)?.filter(|s| !s.is_empty()).ok_or_else(|| {
            bad(
                &format!("{param}.{key}"),
                format!("'{param}.{key}' is required."),
            )
        })
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("function") => {
            let name = required("name")?;
            let parameters = match field(obj, "parameters") {
                None => json!({"type": "object", "properties": {}}),
                Some(p @ Value::Object(_)) => p.clone(),
                Some(other) => {
                    return Err(type_error(
                        &format!("{param}.parameters"),
                        "an object",
                        other,
                    ));
                }
            };
            let mut definition = json!({"name": name, "parameters": parameters});
            if let Some(d) = string("description")? {
                definition["description"] = Value::from(d);
            }
            if let Some(s) = opt_bool(obj, "strict", &format!("{param}.strict"))? {
                definition["strict"] = Value::from(s);
            }
            Ok(Tool::Function { name, definition })
        }
        Some("mcp") => {
            let server_label = required("server_label")?;
            let url_text = required("server_url")?;
            let server_url = Url::parse(&url_text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    bad(
                        &format!("{param}.server_url"),
                        format!("'{param}.server_url' must be an http:// or https:// URL; got '{url_text}'."),
                    )
                })?;
            let mut headers = Vec::new();
            match field(obj, "headers") {
                None => {}
                Some(Value::Object(h)) => {
                    for (k, v) in h {
                        let p = format!("{param}.headers.{k}");
                        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                            bad(&p, format!("'{k}' is not a valid HTTP header name."))
                        })?;
                        let value = v
                            .as_str()
                            .and_then(|s| HeaderValue::from_str(s).ok())
                            .ok_or_else(|| bad(&p, format!("The value of header '{k}' must be a string that is a valid HTTP header value.")))?;
                        headers.push((name, value));
                    }
                }
                Some(other) => {
                    return Err(type_error(&format!("{param}.headers"), "an object", other));
                }
            }
            let authorization = string("authorization")?.filter(|s| !s.is_empty());
            let allowed_tools = match field(obj, "allowed_tools") {
                None => None,
                Some(Value::Array(names)) => {
                    Some(tool_names(names, &format!("{param}.allowed_tools"))?)
                }
                Some(Value::Object(o)) => match o.get("tool_names") {
                    Some(Value::Array(names)) => Some(tool_names(
                        names,
                        &format!("{param}.allowed_tools.tool_names"),
                    )?),
                    _ => {
                        return Err(bad(
                            &format!("{param}.allowed_tools"),
                            "'allowed_tools' must be an array of tool names or {\"tool_names\": [...]}.",
                        ));
                    }
                },
                Some(other) => {
                    return Err(type_error(
                        &format!("{param}.allowed_tools"),
                        "an array of tool names",
                        other,
                    ));
                }
            };
            let require_approval = match field(obj, "require_approval") {
                None => Approval::Always,
                Some(Value::String(s)) if s == "never" => Approval::Never,
                Some(Value::String(s)) if s == "always" => Approval::Always,
                Some(Value::Object(o)) => {
                    let names = |key: &str| -> Result<Vec<String>, ApiError> {
                        match o.get(key).and_then(|v| v.get("tool_names")) {
                            None | Some(Value::Null) => Ok(Vec::new()),
                            Some(Value::Array(n)) => {
                                tool_names(n, &format!("{param}.require_approval.{key}.tool_names"))
                            }
                            Some(other) => Err(type_error(
                                &format!("{param}.require_approval.{key}.tool_names"),
                                "an array",
                                other,
                            )),
                        }
                    };
                    Approval::Except(names("never")?)
                }
                Some(other) => {
                    return Err(bad(
                        &format!("{param}.require_approval"),
                        format!(
                            "'require_approval' must be \"never\", \"always\" or {{\"never\": {{\"tool_names\": [...]}}}}; got {other}."
                        ),
                    ));
                }
            };
            Ok(Tool::Mcp(McpTool {
                server: McpServer {
                    server_label,
                    server_url,
                    authorization,
                    headers,
                },
                allowed_tools,
                require_approval,
            }))
        }
        Some(other) => Err(bad(
            &format!("{param}.type"),
            format!("Unsupported tool type '{other}' in '{param}'; supported: function, mcp."),
        )),
        None => Err(bad(
            &format!("{param}.type"),
            format!("'{param}.type' is required."),
        )),
    }
}

fn tool_names(names: &[Value], param: &str) -> Result<Vec<String>, ApiError> {
    names
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_owned)
                .ok_or_else(|| type_error(param, "an array of strings", n))
        })
        .collect()
}

/// The request's `tools` as the response echoes them: credentials are never echoed (the
/// response is stored), so an `mcp` tool loses `authorization` and its header values.
pub fn echoed_tools(body: &Value) -> Value {
    let mut tools = body
        .get("tools")
        .cloned()
        .filter(Value::is_array)
        .unwrap_or(json!([]));
    if let Some(items) = tools.as_array_mut() {
        for t in items.iter_mut().filter_map(Value::as_object_mut) {
            if t.get("type").and_then(Value::as_str) == Some("mcp") {
                t.remove("authorization");
                if let Some(Value::Object(h)) = t.get_mut("headers") {
                    for v in h.values_mut() {
                        *v = Value::from("<redacted>");
                    }
                }
            }
        }
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> (u16, Option<String>, String) {
        let e = parse(&body).unwrap_err();
        (e.status, e.param.clone(), e.message)
    }

    #[test]
    fn string_input_is_one_user_message_and_defaults_apply() {
        let r = parse(&json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(
            r.input,
            vec![json!({"type": "message", "role": "user", "content": "hi"})]
        );
        assert!(r.store && r.parallel_tool_calls && !r.stream);
        assert_eq!(r.tool_choice, "auto");
        assert_eq!(r.text, json!({"format": {"type": "text"}}));
    }

    #[test]
    fn malformed_fields_are_400s_naming_the_field() {
        let cases = [
            (json!({"input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": 3}), "input"),
            (
                json!({"model": "m", "input": [{"type": "message", "role": "robot", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": [{"type": "image", "url": "x"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "mcp", "server_label": "s"}]}),
                "tools[0].server_url",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "mcp", "server_label": "s", "server_url": "ftp://x"}]}),
                "tools[0].server_url",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://h/mcp", "require_approval": "sometimes"}]}),
                "tools[0].require_approval",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
                "tools[0].name",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}),
                "text.format.schema",
            ),
            (
                json!({"model": "m", "input": "x", "temperature": 5}),
                "temperature",
            ),
            (
                json!({"model": "m", "input": "x", "max_tool_calls": 0}),
                "max_tool_calls",
            ),
            (
                json!({"model": "m", "input": "x", "metadata": {"k": 1}}),
                "metadata.k",
            ),
        ];
        for (body, param) in cases {
            let (status, got, message) = err(body.clone());
            assert_eq!(
                (status, got.as_deref()),
                (400, Some(param)),
                "{body}: {message}"
            );
        }
    }

    #[test]
    fn mcp_tools_parse_with_approval_and_allowed_tools() {
        let r = parse(&json!({"model": "m", "input": "x", "tools": [{
            "type": "mcp", "server_label": "gh", "server_url": "http://127.0.0.1:1/mcp",
            "authorization": "tok", "headers": {"X-Key": "v"},
            "allowed_tools": {"tool_names": ["a"]}, "require_approval": {"never": {"tool_names": ["a"]}}
        }]}))
        .unwrap();
        let Tool::Mcp(t) = &r.tools[0] else {
            panic!("not mcp")
        };
        assert_eq!(t.server.authorization.as_deref(), Some("tok"));
        assert!(t.allows("a") && !t.allows("b"));
        assert!(!t.require_approval.needed_for("a") && t.require_approval.needed_for("b"));
    }

    #[test]
    fn echoed_tools_carry_no_credentials() {
        let body = json!({"tools": [{"type": "mcp", "server_label": "gh", "server_url": "http://h",
            "authorization": "ghp_secret", "headers": {"X-Key": "k_secret"}}]});
        let text = echoed_tools(&body).to_string();
        assert!(!text.contains("secret"), "{text}");
    }
}
