//! OpenAI-style API errors: the one error type every endpoint answers with.
//!
//! The wire shape is `{"error": {"message", "type", "param", "code"}}` with a 4xx or 5xx status.
//! Server mode and library mode both build their errors here, so a client sees the same status
//! and body whichever way it reaches the stack.

use serde_json::{Map, Value, json};

/// An error as the API reports it: an HTTP status plus the OpenAI error object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("HTTP {status} ({error_type}): {message}")]
pub struct ApiError {
    /// HTTP status code (4xx for caller errors, 5xx for provider and stack failures).
    pub status: u16,
    /// Human-readable description of what was wrong.
    pub message: String,
    /// OpenAI error type, e.g. `invalid_request_error`.
    pub error_type: String,
    /// The request parameter the error is about, if any.
    pub param: Option<String>,
    /// A machine-readable code (usually a string; a provider's code is passed on as it came).
    /// Boxed to keep the error small; see [`ApiError::code`].
    pub code: Option<Box<Value>>,
}

/// Error type of caller mistakes.
pub const INVALID_REQUEST: &str = "invalid_request_error";
/// Error type of a request that the recorder could not replay.
pub const REPLAY_MISS: &str = "replay_miss";
/// Error type of failures to reach or understand a provider.
pub const PROVIDER_ERROR: &str = "provider_error";

impl ApiError {
    /// An error with every field given.
    pub fn new(
        status: u16,
        error_type: impl Into<String>,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            error_type: error_type.into(),
            param: param.map(str::to_owned),
            code: code.map(|c| Box::new(Value::String(c.to_owned()))),
        }
    }

    /// A 400 `invalid_request_error`.
    pub fn invalid_request(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        Self::new(400, INVALID_REQUEST, message, param, code)
    }

    /// The 404 answer for a path the API does not have.
    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self::new(
            404,
            INVALID_REQUEST,
            format!("Unknown request URL: {method} {path}. Please check the URL and method."),
            None,
            Some("unknown_url"),
        )
    }

    /// The 405 answer for a known path called with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &str) -> Self {
        Self::new(
            405,
            INVALID_REQUEST,
            format!("Method {method} is not allowed for {path}; use {allowed}."),
            None,
            Some("method_not_allowed"),
        )
    }

    /// The machine-readable code, if any.
    pub fn code(&self) -> Option<&Value> {
        self.code.as_deref()
    }

    /// The error object alone: `{"message", "type", "param", "code"}`.
    pub fn error_object(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("message".into(), Value::String(self.message.clone()));
        obj.insert("type".into(), Value::String(self.error_type.clone()));
        obj.insert(
            "param".into(),
            self.param.clone().map(Value::String).unwrap_or(Value::Null),
        );
        obj.insert(
            "code".into(),
            self.code.as_deref().cloned().unwrap_or(Value::Null),
        );
        Value::Object(obj)
    }

    /// The full response body: `{"error": {...}}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.error_object() })
    }

    /// Reads an error object (`{"message", "type", "param", "code"}`, any field may be missing)
    /// as sent by a provider or a stream, with `status` as its HTTP status.
    pub fn from_error_object(status: u16, object: &Value, default_type: &str) -> Self {
        let message = match object.get("message") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => match object {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            Some(other) => other.to_string(),
        };
        let error_type = object
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(default_type)
            .to_owned();
        let param = object.get("param").and_then(|p| match p {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        let code = object
            .get("code")
            .filter(|c| !c.is_null())
            .cloned()
            .map(Box::new);
        Self {
            status,
            message,
            error_type,
            param,
            code,
        }
    }
}

/// Short name of a JSON value's type, as used in validation messages.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "decimal",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape_in_order() {
        let e = ApiError::invalid_request("bad", Some("model"), Some("invalid_type"));
        assert_eq!(
            e.body().to_string(),
            r#"{"error":{"message":"bad","type":"invalid_request_error","param":"model","code":"invalid_type"}}"#
        );
        let none = ApiError::invalid_request("x", None, None);
        assert_eq!(none.body()["error"]["param"], Value::Null);
        assert_eq!(none.body()["error"]["code"], Value::Null);
    }

    #[test]
    fn error_objects_from_providers_are_read_leniently() {
        let obj =
            json!({"code": 400, "message": "model 'x' not found", "type": "invalid_request_error"});
        let e = ApiError::from_error_object(400, &obj, PROVIDER_ERROR);
        assert_eq!(e.message, "model 'x' not found");
        assert_eq!(e.code(), Some(&json!(400)));
        assert_eq!(e.param, None);
        let e = ApiError::from_error_object(500, &json!("plain text"), PROVIDER_ERROR);
        assert_eq!(
            (e.message.as_str(), e.error_type.as_str()),
            ("plain text", PROVIDER_ERROR)
        );
    }
}
