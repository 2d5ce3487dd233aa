//! Request validation: turns bad requests into OpenAI-style 400 errors that say what was wrong.
//!
//! Only what the stack must understand is checked (model, messages/prompt/input, the types and
//! ranges of the common sampling parameters); every other field is passed on to the provider as
//! it came. A `null` optional parameter counts as absent, as in the OpenAI API.

use serde_json::{Map, Value};

use crate::error::{ApiError, json_type_name};

/// What the stack needs to know about a valid inference request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The requested model id.
    pub model: String,
    /// Whether the caller asked for a stream.
    pub stream: bool,
}

/// What the stack needs to know about a valid embeddings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEmbeddings {
    /// The requested model id.
    pub model: String,
    /// Whether the caller asked for base64-encoded vectors.
    pub base64: bool,
}

/// Parses a request body; anything that is not a JSON object is a 400.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_request(
            format!(
                "We could not parse the JSON body of your request: {e}. The body must be a JSON object."
            ),
            None,
            Some("invalid_json"),
        )
    })?;
    object(&value)?;
    Ok(value)
}

/// The body as an object; anything else is a 400.
pub(crate) fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::invalid_request(
            format!(
                "Invalid request body: expected a JSON object, but got {} instead.",
                with_article(json_type_name(body))
            ),
            None,
            Some("invalid_type"),
        )
    })
}

/// Validates a `POST /v1/chat/completions` body.
pub fn chat(body: &Value) -> Result<Checked, ApiError> {
    let f = Fields(object(body)?);
    let model = f.model()?;
    let messages = f.required_array("messages")?;
    for (i, message) in messages.iter().enumerate() {
        check_message(message, i)?;
    }
    f.sampling()?;
    f.integer("max_completion_tokens", 1, None)?;
    f.integer("n", 1, Some(128))?;
    f.boolean("logprobs")?;
    f.integer("top_logprobs", 0, Some(20))?;
    f.boolean("parallel_tool_calls")?;
    f.typed("logit_bias", "object", Value::is_object)?;
    f.typed("user", "string", Value::is_string)?;
    f.typed("metadata", "object", Value::is_object)?;
    check_tools(&f)?;
    check_response_format(&f)?;
    let stream = f.stream()?;
    Ok(Checked { model, stream })
}

/// Validates a `POST /v1/completions` body.
pub fn completion(body: &Value) -> Result<Checked, ApiError> {
    let f = Fields(object(body)?);
    let model = f.model()?;
    match f.get("prompt") {
        None => return Err(missing("prompt")),
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(empty_array("prompt"));
            }
            let tokens = items.iter().all(|x| x.is_u64());
            let strings = items.iter().all(Value::is_string);
            let token_lists = items.iter().all(|x| {
                x.as_array()
                    .is_some_and(|t| !t.is_empty() && t.iter().all(Value::is_u64))
            });
            if !(tokens || strings || token_lists) {
                return Err(ApiError::invalid_request(
                    "Invalid 'prompt': expected a string, an array of strings, an array of token ids, \
                     or an array of arrays of token ids.",
                    Some("prompt"),
                    Some("invalid_type"),
                ));
            }
        }
        Some(other) => return Err(invalid_type("prompt", "a string or an array", other)),
    }
    f.sampling()?;
    f.integer("n", 1, Some(128))?;
    f.integer("best_of", 1, Some(20))?;
    f.boolean("echo")?;
    f.integer("logprobs", 0, Some(5))?;
    f.typed("suffix", "string", Value::is_string)?;
    f.typed("logit_bias", "object", Value::is_object)?;
    f.typed("user", "string", Value::is_string)?;
    let stream = f.stream()?;
    Ok(Checked { model, stream })
}

