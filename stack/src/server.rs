//! The HTTP server: the API of [`Stack`] over axum, in the OpenAI wire format.
//!
//! Every request is answered by [`Stack::call`]; errors (including malformed JSON, unknown paths
//! and wrong methods) are OpenAI-style JSON bodies, never axum's plain-text rejections. Streams
//! are server-sent events: `data: {chunk}\n\n` per chunk, then `data: [DONE]\n\n` (or a final
//! `data: {"error": ...}\n\n` when the stream fails midway). With the `replay` feature each
//! request runs inside the test context named by its `X-LlamaStack-Provider-Data` header.
//! Every request is traced ([`crate::telemetry::http_server`]): it continues the caller's trace
//! when it carries a `traceparent`.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::StreamExt;
use opentelemetry::trace::FutureExt as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Stack;
use crate::api::{ChunkStream, Endpoint, Reply};
use crate::context::{Captured, PROVIDER_DATA_HEADER};
use crate::error::ApiError;
use crate::telemetry;

/// Largest request body accepted (batch embeddings can be large).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The axum application serving `stack`. When the stack's telemetry records spans or metrics,
/// each request gets an OpenTelemetry SERVER span and `http.server.*` metrics
/// ([`telemetry::http_server`]), through the global providers installed when this is called;
/// otherwise it runs in the incoming `traceparent`'s context only.
pub fn app(stack: Stack) -> Router {
    let records = stack.telemetry().records_spans() || stack.telemetry().records_metrics();
    let mut router = Router::new();
    let mut paths: Vec<&'static str> = Endpoint::ALL.iter().map(|e| e.path()).collect();
    paths.dedup();
    for path in paths {
        // One handler per path: `Stack::handle` picks the endpoint by method (405 for others)
        // and reads the path and query parameters, exactly as in library mode.
        router = router.route(path, any(handle));
    }
    let router = router
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // When the stack's telemetry records neither spans nor metrics, the request scope also takes
    // the caller's trace context: one middleware less a request (each is a boxed future and a
    // service clone).
    let router = if records {
        router
            .layer(middleware::from_fn(request_scope))
            .layer(telemetry::http_server::layer())
    } else {
        router.layer(middleware::from_fn(request_scope_in_callers_trace))
    };
    router.with_state(stack)
}

/// Serves `stack` on `listener` until `shutdown` completes (in-flight requests then finish),
/// within the default [`crate::listen::Limits`]: 10 s for a request's headers (and for an idle
/// keep-alive connection), 60 s for its body, as many connections as the open-file limit allows.
pub async fn serve<F>(stack: Stack, listener: TcpListener, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    crate::listen::serve(
        app(stack),
        listener,
        crate::listen::Limits::default(),
        shutdown,
    )
    .await
}

