//! Chat completions, completions and embeddings: validate, route, forward to the provider with
//! the provider's model id, and hand back its answer under the stack's model id.
//!
//! Streaming requests are sent to the provider before the handler returns (so the provider call
//! runs inside the caller's test scope); the provider's events are then passed on one for one.
//!
//! Each provider call runs inside the GenAI span of its operation ([`crate::telemetry::genai`]),
//! started once the request is valid and routed (a 400 or 404 answered by the stack itself makes
//! no GenAI span); a stream's span ends with the stream.

use std::collections::HashMap;

use futures::StreamExt;
use opentelemetry::trace::FutureExt as _;
use serde_json::Value;

use super::{ChunkStream, Reply, completion_logprobs, embeddings, validate};
use crate::Stack;
use crate::config::{ModelType, ProviderType};
use crate::error::{ApiError, INVALID_REQUEST, PROVIDER_ERROR};
use crate::model_registry::Route;
use crate::providers::{DataStream, Provider, ProviderError};
use crate::storage::chat_completions::messages_text;
use crate::telemetry::genai::{ResponseSummary, StreamStats};
use crate::telemetry::{self, Failure, GenAiCall, Operation, Telemetry};

impl Stack {
    /// `POST /v1/chat/completions` with a parsed body.
    /// The answer is stored with its messages (Llama Stack's inference store) unless the run
    /// config turns that off.
    pub async fn chat_completions(&self, body: Value) -> Result<Reply, ApiError> {
        let checked = validate::chat(&body)?;
        let messages = self.stores_chat().then(|| messages_text(&body));
        let reply = self.generate(Operation::Chat, checked, body).await?;
        Ok(self.store_chat(reply, messages))
    }

    /// `POST /v1/completions` with a parsed body. Chat-shaped `logprobs` from the provider are
    /// answered in the completions shape ([`completion_logprobs`]).
    pub async fn completions(&self, body: Value) -> Result<Reply, ApiError> {
        let checked = validate::completion(&body)?;
        let wants_logprobs = body.get("logprobs").is_some_and(|l| !l.is_null());
        let request = wants_logprobs.then(|| body.clone());
        let reply = self
            .generate(Operation::TextCompletion, checked, body)
            .await?;
        let Some(request) = request else {
            return Ok(reply);
        };
        let mut offsets = HashMap::new();
        Ok(match reply.parsed() {
            Reply::Json(mut answer) => {
                completion_logprobs::translate(&mut answer, &mut offsets, &|i| {
                    completion_logprobs::prompt_length(&request, i)
                });
                Reply::Json(answer)
            }
            Reply::Stream(chunks) => Reply::Stream(
                chunks
                    .map(move |item| {
                        item.map(|mut chunk| {
                            completion_logprobs::translate(&mut chunk, &mut offsets, &|i| {
                                completion_logprobs::prompt_length(&request, i)
                            });
                            chunk
                        })
                    })
                    .boxed(),
            ),
            other => other,
        })
    }

    /// Chat or text completion of a validated `body`: routed (embedding models refused) and
    /// forwarded to the provider.
    async fn generate(
        &self,
        operation: Operation,
        checked: validate::Checked,
        body: Value,
    ) -> Result<Reply, ApiError> {
        let (path, api) = api_of(operation);
        let route = self.registry().resolve(&checked.model)?;
        if route.model.model_type == ModelType::Embedding {
            return Err(wrong_type(&checked.model, "an embedding model", api));
        }
        let request = with_model(body, &route.model.provider_model_id);
        forward(
            self.telemetry(),
            operation,
            route,
            path,
            request,
            checked.stream,
        )
        .await
    }