/// Validates a `POST /v1/embeddings` body.
pub fn embeddings(body: &Value) -> Result<CheckedEmbeddings, ApiError> {
    let f = Fields(object(body)?);
    let model = f.model()?;
    match f.get("input") {
        None => return Err(missing("input")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ApiError::invalid_request(
                "Invalid 'input': empty string. Expected a non-empty string.",
                Some("input"),
                Some("empty_string"),
            ));
        }
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(empty_array("input"));
            }
            for (i, item) in items.iter().enumerate() {
                let ok = match item {
                    Value::String(s) => !s.is_empty(),
                    Value::Number(n) => n.is_u64(),
                    Value::Array(t) => !t.is_empty() && t.iter().all(Value::is_u64),
                    _ => false,
                };
                if !ok {
                    return Err(ApiError::invalid_request(
                        format!(
                            "Invalid 'input[{i}]': expected a non-empty string, a token id or a non-empty array \
                             of token ids, but got {} instead.",
                            describe(item)
                        ),
                        Some(&format!("input[{i}]")),
                        Some("invalid_value"),
                    ));
                }
            }
        }
        Some(other) => return Err(invalid_type("input", "a string or an array", other)),
    }
    let base64 = match f.string("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid_value(
                "encoding_format",
                other,
                &["float", "base64"],
            ));
        }
    };
    f.integer("dimensions", 1, None)?;
    f.typed("user", "string", Value::is_string)?;
    Ok(CheckedEmbeddings { model, base64 })
}

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

fn check_message(message: &Value, i: usize) -> Result<(), ApiError> {
    // The parameters' names are written only for an error: most requests have none.
    let param = |member: &str| format!("messages[{i}]{member}");
    let Some(m) = message.as_object() else {
        return Err(invalid_type(&param(""), "an object", message));
    };
    let role = match member(m, "role") {
        None | Some(Value::Null) => return Err(missing(&param(".role"))),
        Some(Value::String(r)) => r.as_str(),
        Some(other) => return Err(invalid_type(&param(".role"), "a string", other)),
    };
    if !ROLES.contains(&role) {
        return Err(invalid_value(&param(".role"), role, ROLES));
    }
    match member(m, "content") {
        Some(Value::String(_)) | Some(Value::Array(_)) => {}
        None | Some(Value::Null) => {
            if role != "assistant" {
                return Err(missing(&param(".content")));
            }
        }
        Some(other) => {
            return Err(invalid_type(
                &param(".content"),
                "a string or an array",
                other,
            ));
        }
    }
    if role == "tool" {
        match member(m, "tool_call_id") {
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => return Err(missing(&param(".tool_call_id"))),
            Some(other) => {
                return Err(invalid_type(&param(".tool_call_id"), "a string", other));
            }
        }
    }
    Ok(())
}

fn check_tools(f: &Fields<'_>) -> Result<(), ApiError> {
    if let Some(tools) = f.get("tools") {
        let Value::Array(tools) = tools else {
            return Err(invalid_type("tools", "an array", tools));
        };
        for (i, tool) in tools.iter().enumerate() {
            let param = format!("tools[{i}]");
            let Some(t) = tool.as_object() else {
                return Err(invalid_type(&param, "an object", tool));
            };
            match member(t, "type") {
                Some(Value::String(s)) if s == "function" => {}
                None | Some(Value::Null) => return Err(missing(&format!("{param}.type"))),
                Some(Value::String(s)) => {
                    return Err(invalid_value(&format!("{param}.type"), s, &["function"]));
                }
                Some(other) => {
                    return Err(invalid_type(&format!("{param}.type"), "a string", other));
                }
            }
            let fparam = format!("{param}.function");
            let function = match member(t, "function") {
                Some(Value::Object(func)) => func,
                None | Some(Value::Null) => return Err(missing(&fparam)),
                Some(other) => return Err(invalid_type(&fparam, "an object", other)),
            };
            match member(function, "name") {
                Some(Value::String(n)) if !n.is_empty() => {}
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    return Err(missing(&format!("{fparam}.name")));
                }
                Some(other) => {
                    return Err(invalid_type(&format!("{fparam}.name"), "a string", other));
                }
            }
            if let Some(p) = member(function, "parameters").filter(|p| !p.is_null())
                && !p.is_object()
            {
                return Err(invalid_type(
                    &format!("{fparam}.parameters"),
                    "an object",
                    p,
                ));
            }
        }
    }
    match f.get("tool_choice") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(Value::String(s)) => match s.as_str() {
            "none" | "auto" | "required" => Ok(()),
            other => Err(invalid_value(
                "tool_choice",
                other,
                &["none", "auto", "required"],
            )),
        },
        Some(other) => Err(invalid_type("tool_choice", "a string or an object", other)),
    }
}