/// A server running in the background of this process (for tests and embedding).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Binds `addr` (e.g. `127.0.0.1:0` for a free port) and serves `stack` on a background task.
    pub async fn start(stack: Stack, addr: &str) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(stack, listener, async {
            let _ = rx.await;
        }));
        Ok(RunningServer {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base URL for [`crate::StackClient::http`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish and waits for the server.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(
    State(stack): State<Stack>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let reply = match body {
        Ok(bytes) => stack.handle(method.as_str(), target, &bytes).await,
        Err(rejection) => Err(rejected(rejection)),
    };
    respond(reply)
}

/// Runs the rest of the request inside the test context of its provider-data header, and logs
/// the request with its status and latency.
async fn request_scope(request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(PROVIDER_DATA_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let captured = Captured::from_provider_data(header.as_deref());
    let test_id = captured.test_id();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = captured.scope(next.run(request)).await;
    tracing::info!(
        test_id = test_id.as_deref().unwrap_or("-"),
        "{method} {path} {} ({} ms)",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

/// [`request_scope`] in the context of the incoming `traceparent`, for a stack whose telemetry
/// records nothing ([`telemetry::http_server::callers_context`]).
async fn request_scope_in_callers_trace(request: Request, next: Next) -> Response {
    let parent = telemetry::http_server::callers_context(request.headers());
    request_scope(request, next).with_context(parent).await
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    error_response(&ApiError::unknown_route(method.as_str(), uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    let err = match Endpoint::from_path(uri.path()) {
        Some(e) => ApiError::method_not_allowed(method.as_str(), e.path(), e.method()),
        None => ApiError::unknown_route(method.as_str(), uri.path()),
    };
    error_response(&err)
}

fn rejected(rejection: BytesRejection) -> ApiError {
    if crate::body_deadline::is_elapsed(&rejection) {
        return ApiError::new(
            408,
            crate::error::INVALID_REQUEST,
            "The request body did not arrive in time; send it whole and promptly.",
            None,
            Some("request_timeout"),
        );
    }
    let status = rejection.status().as_u16();
    let code = if status == 413 {
        "request_too_large"
    } else {
        "invalid_body"
    };
    ApiError::new(
        status,
        crate::error::INVALID_REQUEST,
        format!("Could not read the request body: {}", rejection.body_text()),
        None,
        Some(code),
    )
}

fn respond(reply: Result<Reply, ApiError>) -> Response {
    match reply {
        Ok(Reply::Json(value)) => axum::Json(value).into_response(),
        Ok(Reply::Raw(object)) => (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            object.into_text(),
        )
            .into_response(),
        Ok(Reply::Stream(chunks)) => sse_response(chunks),
        Ok(Reply::Events(events)) => event_response(events),
        Err(e) => error_response(&e),
    }
}

fn error_response(e: &ApiError) -> Response {
    if e.status >= 500 {
        tracing::warn!(status = e.status, "answering with an error: {}", e.message);
    } else {
        tracing::debug!(status = e.status, "answering with an error: {}", e.message);
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(e.body())).into_response()
}

/// The SSE encoding of a chunk stream (axum's [`Sse`], no keep-alive comments): `data: {chunk}`
/// per chunk, then `data: [DONE]`, or a final `data: {error}` when the stream fails. Each event
/// is serialized straight into its own buffer, one body frame per event.
fn sse_response(chunks: ChunkStream) -> Response {
    let events = futures::stream::unfold(Some(chunks), |state| async move {
        let mut chunks = state?;
        let (event, next) = match chunks.next().await {
            Some(Ok(chunk)) => (json_event(Event::default(), &chunk), Some(chunks)),
            Some(Err(e)) => {
                tracing::warn!("stream failed: {}", e.message);
                (json_event(Event::default(), &e.body()), None)
            }
            None => (Ok(Event::default().data("[DONE]")), None),
        };
        Some((event, next))
    });
    Sse::new(events).into_response()
}

/// The SSE encoding of typed events (the Responses API): `event: {type}` and `data: {event}`
/// per event, no `[DONE]`. A `type` that cannot be an SSE field (a line break in it) is sent as
/// `message`, the SSE default.
fn event_response(events: ChunkStream) -> Response {
    let events = events.map(|item| match item {
        Ok(event) => {
            let kind = event
                .get("type")
                .and_then(|t| t.as_str())
                .filter(|t| !t.contains(['\n', '\r']))
                .unwrap_or("message");
            json_event(Event::default().event(kind), &event)
        }
        Err(e) => json_event(Event::default().event("error"), &e.body()),
    });
    Sse::new(events).into_response()
}

/// `event` with `value` as its data, serialized in one piece: compact JSON holds no line break,
/// so it is one `data:` line. (`Event::json_data` streams the serializer's many small writes
/// through a line-break scan each; it made a streamed replay's encoding cost twice its parsing.)
fn json_event(event: Event, value: &impl serde::Serialize) -> Result<Event, serde_json::Error> {
    serde_json::to_string(value).map(|text| event.data(text))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::{Value, json};
    use wiremock::matchers::{body_partial_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::client::{ClientError, StackClient};
    use crate::testutil::*;

    async fn provider_with_everything() -> MockServer {
        let server = fake_provider().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_partial_json(json!({"model": "extra"})))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"error": {"code": 400, "message": "model 'extra' not found", "type": "invalid_request_error"}}),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_partial_json(json!({"stream": true, "max_tokens": 99})))
            .respond_with(sse(format!(
                "data: {}\n\ndata: {}\n\n",
                json!({"choices": [{"delta": {"content": "a"}, "index": 0}], "model": "smollm2-135m"}),
                json!({"error": {"message": "broke", "type": "server_error"}})
            )))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_partial_json(json!({"stream": true})))
            .respond_with(sse(sse_body(&chat_chunks("smollm2-135m"))))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(chat_reply("smollm2-135m", "Hi")),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"choices": [{"text": " world", "index": 0, "finish_reason": "length"}], "model": "smollm2-135m", "object": "text_completion"}),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"data": [{"embedding": [0.25, 0.5], "index": 0, "object": "embedding"}], "model": "all-minilm-l6-v2", "object": "list"}),
            ))
            .mount(&server)
            .await;
        server
    }

    type Outcome = Result<Value, ClientError>;

    /// The same calls through one client, in order.
    async fn run_all(client: &StackClient) -> Vec<(String, Vec<Outcome>)> {
        let chat = |extra: Value| {
            let mut b = json!({"model": "llamacpp/smollm2-135m", "messages": [{"role": "user", "content": "hi"}]});
            if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            b
        };
        let mut out = vec![
            ("health".into(), vec![client.health().await]),
            ("version".into(), vec![client.version().await]),
            ("models".into(), vec![client.models().await]),
            ("chat".into(), vec![client.chat_completion(chat(json!({"temperature": 0}))).await]),
            ("completion".into(), vec![client.completion(json!({"model": "llamacpp/smollm2-135m", "prompt": "hello"})).await]),
            (
                "embeddings".into(),
                vec![client.embeddings(json!({"model": "llamacpp/all-minilm-l6-v2", "input": "x", "encoding_format": "base64"})).await],
            ),
            ("missing model".into(), vec![client.chat_completion(json!({"messages": []})).await]),
            ("bad temperature".into(), vec![client.chat_completion(chat(json!({"temperature": "hot"}))).await]),
            ("unknown model".into(), vec![client.chat_completion(json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]})).await]),
            ("provider 400".into(), vec![client.chat_completion(json!({"model": "llamacpp/extra", "messages": [{"role": "user", "content": "x"}]})).await]),
            ("malformed json".into(), vec![client.post_raw("/v1/chat/completions", "{\"model\": ").await]),
            ("array body".into(), vec![client.post_raw("/v1/embeddings", "[1]").await]),
            ("unknown path".into(), vec![client.post_raw("/v1/nothing", "{}").await]),
            ("wrong method".into(), vec![client.post_raw("/v1/models", "{}").await]),
            ("raw stream".into(), vec![client.post_raw("/v1/chat/completions", chat(json!({"stream": true})).to_string()).await]),
        ];
        let stream =
            client.chat_completion_stream(chat(json!({"stream_options": {"include_usage": true}})));
        out.push(("stream".into(), stream.collect().await));
        let broken = client.chat_completion_stream(chat(json!({"max_tokens": 99})));
        out.push(("broken stream".into(), broken.collect().await));
        let refused = client.chat_completion_stream(chat(json!({"n": 0})));
        out.push(("refused stream".into(), refused.collect().await));
        out
    }

    #[tokio::test]
    async fn server_and_library_clients_answer_identically() {
        let provider = provider_with_everything().await;
        let stack = stack_for(&provider).await;
        let server = RunningServer::start(stack.clone(), "127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let http = StackClient::http(&format!("{}/v1/", server.base_url()))
            .unwrap_or_else(|e| panic!("{e}"));
        let library = StackClient::library(stack);
        let over_http = run_all(&http).await;
        let in_process = run_all(&library).await;
        for ((name, h), (_, l)) in over_http.iter().zip(&in_process) {
            assert_eq!(h, l, "{name}: http vs library");
        }
        let get = |name: &str| {
            over_http
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("health")[0], Ok(json!({"status": "OK"})));
        assert_eq!(
            get("version")[0],
            Ok(json!({"version": env!("CARGO_PKG_VERSION")}))
        );
        assert_eq!(
            get("chat")[0].as_ref().map(|v| v["model"].clone()),
            Ok(json!("llamacpp/smollm2-135m"))
        );
        assert_eq!(
            get("embeddings")[0]
                .as_ref()
                .map(|v| v["data"][0]["embedding"].clone()),
            Ok(json!("AACAPgAAAD8="))
        );
        let status = |name: &str| get(name)[0].as_ref().err().and_then(ClientError::status);
        assert_eq!(status("missing model"), Some(400));
        assert_eq!(status("bad temperature"), Some(400));
        assert_eq!(status("unknown model"), Some(404));
        assert_eq!(status("provider 400"), Some(400));
        assert_eq!(status("malformed json"), Some(400));
        assert_eq!(status("array body"), Some(400));
        assert_eq!(status("unknown path"), Some(404));
        assert_eq!(status("wrong method"), Some(405));
        let malformed = get("malformed json")[0].clone().unwrap_err();
        assert_eq!(malformed.error_type(), Some("invalid_request_error"));
        assert_eq!(malformed.code(), Some(&json!("invalid_json")));
        let stream = get("stream");
        assert_eq!(
            stream.into_iter().collect::<Result<Vec<_>, _>>(),
            Ok(renamed(
                &chat_chunks("smollm2-135m"),
                "llamacpp/smollm2-135m"
            ))
        );
        assert_eq!(
            get("raw stream")[0]
                .as_ref()
                .map(|v| v.as_array().map(Vec::len)),
            Ok(Some(5))
        );
        let broken = get("broken stream");
        assert_eq!(broken.len(), 2);
        assert_eq!(
            broken[1].as_ref().err().map(ClientError::message),
            Some("broke".into())
        );
        assert!(matches!(broken[1], Err(ClientError::Stream { .. })));
        let refused = get("refused stream");
        assert_eq!(
            (
                refused.len(),
                refused[0].as_ref().err().and_then(ClientError::param)
            ),
            (1, Some("n"))
        );
        server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn sse_wire_format_and_error_bodies() {
        let provider = provider_with_everything().await;
        let server = RunningServer::start(stack_for(&provider).await, "127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{}/v1/chat/completions", server.base_url()))
            .body(r#"{"model":"llamacpp/smollm2-135m","messages":[{"role":"user","content":"hi"}],"stream":true}"#)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        let text = response.text().await.unwrap_or_default();
        let expected: String = renamed(&chat_chunks("smollm2-135m"), "llamacpp/smollm2-135m")
            .iter()
            .map(|c| format!("data: {c}\n\n"))
            .chain(["data: [DONE]\n\n".to_owned()])
            .collect();
        assert_eq!(text, expected);

        let response = http
            .post(format!("{}/v1/chat/completions", server.base_url()))
            .header("content-type", "application/json")
            .body("{oops")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 400);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body: Value = response.json().await.unwrap_or_default();
        let keys: Vec<&String> = body["error"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["message", "type", "param", "code"]);
    }

    #[cfg(feature = "replay")]
    mod replay {
        use std::sync::{Arc, Mutex};

        use harness::context::TestContext;
        use reqwest_middleware::{Middleware, Next};

        use super::*;

        /// Remembers, for every provider request, the test id current when it was sent.
        #[derive(Clone, Default)]
        struct SeenTestIds(Arc<Mutex<Vec<Seen>>>);

        /// A provider request path and the test id current when it was sent.
        type Seen = (String, Option<String>);

        #[async_trait::async_trait]
        impl Middleware for SeenTestIds {
            async fn handle(
                &self,
                req: reqwest::Request,
                extensions: &mut http::Extensions,
                next: Next<'_>,
            ) -> reqwest_middleware::Result<reqwest::Response> {
                let id = TestContext::current().map(|c| c.test_id().to_owned());
                if let Ok(mut seen) = self.0.lock() {
                    seen.push((req.url().path().to_owned(), id));
                }
                next.run(req, extensions).await
            }
        }

        async fn session(
            client: &StackClient,
            test_id: &str,
            prompt: &str,
        ) -> (Outcome, Vec<Outcome>) {
            let body = json!({"model": "llamacpp/smollm2-135m", "messages": [{"role": "user", "content": prompt}]});
            TestContext::new(test_id)
                .scope(async {
                    let plain = client.chat_completion(body.clone()).await;
                    let chunks = client.chat_completion_stream(body.clone()).collect().await;
                    (plain, chunks)
                })
                .await
        }

        #[tokio::test]
        async fn record_then_replay_through_the_server_and_misses_are_500() {
            use harness::recorder::Mode;
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let provider = provider_with_everything().await;
            let base_url = provider.uri();
            let recorded = {
                let stack = recorded_stack(Mode::Record, dir.path(), config_for(&base_url)).await;
                let server = RunningServer::start(stack, "127.0.0.1:0")
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let client =
                    StackClient::http(&server.base_url()).unwrap_or_else(|e| panic!("{e}"));
                let out = session(&client, "tests/r.rs::chat", "hi").await;
                server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
                out
            };
            assert!(
                recorded.0.is_ok() && recorded.1.iter().all(Result::is_ok),
                "{recorded:?}"
            );
            drop(provider); // replay must not need the provider

            let stack = recorded_stack(Mode::Replay, dir.path(), config_for(&base_url)).await;
            assert_eq!(
                stack.registry().models().len(),
                3,
                "discovery is replayed too"
            );
            let server = RunningServer::start(stack.clone(), "127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for client in [
                StackClient::http(&server.base_url()).unwrap_or_else(|e| panic!("{e}")),
                StackClient::library(stack.clone()),
            ] {
                let replayed = session(&client, "tests/r.rs::chat", "hi").await;
                assert_eq!(replayed, recorded, "library={}", client.is_library());

                let (miss, stream_miss) =
                    session(&client, "tests/r.rs::chat", "not recorded").await;
                let miss = miss.unwrap_err();
                assert_eq!(miss.status(), Some(500));
                assert_eq!(miss.error_type(), Some("replay_miss"));
                let text = miss.message();
                assert!(
                    text.starts_with("Recording not found for request hash"),
                    "{text}"
                );
                assert!(
                    text.contains("tests/r.rs::chat") && text.lines().count() > 3,
                    "{text}"
                );
                assert_eq!(stream_miss.len(), 1);
                assert_eq!(
                    stream_miss[0].as_ref().err().and_then(ClientError::status),
                    Some(500)
                );
            }
        }

        #[tokio::test]
        async fn provider_calls_run_in_the_callers_test_context() {
            assert_eq!(
                crate::context::PROVIDER_DATA_HEADER,
                harness::context::PROVIDER_DATA_HEADER
            );
            let provider = provider_with_everything().await;
            let seen = SeenTestIds::default();
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(seen.clone())
                .build();
            let stack = stack_with(config_for(&provider.uri()), client).await;
            let server = RunningServer::start(stack.clone(), "127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let body = json!({"model": "llamacpp/smollm2-135m", "messages": [{"role": "user", "content": "hi"}]});
            for (name, client) in [
                (
                    "http",
                    StackClient::http(&server.base_url()).unwrap_or_else(|e| panic!("{e}")),
                ),
                ("library", StackClient::library(stack.clone())),
            ] {
                let test_id = format!("tests/x.rs::{name}");
                let ctx = TestContext::new(test_id.clone());
                let stream = ctx
                    .scope(async {
                        client
                            .chat_completion(body.clone())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        // Created in the scope, consumed outside it: the request was sent inside.
                        client.chat_completion_stream(body.clone())
                    })
                    .await;
                let chunks: Vec<_> = stream.collect().await;
                assert!(chunks.iter().all(Result::is_ok), "{chunks:?}");
                client
                    .chat_completion(body.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let path = "/v1/chat/completions".to_owned();
                let seen: Vec<_> = seen
                    .0
                    .lock()
                    .map(|mut s| s.drain(..).filter(|(p, _)| *p == path).collect())
                    .unwrap_or_default();
                assert_eq!(
                    seen,
                    vec![
                        (path.clone(), Some(test_id.clone())),
                        (path.clone(), Some(test_id)),
                        (path, None)
                    ],
                    "{name}"
                );
            }
        }
    }
}
