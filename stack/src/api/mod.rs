//! The API the stack offers, independent of transport: endpoints, request handling and replies.
//! The HTTP server and the in-process client both call [`crate::Stack::handle`], so both give the
//! same answers, errors included.

pub mod completion_logprobs;
pub mod embeddings;
pub mod errors;
pub mod inference;
pub mod listing;
pub mod providers;
pub mod stored_chat;
pub mod validate;

use futures::stream::BoxStream;
use serde_json::Value;

use crate::error::ApiError;

/// The chunks of a streamed answer. An `Err` item is the last one: the stream failed after it
/// started (the server sends it as a `data: {"error": ...}` event and no `[DONE]`).
pub type ChunkStream = BoxStream<'static, Result<Value, ApiError>>;

/// A successful answer. More kinds may come: match with a catch-all arm, or call
/// [`Reply::parsed`] first to have JSON answers as [`Reply::Json`].
#[non_exhaustive]
pub enum Reply {
    /// A JSON body.
    Json(Value),
    /// A JSON object passed through from a provider as text (chat and text completions):
    /// [`Reply::parsed`] turns it into [`Reply::Json`].
    Raw(crate::providers::RawObject),
    /// A stream of JSON chunks (server-sent `data:` events, then `data: [DONE]`).
    Stream(ChunkStream),
    /// A stream of typed events (the Responses API): each chunk's `type` is also its SSE event
    /// name, and the stream ends with its last event, without `[DONE]`.
    Events(ChunkStream),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(v) => f.debug_tuple("Json").field(v).finish(),
            Self::Raw(o) => f.debug_tuple("Raw").field(o).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
            Self::Events(_) => f.write_str("Events(..)"),
        }
    }
}

impl Reply {
    /// The reply with a passed-through object parsed ([`Reply::Raw`] becomes [`Reply::Json`]),
    /// for callers that read the answer.
    pub fn parsed(self) -> Reply {
        match self {
            Reply::Raw(object) => Reply::Json(object.to_value()),
            other => other,
        }
    }
}

/// An endpoint's path pattern, split at its placeholder.
#[derive(Clone, Copy)]
enum PathPattern {
    Exact(&'static str),
    WithId {
        prefix: &'static str,
        suffix: &'static str,
        /// `{*name}`: the id may hold slashes.
        rest_of_path: bool,
    },
}

/// Every endpoint with its split pattern, in [`Endpoint::ALL`]'s order, worked out once (routing
/// every request searched every pattern for its braces, then every endpoint for its pattern).
fn patterns() -> &'static [(Endpoint, PathPattern)] {
    static PATTERNS: std::sync::OnceLock<Vec<(Endpoint, PathPattern)>> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        Endpoint::ALL
            .into_iter()
            .map(|e| {
                let pattern = e.path();
                let placeholder = pattern.find('{').and_then(|start| {
                    pattern[start..]
                        .find('}')
                        .map(|end| (start, start + end + 1))
                });
                let split = match placeholder {
                    None => PathPattern::Exact(pattern),
                    Some((a, b)) => PathPattern::WithId {
                        prefix: &pattern[..a],
                        suffix: &pattern[b..],
                        rest_of_path: pattern[a..].starts_with("{*"),
                    },
                };
                (e, split)
            })
            .collect()
    })
}

