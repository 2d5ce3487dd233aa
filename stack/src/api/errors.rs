//! How provider and model-registry failures reach the stack's callers: the HTTP status, error
//! type and code of each. `providers` and the model registry only say what went wrong.

use support::transport::TransportKind;

use crate::error::{ApiError, INVALID_REQUEST, PROVIDER_ERROR, REPLAY_MISS};
use crate::model_registry::RouterError;
use crate::providers::ProviderError;

/// The API error a caller receives for a failure.
pub trait ToApiError {
    /// The status, type, code and message callers get.
    fn to_api_error(&self) -> ApiError;
}

impl ToApiError for ProviderError {
    /// The API error a caller receives for this failure.
    fn to_api_error(&self) -> ApiError {
        match self {
            ProviderError::Status {
                status,
                message,
                error,
                ..
            } => {
                let status = if (400..=599).contains(status) {
                    *status
                } else {
                    502
                };
                let default_type = if status < 500 {
                    INVALID_REQUEST
                } else {
                    PROVIDER_ERROR
                };
                let mut api = match error {
                    Some(obj) => ApiError::from_error_object(status, obj, default_type),
                    None => ApiError::new(status, default_type, message.clone(), None, None),
                };
                api.message = message.clone();
                api
            }
            ProviderError::Connect { .. } | ProviderError::Transport { .. } => {
                let code = if matches!(self, ProviderError::Connect { .. }) {
                    "provider_unreachable"
                } else {
                    "provider_transport_error"
                };
                ApiError::new(502, PROVIDER_ERROR, self.to_string(), None, Some(code))
            }
            ProviderError::Timeout { .. } => ApiError::new(
                504,
                PROVIDER_ERROR,
                self.to_string(),
                None,
                Some("provider_timeout"),
            ),
            ProviderError::InvalidResponse { .. } => ApiError::new(
                502,
                PROVIDER_ERROR,
                self.to_string(),
                None,
                Some("invalid_provider_response"),
            ),
            ProviderError::ReplayMiss(text) => {
                ApiError::new(500, REPLAY_MISS, text.clone(), None, Some(REPLAY_MISS))
            }
            ProviderError::RecordedTransport { kind, .. } => {
                let (status, code) = match kind {
                    TransportKind::Connect => (502, "provider_unreachable"),
                    TransportKind::Timeout => (504, "provider_timeout"),
                    TransportKind::Body | TransportKind::Other => (502, "provider_transport_error"),
                };
                ApiError::new(status, PROVIDER_ERROR, self.to_string(), None, Some(code))
            }
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        e.to_api_error()
    }
}

impl From<RouterError> for ApiError {
    fn from(e: RouterError) -> Self {
        ApiError::new(
            404,
            INVALID_REQUEST,
            e.to_string(),
            Some("model"),
            Some("model_not_found"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{INVALID_REQUEST, PROVIDER_ERROR};
    use serde_json::json;

    #[test]
    fn provider_error_bodies_keep_status_and_message() {
        let body = br#"{"error":{"code":400,"message":"model 'x' not found","type":"invalid_request_error"}}"#;
        let api = ProviderError::from_status("llamacpp", 400, body).to_api_error();
        assert_eq!(api.status, 400);
        assert_eq!(api.message, "model 'x' not found");
        assert_eq!(api.error_type, "invalid_request_error");
        assert_eq!(api.code(), Some(&json!(400)));

        let api =
            ProviderError::from_status("vllm", 422, br#"{"detail":"bad field"}"#).to_api_error();
        assert_eq!(
            (api.status, api.message.as_str(), api.error_type.as_str()),
            (422, "bad field", INVALID_REQUEST)
        );

        let api = ProviderError::from_status("p", 503, b"  overloaded \n").to_api_error();
        assert_eq!(
            (api.status, api.message.as_str(), api.error_type.as_str()),
            (503, "overloaded", PROVIDER_ERROR)
        );

        let api = ProviderError::from_status("p", 500, b"").to_api_error();
        assert_eq!(api.message, "HTTP 500");

        let api =
            ProviderError::from_status("p", 404, br#"{"error":"no such model"}"#).to_api_error();
        assert_eq!((api.status, api.message.as_str()), (404, "no such model"));
    }

    #[test]
    fn replay_and_transport_failures_map_to_5xx() {
        let miss = ProviderError::ReplayMiss("line 1\nline 2".into()).to_api_error();
        assert_eq!(
            (miss.status, miss.error_type.as_str()),
            (500, "replay_miss")
        );
        assert_eq!(miss.message, "line 1\nline 2");
        let rec = |kind: &str| ProviderError::RecordedTransport {
            provider: "p".into(),
            kind: kind.into(),
            message: "refused".into(),
            source: None,
        };
        assert_eq!(rec("connect").to_api_error().status, 502);
        assert_eq!(rec("timeout").to_api_error().status, 504);
        assert_eq!(rec("other").to_api_error().status, 502);
    }
}
