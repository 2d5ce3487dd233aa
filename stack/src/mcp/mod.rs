//! MCP tools: the client side of the Model Context Protocol over streamable HTTP, with the
//! official Rust SDK (`rmcp`) on the stack's own HTTP client ([`transport`]), so that every MCP
//! exchange is recorded and replayed like a provider call.
//!
//! One [`McpSession`] per server per response: connect (initialize, initialized), list the tools,
//! call them, end the session (DELETE).

pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use opentelemetry::{Context, KeyValue};
use reqwest_middleware::ClientWithMiddleware;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, Implementation};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Map, Value};
use url::Url;

use crate::context::Captured;
use crate::telemetry::Telemetry;
use crate::telemetry::mcp::Observer;
use crate::telemetry::semconv as sc;
use transport::RecordedHttpClient;

/// How long connecting (initialize) and each request may take.
pub const MCP_TIMEOUT: Duration = Duration::from_secs(60);

/// An MCP server as a request's `mcp` tool names it.
#[derive(Clone)]
pub struct McpServer {
    /// The label the model and the output items know the server by.
    pub server_label: String,
    /// Its streamable HTTP endpoint.
    pub server_url: Url,
    /// A bearer token sent as `Authorization` (never logged, never stored).
    pub authorization: Option<String>,
    /// Extra headers sent with every request (never logged, never stored).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("server_label", &self.server_label)
            .field("server_url", &self.server_url.as_str())
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why an MCP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The session could not be started.
    #[error("cannot connect to MCP server '{label}' at {url}: {source}")]
    Connect {
        /// The server label.
        label: String,
        /// The server URL.
        url: String,
        /// What rmcp said.
        #[source]
        source: Box<rmcp::service::ClientInitializeError>,
    },
    /// A request failed (transport, or a JSON-RPC error answer).
    #[error("MCP server '{label}' failed {method}: {source}")]
    Request {
        /// The server label.
        label: String,
        /// The MCP method.
        method: &'static str,
        /// What rmcp said.
        #[source]
        source: Box<rmcp::ServiceError>,
    },
    /// The server did not answer in time.
    #[error("MCP server '{label}' did not answer {method} within {MCP_TIMEOUT:?}")]
    Timeout {
        /// The server label.
        label: String,
        /// The MCP method.
        method: &'static str,
    },
}

impl McpError {
    /// The `error.type` of the failure: the JSON-RPC error code of an error answer, else
    /// `_OTHER`.
    pub fn error_type(&self) -> String {
        match self {
            McpError::Request { source, .. } => match source.as_ref() {
                rmcp::ServiceError::McpError(data) => data.code.0.to_string(),
                _ => "_OTHER".to_owned(),
            },
            _ => "_OTHER".to_owned(),
        }
    }
}

/// What a tool call gave.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// The text of the result's content (text parts joined by newlines, other parts as JSON).
    pub text: String,
    /// The server flagged the result as an error (`isError: true`).
    pub is_error: bool,
}