fn check_response_format(f: &Fields<'_>) -> Result<(), ApiError> {
    let Some(rf) = f.get("response_format") else {
        return Ok(());
    };
    let Some(obj) = rf.as_object() else {
        return Err(invalid_type("response_format", "an object", rf));
    };
    let kind = match member(obj, "type") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => return Err(missing("response_format.type")),
        Some(other) => return Err(invalid_type("response_format.type", "a string", other)),
    };
    match kind {
        "text" | "json_object" => Ok(()),
        "json_schema" => match member(obj, "json_schema") {
            Some(Value::Object(js)) => match member(js, "name") {
                Some(Value::String(_)) => Ok(()),
                None | Some(Value::Null) => Err(missing("response_format.json_schema.name")),
                Some(other) => Err(invalid_type(
                    "response_format.json_schema.name",
                    "a string",
                    other,
                )),
            },
            None | Some(Value::Null) => Err(missing("response_format.json_schema")),
            Some(other) => Err(invalid_type(
                "response_format.json_schema",
                "an object",
                other,
            )),
        },
        other => Err(invalid_value(
            "response_format.type",
            other,
            &["text", "json_object", "json_schema"],
        )),
    }
}

/// Field access with OpenAI-style errors (also used by the Responses API's request parser).
pub(crate) struct Fields<'a>(pub(crate) &'a Map<String, Value>);

impl Fields<'_> {
    /// A field, `null` counting as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        member(self.0, key).filter(|v| !v.is_null())
    }

    /// `model`: a non-empty string.
    pub(crate) fn model(&self) -> Result<String, ApiError> {
        match self.get("model") {
            None => Err(missing("model")),
            Some(Value::String(s)) if s.trim().is_empty() => Err(ApiError::invalid_request(
                "Invalid 'model': empty string. Expected the id of a model (see GET /v1/models).",
                Some("model"),
                Some("empty_string"),
            )),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(invalid_type("model", "a string", other)),
        }
    }

    fn required_array(&self, key: &str) -> Result<&Vec<Value>, ApiError> {
        match self.get(key) {
            None => Err(missing(key)),
            Some(Value::Array(a)) if a.is_empty() => Err(empty_array(key)),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(invalid_type(key, "an array", other)),
        }
    }

    /// An optional string.
    pub(crate) fn string(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid_type(key, "a string", other)),
        }
    }

    /// An optional boolean.
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(invalid_type(key, "a boolean", other)),
        }
    }

    fn typed(&self, key: &str, expected: &str, ok: fn(&Value) -> bool) -> Result<(), ApiError> {
        match self.get(key) {
            Some(v) if !ok(v) => Err(invalid_type(key, &with_article(expected), v)),
            _ => Ok(()),
        }
    }

    /// Checks an optional number in `min..=max`.
    pub(crate) fn number(&self, key: &str, min: f64, max: f64) -> Result<(), ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(());
        };
        let Some(x) = v.as_f64() else {
            return Err(invalid_type(key, "a number", v));
        };
        if x < min {
            return Err(ApiError::invalid_request(
                format!(
                    "Invalid '{key}': decimal below minimum value. Expected a value >= {min}, but got {v} instead."
                ),
                Some(key),
                Some("decimal_below_min_value"),
            ));
        }
        if x > max {
            return Err(ApiError::invalid_request(
                format!(
                    "Invalid '{key}': decimal above maximum value. Expected a value <= {max}, but got {v} instead."
                ),
                Some(key),
                Some("decimal_above_max_value"),
            ));
        }
        Ok(())
    }

    /// Checks an optional integer `>= min` (and `<= max`).
    pub(crate) fn integer(&self, key: &str, min: i64, max: Option<i64>) -> Result<(), ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(());
        };
        let Some(n) = v.as_i64().or_else(|| v.as_u64().map(|_| i64::MAX)) else {
            return Err(invalid_type(key, "an integer", v));
        };
        if n < min {
            return Err(ApiError::invalid_request(
                format!(
                    "Invalid '{key}': integer below minimum value. Expected a value >= {min}, but got {v} instead."
                ),
                Some(key),
                Some("integer_below_min_value"),
            ));
        }
        if let Some(max) = max
            && n > max
        {
            return Err(ApiError::invalid_request(
                format!(
                    "Invalid '{key}': integer above maximum value. Expected a value <= {max}, but got {v} instead."
                ),
                Some(key),
                Some("integer_above_max_value"),
            ));
        }
        Ok(())
    }

    /// Parameters shared by chat and completions.
    fn sampling(&self) -> Result<(), ApiError> {
        self.number("temperature", 0.0, 2.0)?;
        self.number("top_p", 0.0, 1.0)?;
        self.number("presence_penalty", -2.0, 2.0)?;
        self.number("frequency_penalty", -2.0, 2.0)?;
        self.integer("max_tokens", 1, None)?;
        if let Some(seed) = self.get("seed")
            && !(seed.is_i64() || seed.is_u64())
        {
            return Err(invalid_type("seed", "an integer", seed));
        }
        match self.get("stop") {
            None | Some(Value::String(_)) => Ok(()),
            Some(Value::Array(items)) => match items.iter().position(|s| !s.is_string()) {
                Some(i) => Err(invalid_type(&format!("stop[{i}]"), "a string", &items[i])),
                None => Ok(()),
            },
            Some(other) => Err(invalid_type(
                "stop",
                "a string or an array of strings",
                other,
            )),
        }
    }

    /// `stream` and `stream_options`; returns whether a stream was asked for.
    fn stream(&self) -> Result<bool, ApiError> {
        let stream = self.boolean("stream")?.unwrap_or(false);
        if let Some(opts) = self.get("stream_options") {
            let Some(o) = opts.as_object() else {
                return Err(invalid_type("stream_options", "an object", opts));
            };
            if !stream {
                return Err(ApiError::invalid_request(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    Some("stream_options"),
                    Some("invalid_value"),
                ));
            }
            if let Some(v) = member(o, "include_usage").filter(|v| !v.is_null())
                && !v.is_boolean()
            {
                return Err(invalid_type("stream_options.include_usage", "a boolean", v));
            }
        }
        Ok(stream)
    }
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid_request(
        format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

fn empty_array(param: &str) -> ApiError {
    ApiError::invalid_request(
        format!(
            "Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead."
        ),
        Some(param),
        Some("empty_array"),
    )
}

fn invalid_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid_request(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            with_article(json_type_name(got))
        ),
        Some(param),
        Some("invalid_type"),
    )
}