    /// `POST /v1/embeddings` with a parsed body.
    pub async fn embeddings(&self, body: Value) -> Result<Value, ApiError> {
        let checked = validate::embeddings(&body)?;
        let (path, api) = api_of(Operation::Embeddings);
        let route = self.registry().resolve(&checked.model)?;
        if route.model.registered && route.model.model_type == ModelType::Llm {
            return Err(wrong_type(
                &checked.model,
                "registered as an llm model",
                api,
            ));
        }
        let dimensions = body.get("dimensions").and_then(Value::as_u64);
        if let (Some(asked), Some(native)) = (dimensions, route.model.embedding_dimension())
            && asked != native
            && route.provider.provider_type() != ProviderType::OpenAi
        {
            return Err(dimensions_unsupported(&checked.model, asked, native));
        }
        let mut request = with_model(body, &route.model.provider_model_id);
        if checked.base64 {
            set_field(&mut request, "encoding_format", Value::from("float"));
        }
        let call = GenAiCall::start(
            self.telemetry(),
            Operation::Embeddings,
            route.provider,
            route.model,
            &request,
            false,
        );
        let sent = route
            .provider
            .post_json(path, &request)
            .with_context(call.context().clone())
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Err(provider_failed(call, e, None)),
        };
        let summary = call.summarize(&response);
        // A provider that ignores `dimensions` (llama.cpp does) answers full-size vectors:
        // silently wrong for the caller, so a 400 instead.
        if let Some(asked) = dimensions
            && let Some(got) = vector_length_other_than(&response, asked)
        {
            let e = dimensions_unsupported(&checked.model, asked, got);
            call.finish(&summary, Some(&Failure::from_api_error(&e)), None);
            return Err(e);
        }
        set_model(&mut response, &checked.model);
        if checked.base64
            && let Err(m) = embeddings::to_base64(&mut response)
        {
            let e = invalid_response(route.provider, m);
            call.finish(&summary, Some(&Failure::from_provider_error(&e)), None);
            return Err(e.into());
        }
        call.finish(&summary, None, None);
        Ok(response)
    }
}

/// The provider API path of an operation, and the API's name in error messages.
fn api_of(operation: Operation) -> (&'static str, &'static str) {
    match operation {
        Operation::Chat => ("chat/completions", "chat completions"),
        Operation::TextCompletion => ("completions", "completions"),
        Operation::Embeddings => ("embeddings", "embeddings"),
    }
}

/// `dimensions` asked of a model whose vectors have another length it cannot change.
fn dimensions_unsupported(model: &str, asked: u64, native: u64) -> ApiError {
    ApiError::new(
        400,
        INVALID_REQUEST,
        format!(
            "Model '{model}' does not support 'dimensions': its embeddings have {native} \
             dimensions and its provider cannot shorten them (asked for {asked}). Omit \
             'dimensions', or use a model that supports it (e.g. OpenAI's text-embedding-3)."
        ),
        Some("dimensions"),
        Some("unsupported_parameter"),
    )
}

/// The length of the first float embedding in `answer` whose length is not `asked`.
fn vector_length_other_than(answer: &Value, asked: u64) -> Option<u64> {
    answer
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("embedding").and_then(Value::as_array))
        .map(|v| v.len() as u64)
        .find(|&len| len != asked)
}

fn wrong_type(model: &str, what: &str, api: &str) -> ApiError {
    ApiError::new(
        400,
        INVALID_REQUEST,
        format!("Model '{model}' is {what}; it does not support {api}."),
        Some("model"),
        Some("model_not_supported"),
    )
}

/// A 2xx provider answer that is not what the API promises.
fn invalid_response(provider: &Provider, message: impl Into<String>) -> ProviderError {
    ProviderError::InvalidResponse {
        provider: provider.id().to_owned(),
        message: message.into(),
    }
}

/// The request body with `model` replaced by the provider's model id; all else as it came.
fn with_model(mut body: Value, provider_model_id: &str) -> Value {
    set_field(&mut body, "model", Value::from(provider_model_id));
    body
}

/// Sets a field of a JSON object, keeping its position when it exists (no-op on non-objects,
/// which validation has already refused).
fn set_field(body: &mut Value, key: &str, value: Value) {
    if let Some(obj) = body.as_object_mut() {
        obj.insert(key.to_owned(), value);
    }
}