/// A session with one MCP server.
pub struct McpSession {
    label: String,
    service: RunningService<RoleClient, ClientConfig>,
    observer: Arc<Observer>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl McpSession {
    /// Starts a session (initialize, then notifications/initialized) with `server` through
    /// `client`, traced as a child of `parent`. The requests run in the caller's test scope.
    pub async fn connect(
        client: ClientWithMiddleware,
        telemetry: Telemetry,
        server: &McpServer,
        parent: Context,
    ) -> Result<McpSession, McpError> {
        let label = server.server_label.clone();
        let extra = vec![
            KeyValue::new(sc::LLAMA_STACK_MCP_SERVER_LABEL, label.clone()),
            KeyValue::new(
                sc::LLAMA_STACK_MCP_SERVER_URL,
                server.server_url.to_string(),
            ),
        ];
        let observer = Observer::new(telemetry, &server.server_url, parent, extra);
        let http = RecordedHttpClient::new(
            client,
            format!("mcp/{label}"),
            Captured::current(),
            observer.clone(),
        );
        let mut config = StreamableHttpClientTransportConfig::with_uri(server.server_url.as_str())
            .max_concurrent_requests(1)
            .custom_headers(server.headers.iter().cloned().collect());
        if let Some(token) = &server.authorization {
            config = config.auth_header(token.clone());
        }
        let transport = StreamableHttpClientTransport::with_client(http, config);
        let mut info = ClientConfig::default();
        info.client_info = Implementation::new("llama-stack-rs", env!("CARGO_PKG_VERSION"));
        let connecting = info.serve(transport);
        let service = match tokio::time::timeout(MCP_TIMEOUT, connecting).await {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => {
                return Err(McpError::Connect {
                    label,
                    url: server.server_url.to_string(),
                    source: Box::new(e),
                });
            }
            Err(_) => {
                return Err(McpError::Timeout {
                    label,
                    method: "initialize",
                });
            }
        };
        Ok(McpSession {
            label,
            service,
            observer,
        })
    }

    /// The protocol version the server negotiated.
    pub fn protocol_version(&self) -> Option<String> {
        self.observer.protocol_version()
    }

    /// Every tool the server offers (all pages), as MCP tool objects (`name`, `description`,
    /// `inputSchema`, `annotations`...). The `tools/list` span gets `list_tools_id`, the id of
    /// the `mcp_list_tools` item the listing becomes.
    pub async fn list_tools(
        &self,
        parent: Context,
        list_tools_id: &str,
    ) -> Result<Vec<Value>, McpError> {
        self.observer.set_parent(parent, false);
        self.observer.annotate_next(vec![KeyValue::new(
            sc::LLAMA_STACK_MCP_LIST_TOOLS_ID,
            list_tools_id.to_owned(),
        )]);
        let listing = self.service.peer().list_all_tools();
        let tools = self.timed("tools/list", listing).await?;
        Ok(tools
            .into_iter()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect())
    }

    /// Calls tool `name` with `arguments` inside `tool_cx`, the context of its `execute_tool`
    /// span (which gets the MCP attributes of the call).
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        tool_cx: Context,
    ) -> Result<ToolOutcome, McpError> {
        self.observer.set_parent(tool_cx, true);
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = Some(arguments);
        let call = self.service.peer().call_tool(params);
        let result = self.timed("tools/call", call).await;
        let result = result?;
        let value = serde_json::to_value(&result).unwrap_or(Value::Null);
        Ok(ToolOutcome {
            text: content_text(&value),
            is_error: value.get("isError") == Some(&Value::Bool(true)),
        })
    }

    /// Ends the session (the server is told with a DELETE), traced under `parent`.
    pub async fn close(self, parent: Context) {
        self.observer.set_parent(parent, false);
        let label = self.label;
        match tokio::time::timeout(MCP_TIMEOUT, self.service.cancel()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(server_label = %label, "MCP session did not end cleanly: {e}")
            }
            Err(_) => {
                tracing::warn!(server_label = %label, "MCP session did not end within {MCP_TIMEOUT:?}")
            }
        }
    }

    async fn timed<T>(
        &self,
        method: &'static str,
        fut: impl std::future::Future<Output = Result<T, rmcp::ServiceError>>,
    ) -> Result<T, McpError> {
        match tokio::time::timeout(MCP_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(McpError::Request {
                label: self.label.clone(),
                method,
                source: Box::new(e),
            }),
            Err(_) => Err(McpError::Timeout {
                label: self.label.clone(),
                method,
            }),
        }
    }
}

/// The text of a `CallToolResult`'s content: text parts joined by newlines, other parts as JSON;
/// `structuredContent` as JSON when there is no content.
fn content_text(result: &Value) -> String {
    let parts: Vec<String> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| match item.get("text").and_then(Value::as_str) {
                    Some(t) if item.get("type").and_then(Value::as_str) == Some("text") => {
                        t.to_owned()
                    }
                    _ => item.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if parts.is_empty()
        && let Some(structured) = result.get("structuredContent").filter(|v| !v.is_null())
    {
        return structured.to_string();
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_result_text_joins_text_parts_and_keeps_others_as_json() {
        let r = json!({"content": [{"type": "text", "text": "a"}, {"type": "image", "data": "x"},
                                   {"type": "text", "text": "b"}]});
        assert_eq!(
            content_text(&r),
            "a\n{\"type\":\"image\",\"data\":\"x\"}\nb"
        );
        assert_eq!(
            content_text(&json!({"content": [], "structuredContent": {"n": 1}})),
            "{\"n\":1}"
        );
    }

    #[test]
    fn debug_output_hides_credentials() {
        let server = McpServer {
            server_label: "gh".into(),
            server_url: Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            authorization: Some("ghp_secret".into()),
            headers: vec![(
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_static("k-secret"),
            )],
        };
        let text = format!("{server:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("x-api-key"), "{text}");
    }
}