/// The `{...}` segment of `path` when it matches `pattern` (`Some("")` for a pattern without
/// one).
fn match_pattern(pattern: PathPattern, path: &str) -> Option<String> {
    match pattern {
        PathPattern::Exact(pattern) => (pattern == path).then(String::new),
        PathPattern::WithId {
            prefix,
            suffix,
            rest_of_path,
        } => {
            let id = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
            (!id.is_empty() && (rest_of_path || !id.contains('/'))).then(|| {
                url::form_urlencoded::parse(format!("x={id}").replace('+', "%2B").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
        }
    }
}

/// The endpoints of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v1/health`
    Health,
    /// `GET /v1/version`
    Version,
    /// `GET /v1/models`
    Models,
    /// `GET /v1/models/{model_id}` (Llama Stack's model resource; the id may contain `/`)
    GetModel,
    /// `GET /v1/providers`
    ListProviders,
    /// `GET /v1/inspect/routes` (Llama Stack's route listing)
    ListRoutes,
    /// `GET /v1/providers/{provider_id}`
    GetProvider,
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `GET /v1/chat/completions` (Llama Stack's stored chat completions: `after`, `limit`,
    /// `order`, `model`)
    ListChatCompletions,
    /// `GET /v1/chat/completions/{completion_id}`
    GetChatCompletion,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses`
    CreateResponse,
    /// `GET /v1/responses` (Llama Stack's listing: `after`, `limit`, `order`, `model`)
    ListResponses,
    /// `GET /v1/responses/{response_id}`
    GetResponse,
    /// `DELETE /v1/responses/{response_id}`
    DeleteResponse,
    /// `GET /v1/responses/{response_id}/input_items`
    ListInputItems,
    /// `GET /v1/shields`
    ListShields,
    /// `POST /v1/shields`
    RegisterShield,
    /// `GET /v1/shields/{identifier}`
    GetShield,
    /// `DELETE /v1/shields/{identifier}`
    DeleteShield,
    /// `POST /v1/safety/run-shield`
    RunShield,
    /// `POST /v1/moderations`
    Moderations,
}

/// What a request's URL says besides its endpoint: the id in the path (`{response_id}`,
/// `{identifier}`) and the query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// The path's id, percent-decoded.
    pub id: Option<String>,
    /// The query parameters in order, percent-decoded.
    pub query: Vec<(String, String)>,
}

impl Params {
    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 23] = [
        Self::Health,
        Self::Version,
        Self::Models,
        Self::GetModel,
        Self::ListProviders,
        Self::ListRoutes,
        Self::GetProvider,
        Self::ChatCompletions,
        Self::ListChatCompletions,
        Self::GetChatCompletion,
        Self::Completions,
        Self::Embeddings,
        Self::CreateResponse,
        Self::ListResponses,
        Self::GetResponse,
        Self::DeleteResponse,
        Self::ListInputItems,
        Self::ListShields,
        Self::RegisterShield,
        Self::GetShield,
        Self::DeleteShield,
        Self::RunShield,
        Self::Moderations,
    ];

    /// The URL path (a route pattern, in axum's syntax: `{response_id}` stands for one path
    /// segment, `{*model_id}` for the rest of the path, slashes included).
    pub fn path(self) -> &'static str {
        match self {
            Self::Health => "/v1/health",
            Self::Version => "/v1/version",
            Self::Models => "/v1/models",
            Self::GetModel => "/v1/models/{*model_id}",
            Self::ListProviders => "/v1/providers",
            Self::ListRoutes => "/v1/inspect/routes",
            Self::GetProvider => "/v1/providers/{provider_id}",
            Self::ChatCompletions | Self::ListChatCompletions => "/v1/chat/completions",
            Self::GetChatCompletion => "/v1/chat/completions/{completion_id}",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::CreateResponse | Self::ListResponses => "/v1/responses",
            Self::GetResponse | Self::DeleteResponse => "/v1/responses/{response_id}",
            Self::ListInputItems => "/v1/responses/{response_id}/input_items",
            Self::ListShields | Self::RegisterShield => "/v1/shields",
            Self::GetShield | Self::DeleteShield => "/v1/shields/{identifier}",
            Self::RunShield => "/v1/safety/run-shield",
            Self::Moderations => "/v1/moderations",
        }
    }

    /// The HTTP method.
    pub fn method(self) -> &'static str {
        match self {
            Self::Health
            | Self::Version
            | Self::Models
            | Self::GetModel
            | Self::ListProviders
            | Self::ListRoutes
            | Self::GetProvider
            | Self::ListChatCompletions
            | Self::GetChatCompletion
            | Self::ListResponses
            | Self::GetResponse
            | Self::ListInputItems
            | Self::ListShields
            | Self::GetShield => "GET",
            Self::DeleteResponse | Self::DeleteShield => "DELETE",
            Self::ChatCompletions
            | Self::Completions
            | Self::Embeddings
            | Self::CreateResponse
            | Self::RegisterShield
            | Self::RunShield
            | Self::Moderations => "POST",
        }
    }

    /// The endpoints whose patterns `path` matches, each with its `{...}` segment (`""` for a
    /// pattern without one), in [`Endpoint::ALL`]'s order.
    fn matching(path: &str) -> impl Iterator<Item = (Endpoint, String)> + '_ {
        patterns().iter().filter_map(move |&(endpoint, pattern)| {
            match_pattern(pattern, path).map(|id| (endpoint, id))
        })
    }

    /// The endpoint at a path, whatever the method (the first one of the path; query string
    /// ignored).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.split('?').next().unwrap_or(path);
        Self::matching(path).next().map(|(endpoint, _)| endpoint)
    }

    /// The endpoint a method and a path (with its query string) ask for, with its parameters:
    /// 404 for a path the API does not have, 405 naming the allowed methods for a known path
    /// asked with another method.
    pub fn route(method: &str, path_and_query: &str) -> Result<(Endpoint, Params), ApiError> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let matching: Vec<(Endpoint, String)> = Self::matching(path).collect();
        if matching.is_empty() {
            return Err(ApiError::unknown_route(method, path));
        }
        let Some((endpoint, id)) = matching.iter().find(|(e, _)| e.method() == method) else {
            let allowed: Vec<&str> = matching.iter().map(|(e, _)| e.method()).collect();
            return Err(ApiError::method_not_allowed(
                method,
                path,
                &allowed.join(" or "),
            ));
        };
        let params = Params {
            id: (!id.is_empty()).then(|| id.clone()),
            query: url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        };
        Ok((*endpoint, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_ids_queries_and_methods() {
        let (e, p) =
            Endpoint::route("GET", "/v1/responses/resp_1/input_items?limit=2&order=asc").unwrap();
        assert_eq!(e, Endpoint::ListInputItems);
        assert_eq!(p.id.as_deref(), Some("resp_1"));
        assert_eq!(
            (p.query("limit"), p.query("order")),
            (Some("2"), Some("asc"))
        );
        assert_eq!(
            Endpoint::route("DELETE", "/v1/responses/r%20x")
                .unwrap()
                .1
                .id
                .as_deref(),
            Some("r x")
        );
        assert_eq!(
            Endpoint::route("POST", "/v1/responses").unwrap().0,
            Endpoint::CreateResponse
        );
        assert_eq!(
            Endpoint::route("GET", "/v1/responses").unwrap().0,
            Endpoint::ListResponses
        );
        let wrong = Endpoint::route("PUT", "/v1/responses").unwrap_err();
        assert_eq!(wrong.status, 405);
        assert!(wrong.message.contains("POST or GET"), "{}", wrong.message);
        assert_eq!(
            Endpoint::route("GET", "/v1/responses/a/b")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            Endpoint::route("GET", "/v1/nothing").unwrap_err().status,
            404
        );
        // Model ids contain `/`: raw or percent-encoded (as the Stainless clients send them).
        for path in [
            "/v1/models/llamacpp/qwen2.5-coder-0.5b",
            "/v1/models/llamacpp%2Fqwen2.5-coder-0.5b",
        ] {
            let (e, p) = Endpoint::route("GET", path).unwrap();
            assert_eq!(e, Endpoint::GetModel);
            assert_eq!(p.id.as_deref(), Some("llamacpp/qwen2.5-coder-0.5b"));
        }
        assert_eq!(
            Endpoint::route("GET", "/v1/chat/completions?limit=2")
                .unwrap()
                .0,
            Endpoint::ListChatCompletions
        );
        assert_eq!(
            Endpoint::route("GET", "/v1/chat/completions/chatcmpl-1")
                .unwrap()
                .0,
            Endpoint::GetChatCompletion
        );
    }
}