/// Puts the stack's model id into a provider answer that names its model.
fn set_model(answer: &mut Value, model_id: &str) {
    if let Some(m) = answer.get_mut("model").filter(|m| m.is_string()) {
        *m = Value::from(model_id);
    }
}

/// Sends the request to the provider inside the GenAI span of `operation` and hands back its
/// answer (or its stream, which carries the span until it ends) under the stack's model id.
async fn forward(
    telemetry: &Telemetry,
    operation: Operation,
    route: Route<'_>,
    path: &str,
    request: Value,
    stream: bool,
) -> Result<Reply, ApiError> {
    let provider = route.provider;
    let model_id = route.model.id.clone();
    let call = GenAiCall::start(
        telemetry,
        operation,
        provider,
        route.model,
        &request,
        stream,
    );
    if stream {
        let sent = provider
            .post_stream(path, &request)
            .with_context(call.context().clone())
            .await;
        return match sent {
            Ok(events) => Ok(Reply::Stream(chunks(
                events,
                call,
                model_id,
                provider.id().to_owned(),
            ))),
            Err(e) => Err(provider_failed(call, e, Some(StreamStats::default()))),
        };
    }
    let sent = provider
        .post_json_object(path, &request)
        .with_context(call.context().clone())
        .await;
    let mut answer = match sent {
        Ok(answer) => answer,
        Err(e) => return Err(provider_failed(call, e, None)),
    };
    let summary = call.summarize_raw(&answer);
    call.finish(&summary, None, None);
    answer.replace_str("model", &model_id);
    Ok(Reply::Raw(answer))
}

/// Ends `call` with the failure of a provider call and gives the API error for it.
fn provider_failed(call: GenAiCall, e: ProviderError, stream: Option<StreamStats>) -> ApiError {
    call.finish(
        &ResponseSummary::default(),
        Some(&Failure::from_provider_error(&e)),
        stream,
    );
    e.into()
}