fn invalid_value(param: &str, got: &str, supported: &[&str]) -> ApiError {
    let list = supported
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    ApiError::invalid_request(
        format!("Invalid value for '{param}': '{got}'. Supported values are: {list}."),
        Some(param),
        Some("invalid_value"),
    )
}

fn with_article(noun: &str) -> String {
    if noun.starts_with("a ") || noun.starts_with("an ") || noun == "null" {
        return noun.to_owned();
    }
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "an empty string".to_owned(),
        Value::Array(a) if a.is_empty() => "an empty array".to_owned(),
        other => with_article(json_type_name(other)),
    }
}

/// `map[key]`. A request's objects have a handful of members, and comparing their keys costs
/// less than hashing `key` with the map's SipHash: a replayed chat request made two dozen
/// lookups, about 4% of its instructions (callgrind). Larger maps are looked up by hash.
fn member<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    const SCAN_UP_TO: usize = 16;
    if map.len() <= SCAN_UP_TO {
        map.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        map.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_is_found_in_small_and_large_objects() {
        for size in [0, 1, 16, 17, 100] {
            let map: Map<String, Value> = (0..size).map(|i| (format!("k{i}"), json!(i))).collect();
            for i in 0..size {
                assert_eq!(member(&map, &format!("k{i}")), Some(&json!(i)), "{size}");
            }
            assert_eq!(member(&map, "k"), None, "{size}");
            assert_eq!(member(&map, &format!("k{size}")), None, "{size}");
        }
    }

    fn chat_err(body: Value) -> (u16, Option<String>, String, String) {
        let e = chat(&body).unwrap_err();
        let code = e.code().and_then(Value::as_str).unwrap_or("").to_owned();
        (e.status, e.param, code, e.message)
    }

    fn ok_chat() -> Value {
        json!({"model": "p/m", "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn valid_requests_pass_with_all_parameters() {
        let mut body = ok_chat();
        let extra = json!({
            "temperature": 0, "top_p": 0.5, "max_tokens": 5, "max_completion_tokens": 5, "stop": ["\n"],
            "n": 1, "seed": 42, "stream": true, "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto", "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "unknown_extension": {"passed": "through"}, "user": null
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_eq!(
            chat(&body).unwrap(),
            Checked {
                model: "p/m".into(),
                stream: true
            }
        );
        let c =
            completion(&json!({"model": "p/m", "prompt": [[1, 2], [3]], "stream": false})).unwrap();
        assert!(!c.stream);
        let e = embeddings(&json!({"model": "p/m", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 3})).unwrap();
        assert!(e.base64);
    }

    #[test]
    fn chat_errors_name_the_parameter() {
        let (s, p, c, m) = chat_err(json!({"messages": []}));
        assert_eq!(
            (s, p.as_deref(), c.as_str()),
            (400, Some("model"), "missing_required_parameter"),
            "{m}"
        );
        let (_, p, c, _) = chat_err(json!({"model": 3, "messages": []}));
        assert_eq!((p.as_deref(), c.as_str()), (Some("model"), "invalid_type"));
        let (_, p, c, _) = chat_err(json!({"model": "m"}));
        assert_eq!(
            (p.as_deref(), c.as_str()),
            (Some("messages"), "missing_required_parameter")
        );
        let (_, p, c, _) = chat_err(json!({"model": "m", "messages": []}));
        assert_eq!(
            (p.as_deref(), c.as_str()),
            (Some("messages"), "empty_array")
        );
        let (_, p, c, _) = chat_err(json!({"model": "m", "messages": "hi"}));
        assert_eq!(
            (p.as_deref(), c.as_str()),
            (Some("messages"), "invalid_type")
        );
        let (_, p, c, _) =
            chat_err(json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}));
        assert_eq!(
            (p.as_deref(), c.as_str()),
            (Some("messages[0].role"), "invalid_value")
        );
        let (_, p, _, _) = chat_err(json!({"model": "m", "messages": [{"role": "user"}]}));
        assert_eq!(p.as_deref(), Some("messages[0].content"));

        let with = |k: &str, v: Value| {
            let mut b = ok_chat();
            b[k] = v;
            chat_err(b)
        };
        let (_, p, c, m) = with("temperature", json!("hot"));
        assert_eq!(
            (p.as_deref(), c.as_str()),
            (Some("temperature"), "invalid_type")
        );
        assert_eq!(
            m,
            "Invalid type for 'temperature': expected a number, but got a string instead."
        );
        assert_eq!(with("temperature", json!(3)).2, "decimal_above_max_value");
        assert_eq!(with("max_tokens", json!(1.5)).2, "invalid_type");
        assert_eq!(with("max_tokens", json!(0)).2, "integer_below_min_value");
        assert_eq!(with("n", json!("2")).2, "invalid_type");
        assert_eq!(with("stream", json!("yes")).2, "invalid_type");
        assert_eq!(
            with("stream_options", json!({"include_usage": true}))
                .1
                .as_deref(),
            Some("stream_options")
        );
        assert_eq!(with("stop", json!([1])).1.as_deref(), Some("stop[0]"));
        assert_eq!(with("seed", json!(1.5)).2, "invalid_type");
        assert_eq!(
            with("tools", json!([{"type": "function"}])).1.as_deref(),
            Some("tools[0].function")
        );
        assert_eq!(with("tool_choice", json!("sometimes")).2, "invalid_value");
        assert_eq!(
            with("response_format", json!({"type": "yaml"})).2,
            "invalid_value"
        );
        assert_eq!(
            with("response_format", json!({"type": "json_schema"}))
                .1
                .as_deref(),
            Some("response_format.json_schema")
        );
    }

    #[test]
    fn completion_and_embedding_errors() {
        let e = completion(&json!({"model": "m"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let e = completion(&json!({"model": "m", "prompt": [1, "a"]})).unwrap_err();
        assert_eq!(e.code(), Some(&json!("invalid_type")));
        let e =
            embeddings(&json!({"model": "m", "input": "x", "encoding_format": "hex"})).unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code().cloned()),
            (Some("encoding_format"), Some(json!("invalid_value")))
        );
        assert!(e.message.contains("'float', 'base64'"), "{}", e.message);
        let e = embeddings(&json!({"model": "m", "input": []})).unwrap_err();
        assert_eq!(e.code(), Some(&json!("empty_array")));
        let e = embeddings(&json!({"model": "m", "input": ["a", {}]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[1]"));
        let e = embeddings(&json!({"model": "m", "input": "a", "dimensions": 0})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("dimensions"));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        for bad in [
            &b"{not json"[..],
            b"",
            b"[1,2]",
            b"\"s\"",
            b"null",
            &[0xff, 0xfe],
        ] {
            let e = parse_body(bad).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.error_type, "invalid_request_error");
        }
        assert_eq!(
            parse_body(b"[]").unwrap_err().message,
            "Invalid request body: expected a JSON object, but got an array instead."
        );
    }
}