/// Provider events as API chunks: each `data:` payload parsed, its model id rewritten; an
/// `{"error": ...}` event or a failure ends the stream with an error. The GenAI span of `call`
/// sees the chunks as the provider sent them and ends with the stream.
fn chunks(
    events: DataStream,
    call: GenAiCall,
    model_id: String,
    provider_id: String,
) -> ChunkStream {
    let parsed = events
        .map(move |event| {
            let data = event?;
            let chunk: Value = serde_json::from_str(&data).map_err(|e| {
                ApiError::new(
                    502,
                    PROVIDER_ERROR,
                    format!("provider '{provider_id}' sent a stream event that is not JSON ({e}): {data}"),
                    None,
                    Some("invalid_provider_response"),
                )
            })?;
            if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
                let status = error
                    .get("code")
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok())
                    .filter(|c| (400..=599).contains(c))
                    .unwrap_or(500);
                return Err(ApiError::from_error_object(status, error, PROVIDER_ERROR));
            }
            Ok(chunk)
        })
        .scan(false, |failed, item| {
            let out = if *failed {
                None
            } else {
                *failed = item.is_err();
                Some(item)
            };
            futures::future::ready(out)
        })
        .boxed();
    telemetry::stream::traced(parsed, call)
        .map(move |item| {
            item.map(|mut chunk| {
                set_model(&mut chunk, &model_id);
                chunk
            })
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_partial_json, method, path};
    use wiremock::{Mock, ResponseTemplate};

    use super::*;
    use crate::testutil::*;

    fn chat_body(model: &str) -> Value {
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "temperature": 0,
               "max_tokens": 8, "seed": 42, "stop": ["\n"], "x_extension": {"kept": true}})
    }

    #[tokio::test]
    async fn chat_is_forwarded_with_the_provider_model_id_and_answered_with_the_stack_id() {
        let server = fake_provider().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_partial_json(json!({"model": "smollm2-135m"})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(chat_reply("smollm2-135m", "Hi!")),
            )
            .expect(1)
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        let answer = json_reply(
            stack
                .chat_completions(chat_body("llamacpp/smollm2-135m"))
                .await,
        );
        let mut expected = chat_reply("smollm2-135m", "Hi!");
        expected["model"] = json!("llamacpp/smollm2-135m");
        assert_eq!(
            answer.to_string(),
            expected.to_string(),
            "fields and their order pass through"
        );

        let requests = server.received_requests().await.unwrap_or_default();
        let sent = requests
            .iter()
            .find(|r| r.url.path() == "/v1/chat/completions")
            .map(|r| r.body.clone());
        let mut want = chat_body("smollm2-135m");
        want["model"] = json!("smollm2-135m");
        assert_eq!(
            String::from_utf8(sent.unwrap_or_default()).unwrap_or_default(),
            want.to_string()
        );
    }

    #[tokio::test]
    async fn streams_pass_each_provider_event_through() {
        let server = fake_provider().await;
        let chunks = chat_chunks("smollm2-135m");
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_partial_json(
                json!({"stream": true, "stream_options": {"include_usage": true}}),
            ))
            .respond_with(sse(sse_body(&chunks)))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        let mut body = chat_body("llamacpp/smollm2-135m");
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let got: Vec<Value> = stream_reply(stack.chat_completions(body).await)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, renamed(&chunks, "llamacpp/smollm2-135m"));
        assert_eq!(
            got[2]["choices"][0]["delta"]["content"],
            ",\n\ndata: not an event"
        );
    }

    #[tokio::test]
    async fn completions_stream_too() {
        let server = fake_provider().await;
        let chunks = vec![
            json!({"choices": [{"text": "a", "index": 0, "finish_reason": null}], "model": "smollm2-135m", "object": "text_completion"}),
            json!({"choices": [{"text": "b", "index": 0, "finish_reason": "length"}], "model": "smollm2-135m", "object": "text_completion"}),
        ];
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            .respond_with(sse(sse_body(&chunks)))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        let body = json!({"model": "llamacpp/smollm2-135m", "prompt": "x", "stream": true});
        let got: Result<Vec<Value>, ApiError> = stream_reply(stack.completions(body).await)
            .await
            .into_iter()
            .collect();
        assert_eq!(got, Ok(renamed(&chunks, "llamacpp/smollm2-135m")));
    }

    #[tokio::test]
    async fn provider_errors_keep_their_status_and_message() {
        let server = fake_provider().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"error": {"code": 400, "message": "model 'extra' not found", "type": "invalid_request_error"}}),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            .respond_with(ResponseTemplate::new(503).set_body_string("loading model"))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        for stream in [false, true] {
            let mut body = chat_body("llamacpp/extra");
            body["stream"] = json!(stream);
            let e = stack.chat_completions(body).await.unwrap_err();
            assert_eq!(
                (e.status, e.message.as_str()),
                (400, "model 'extra' not found"),
                "stream={stream}"
            );
            assert_eq!(e.error_type, "invalid_request_error");
        }
        let e = stack
            .completions(json!({"model": "llamacpp/extra", "prompt": "p"}))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str(), e.error_type.as_str()),
            (503, "loading model", "provider_error")
        );
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream() {
        let server = fake_provider().await;
        let body = format!(
            "data: {}\n\ndata: {}\n\ndata: {}\n\n",
            json!({"choices": [{"delta": {"content": "a"}, "index": 0}], "model": "smollm2-135m"}),
            json!({"error": {"message": "context overflow", "type": "server_error", "code": 500}}),
            json!({"choices": [], "model": "never sent"})
        );
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(sse(body))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        let mut req = chat_body("llamacpp/smollm2-135m");
        req["stream"] = json!(true);
        let items = stream_reply(stack.chat_completions(req).await).await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        let e = items[1].clone().unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str(), e.error_type.as_str()),
            (500, "context overflow", "server_error")
        );
    }

    #[tokio::test]
    async fn dimensions_a_model_cannot_give_are_a_400_not_full_size_vectors() {
        let server = fake_provider().await;
        let reply = json!({"model": "smollm2-135m", "object": "list",
                           "data": [{"embedding": [1.0, 2.0, 3.0], "index": 0, "object": "embedding"}]});
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .respond_with(ResponseTemplate::new(200).set_body_json(reply))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        // Known dimension (registered 384): refused before any provider call.
        let known = stack
            .embeddings(
                json!({"model": "llamacpp/all-minilm-l6-v2", "input": "a", "dimensions": 128}),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (known.status, known.param.as_deref()),
            (400, Some("dimensions"))
        );
        assert!(
            known.message.contains("384") && known.message.contains("128"),
            "{}",
            known.message
        );
        let sent = server.received_requests().await.unwrap_or_default();
        assert!(!sent.iter().any(|r| r.url.path() == "/v1/embeddings"));
        // Unknown dimension: the provider ignored it, the answer says so.
        let ignored = stack
            .embeddings(json!({"model": "llamacpp/smollm2-135m", "input": "a", "dimensions": 2}))
            .await
            .unwrap_err();
        assert_eq!(ignored.status, 400);
        assert!(
            ignored.message.contains("have 3 dimensions"),
            "{}",
            ignored.message
        );
        // What the model gives anyway is fine.
        let same = stack
            .embeddings(json!({"model": "llamacpp/smollm2-135m", "input": "a", "dimensions": 3}))
            .await
            .unwrap();
        assert_eq!(
            same["data"][0]["embedding"].as_array().map(Vec::len),
            Some(3)
        );
    }

    #[tokio::test]
    async fn embeddings_in_base64_are_encoded_by_the_stack() {
        let server = fake_provider().await;
        let reply = json!({"model": "all-minilm-l6-v2", "object": "list",
                           "data": [{"embedding": [1.0, 2.0], "index": 0, "object": "embedding"},
                                    {"embedding": [0.5, -0.25], "index": 1, "object": "embedding"}],
                           "usage": {"prompt_tokens": 4, "total_tokens": 4}});
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .and(body_partial_json(
                json!({"model": "all-minilm-l6-v2", "encoding_format": "float"}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(reply.clone()))
            .mount(&server)
            .await;
        let stack = stack_for(&server).await;
        let body = json!({"model": "llamacpp/all-minilm-l6-v2", "input": ["a", "b"], "encoding_format": "base64"});
        let got = stack
            .embeddings(body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got["model"], "llamacpp/all-minilm-l6-v2");
        assert_eq!(got["data"][0]["embedding"], "AACAPwAAAEA=");
        let second = got["data"][1]["embedding"]
            .as_str()
            .and_then(crate::api::embeddings::decode_vector);
        assert_eq!(second, Some(vec![0.5, -0.25]));
        let floats = stack
            .embeddings(json!({"model": "llamacpp/all-minilm-l6-v2", "input": "a", "encoding_format": "float"}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(floats["data"][0]["embedding"], json!([1.0, 2.0]));
    }

    #[tokio::test]
    async fn routing_errors() {
        let server = fake_provider().await;
        let stack = stack_for(&server).await;
        let e = stack
            .chat_completions(chat_body("smollm2-135m"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code().cloned()),
            (404, Some(json!("model_not_found")))
        );
        assert!(
            e.message
                .contains("llamacpp/smollm2-135m, llamacpp/all-minilm-l6-v2, llamacpp/extra"),
            "{}",
            e.message
        );
        let e = stack
            .chat_completions(chat_body("llamacpp/all-minilm-l6-v2"))
            .await
            .unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("model")));
        let e = stack
            .embeddings(json!({"model": "llamacpp/extra", "input": "x"}))
            .await
            .unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[tokio::test]
    async fn unreachable_providers_are_502() {
        let port = closed_port().await;
        let stack = stack_with(
            config_for(&format!("http://127.0.0.1:{port}")),
            plain_client(),
        )
        .await;
        assert_eq!(
            stack.registry().models().len(),
            2,
            "discovery failed: registered models only"
        );
        let e = stack
            .chat_completions(chat_body("llamacpp/extra"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code().cloned()),
            (502, Some(json!("provider_unreachable")))
        );
        assert!(e.message.contains("llamacpp"), "{}", e.message);
    }
}
