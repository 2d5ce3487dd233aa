//! Safety: shields as resources (`GET/POST /v1/shields`, `GET/DELETE /v1/shields/{id}`),
//! `POST /v1/safety/run-shield` in Llama Stack's format, and `POST /v1/moderations` in OpenAI's,
//! all backed by the `inline::llama-guard` provider ([`llama_guard`]): the Llama Guard prompt
//! is sent as a chat completion through the stack's own router (recorded and traced like any
//! inference call), and its verdict read strictly.
//!
//! The guard model is any chat model of the stack; what the recordings of this repository can
//! and cannot show is said in `docs/safety.md`.

pub mod llama_guard;

use std::sync::{RwLock, RwLockReadGuard};

use opentelemetry::trace::FutureExt as _;
use serde_json::{Map, Value, json};

use crate::api::Reply;
use crate::config::{ProviderType, ShieldConfig};
use crate::error::{ApiError, INVALID_REQUEST, PROVIDER_ERROR, json_type_name};
use crate::telemetry::safety::{Outcome, ShieldSpan};
use crate::{Stack, ids};
use llama_guard::{Role, Verdict};

/// A registered shield.
#[derive(Debug, Clone, PartialEq)]
pub struct Shield {
    /// The id callers name.
    pub shield_id: String,
    /// The safety provider (`llama-guard`).
    pub provider_id: String,
    /// The guard model (a stack model id).
    pub provider_shield_id: String,
    /// Provider parameters (`excluded_categories`: category codes left out of the prompt).
    pub params: Map<String, Value>,
}

impl Shield {
    /// The shield as Llama Stack serves it.
    pub fn to_json(&self) -> Value {
        json!({
            "identifier": self.shield_id,
            "provider_resource_id": self.provider_shield_id,
            "provider_id": self.provider_id,
            "type": "shield",
            "params": self.params,
        })
    }

    fn excluded(&self) -> Vec<String> {
        self.params
            .get("excluded_categories")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl From<&ShieldConfig> for Shield {
    fn from(c: &ShieldConfig) -> Self {
        Shield {
            shield_id: c.shield_id.clone(),
            provider_id: c.provider_id.clone(),
            provider_shield_id: c.provider_shield_id.clone(),
            params: c.params.clone(),
        }
    }
}

/// The shields of a stack (registered at start from the run config, or at run time).
#[derive(Debug, Default)]
pub struct Shields {
    list: RwLock<Vec<Shield>>,
}

impl Shields {
    /// The shields of the run config.
    pub fn from_config(configs: &[ShieldConfig]) -> Self {
        Shields {
            list: RwLock::new(configs.iter().map(Shield::from).collect()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Shield>> {
        support::sync::read(&self.list)
    }

    /// Every shield, in registration order.
    pub fn all(&self) -> Vec<Shield> {
        self.read().clone()
    }

    /// A shield by id; an unknown id is a 404 listing the registered shields.
    pub fn get(&self, id: &str) -> Result<Shield, ApiError> {
        let list = self.read();
        list.iter().find(|s| s.shield_id == id).cloned().ok_or_else(|| {
            let known: Vec<&str> = list.iter().map(|s| s.shield_id.as_str()).collect();
            let registered = if known.is_empty() {
                "No shields are registered (set SAFETY_MODEL, add [[shields]] to the run config, or POST /v1/shields).".to_owned()
            } else {
                format!("Registered shields: {}.", known.join(", "))
            };
            ApiError::new(
                404,
                INVALID_REQUEST,
                format!("Shield '{id}' not found. {registered}"),
                Some("shield_id"),
                Some("shield_not_found"),
            )
        })
    }

    fn put(&self, shield: Shield) {
        let mut list = support::sync::write(&self.list);
        match list.iter_mut().find(|s| s.shield_id == shield.shield_id) {
            Some(s) => *s = shield,
            None => list.push(shield),
        }
    }

    fn remove(&self, id: &str) -> bool {
        let mut list = support::sync::write(&self.list);
        let before = list.len();
        list.retain(|s| s.shield_id != id);
        list.len() != before
    }
}

/// A violation found by a shield.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// `error`, `warn` or `info`.
    pub level: &'static str,
    /// What the user is told.
    pub user_message: String,
    /// `violation_type` (the category codes, comma separated) and `categories` (their names).
    pub metadata: Value,
    /// The Llama Guard category codes.
    pub codes: Vec<String>,
}

impl Violation {
    /// The violation as run-shield answers it.
    pub fn to_json(&self) -> Value {
        json!({"violation_level": self.level, "user_message": self.user_message, "metadata": self.metadata})
    }
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message, Some(param), Some("invalid_value"))
}

/// The conversation turns of run-shield `messages`: roles user, assistant, system, tool; string
/// (or text-part) content. System and tool messages are context, not turns Llama Guard assesses.
fn turns(messages: Option<&Value>) -> Result<Vec<(Role, String)>, ApiError> {
    let Some(Value::Array(list)) = messages else {
        return Err(bad(
            "messages",
            format!(
                "'messages' must be a non-empty array of messages; got {}.",
                messages.map_or("nothing", json_type_name)
            ),
        ));
    };
    if list.is_empty() {
        return Err(bad("messages", "'messages' must not be empty."));
    }
    let mut turns = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let role = match role {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Agent),
            "system" | "tool" => None,
            other => {
                return Err(bad(
                    &format!("messages[{i}].role"),
                    format!(
                        "'messages[{i}].role' must be one of user, assistant, system, tool; got {other:?}."
                    ),
                ));
            }
        };
        let text = m
            .get("content")
            .and_then(llama_guard::text_of)
            .ok_or_else(|| {
                bad(
                    &format!("messages[{i}].content"),
                    format!("'messages[{i}].content' must be a string (or a list of text parts)."),
                )
            })?;
        if let Some(role) = role {
            turns.push((role, text));
        }
    }
    if turns.is_empty() {
        return Err(bad(
            "messages",
            "'messages' has no user or assistant message to check.",
        ));
    }
    Ok(turns)
}

impl Stack {
    /// The shields.
    pub fn shields(&self) -> &Shields {
        &self.inner.shields
    }

    /// `GET /v1/shields`.
    pub fn list_shields(&self) -> Value {
        json!({"data": self.shields().all().iter().map(Shield::to_json).collect::<Vec<_>>()})
    }

    /// `GET /v1/shields/{id}`.
    pub fn get_shield(&self, id: &str) -> Result<Value, ApiError> {
        self.shields().get(id).map(|s| s.to_json())
    }

    /// `POST /v1/shields`: `{shield_id, provider_shield_id, provider_id?, params?}`; the guard
    /// model must be a chat model of the stack. Registering an id again replaces it.
    pub fn register_shield(&self, body: &Value) -> Result<Value, ApiError> {
        let string = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let shield_id = string("shield_id")
            .ok_or_else(|| bad("shield_id", "'shield_id' is required (a non-empty string)."))?;
        let model = string("provider_shield_id").unwrap_or(shield_id);
        let provider_id = string("provider_id").unwrap_or("llama-guard");
        if provider_id != "llama-guard" {
            return Err(bad(
                "provider_id",
                format!("Unknown safety provider '{provider_id}'; this stack has llama-guard."),
            ));
        }
        let params = match body.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(other) => {
                return Err(bad(
                    "params",
                    format!("'params' must be an object; got {}.", json_type_name(other)),
                ));
            }
        };
        let mut e = match self.registry().resolve(model) {
            Ok(_) => None,
            Err(e) => Some(ApiError::from(e)),
        };
        if let Some(e) = e.as_mut() {
            e.param = Some("provider_shield_id".into());
            return Err(e.clone());
        }
        let shield = Shield {
            shield_id: shield_id.to_owned(),
            provider_id: provider_id.to_owned(),
            provider_shield_id: model.to_owned(),
            params,
        };
        let json = shield.to_json();
        self.shields().put(shield);
        Ok(json)
    }

    /// `DELETE /v1/shields/{id}`: `null`, as Llama Stack answers.
    pub fn unregister_shield(&self, id: &str) -> Result<Value, ApiError> {
        self.shields().get(id)?;
        self.shields().remove(id);
        Ok(Value::Null)
    }

    /// `POST /v1/safety/run-shield`: `{shield_id, messages, params}` -> `{"violation": ...}`.
    pub async fn run_shield(&self, body: Value) -> Result<Reply, ApiError> {
        let shield_id = match body.get("shield_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            other => {
                return Err(bad(
                    "shield_id",
                    format!(
                        "'shield_id' is required (a non-empty string); got {}.",
                        other.map_or("nothing", json_type_name)
                    ),
                ));
            }
        };
        let turns = turns(body.get("messages"))?;
        let shield = self.shields().get(&shield_id)?;
        let messages = body
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default();
        let violation = self.check(&shield, &turns, &messages).await?;
        Ok(Reply::Json(
            json!({"violation": violation.as_ref().map(Violation::to_json)}),
        ))
    }

    /// `POST /v1/moderations`: `{input: string | [string], model?}`, where `model` is a shield id
    /// or the guard model of one (the first shield when absent).
    pub async fn moderations(&self, body: Value) -> Result<Reply, ApiError> {
        let inputs: Vec<String> = match body.get("input") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        bad(
                            &format!("input[{i}]"),
                            format!("'input[{i}]' must be a string; images are not supported."),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(bad(
                    "input",
                    format!(
                        "'input' must be a string or a non-empty array of strings; got {}.",
                        other.map_or("nothing", json_type_name)
                    ),
                ));
            }
        };
        let shield = match body.get("model").and_then(Value::as_str) {
            Some(m) => match self.shields().get(m) {
                Ok(s) => s,
                Err(e) => self
                    .shields()
                    .all()
                    .into_iter()
                    .find(|s| s.provider_shield_id == m)
                    .ok_or(e)?,
            },
            None => self.shields().all().into_iter().next().ok_or_else(|| {
                ApiError::new(404, INVALID_REQUEST, "No shields are registered to run moderations with (set SAFETY_MODEL, add [[shields]] to the run config, or POST /v1/shields).", Some("model"), Some("shield_not_found"))
            })?,
        };
        let mut results = Vec::new();
        for text in inputs {
            let messages = json!([{"role": "user", "content": text}]).to_string();
            let violation = self
                .check(&shield, &[(Role::User, text)], &messages)
                .await?;
            results.push(moderation_result(violation.as_ref()));
        }
        Ok(Reply::Json(json!({
            "id": ids::mint("modr"),
            "model": shield.provider_shield_id,
            "results": results,
        })))
    }

    /// Runs `shield` on `turns` (its last user or assistant turn is assessed), inside a shield
    /// span; `messages` is what the span shows when content is captured.
    pub async fn check(
        &self,
        shield: &Shield,
        turns: &[(Role, String)],
        messages: &str,
    ) -> Result<Option<Violation>, ApiError> {
        let target = match turns.last().map(|(r, _)| *r) {
            Some(Role::Agent) => "output",
            _ => "input",
        };
        let span = ShieldSpan::start(
            self.telemetry(),
            &shield.shield_id,
            &shield.provider_shield_id,
            target,
            messages,
        );
        let mut request = json!({
            "model": shield.provider_shield_id,
            "messages": [{"role": "user", "content": llama_guard::prompt(turns, &shield.excluded())}],
            "temperature": 0,
            "max_tokens": 64,
        });
        // llama.cpp accepts a grammar: the answer can only be a well-formed verdict.
        let llamacpp = self
            .registry()
            .resolve(&shield.provider_shield_id)
            .is_ok_and(|r| r.provider.provider_type() == ProviderType::LlamaCpp);
        if llamacpp {
            request["grammar"] = Value::from(llama_guard::VERDICT_GRAMMAR);
        }
        let cx = span.context().clone();
        let answer = match self
            .chat_completions(request)
            .with_context(cx)
            .await
            .map(Reply::parsed)
        {
            Ok(Reply::Json(answer)) => answer,
            Ok(_) => {
                span.finish(Outcome::Failed("_OTHER", "the guard model streamed"), None);
                return Err(ApiError::new(
                    502,
                    PROVIDER_ERROR,
                    format!(
                        "shield '{}': the guard model answered with a stream",
                        shield.shield_id
                    ),
                    None,
                    Some("invalid_guard_response"),
                ));
            }
            Err(mut e) => {
                span.finish(Outcome::Failed(&e.status.to_string(), &e.message), None);
                e.message = format!(
                    "shield '{}' could not run its guard model '{}': {}",
                    shield.shield_id, shield.provider_shield_id, e.message
                );
                return Err(e);
            }
        };
        let text = answer
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match llama_guard::parse(&text) {
            Ok(Verdict::Safe) => {
                span.finish(Outcome::Pass, Some(&text));
                Ok(None)
            }
            Ok(Verdict::Unsafe(codes))
                if !codes.is_empty() && codes.iter().all(|c| shield.excluded().contains(c)) =>
            {
                // Only categories the shield leaves out: not a violation of this shield.
                span.finish(Outcome::Pass, Some(&text));
                Ok(None)
            }
            Ok(Verdict::Unsafe(codes)) => {
                let names: Vec<&str> = codes
                    .iter()
                    .filter_map(|c| llama_guard::category_name(c))
                    .collect();
                let violation = Violation {
                    level: "error",
                    user_message: llama_guard::REFUSAL.to_owned(),
                    metadata: json!({"violation_type": codes.join(","), "categories": names}),
                    codes,
                };
                span.finish(
                    Outcome::Violation {
                        level: violation.level,
                        user_message: &violation.user_message,
                        metadata: &violation.metadata.to_string(),
                    },
                    Some(&text),
                );
                Ok(Some(violation))
            }
            Err(e) => {
                span.finish(
                    Outcome::Failed("invalid_guard_response", &e.to_string()),
                    Some(&text),
                );
                Err(ApiError::new(
                    502,
                    PROVIDER_ERROR,
                    format!("shield '{}': {e}", shield.shield_id),
                    None,
                    Some("invalid_guard_response"),
                ))
            }
        }
    }
}

/// One moderation result in OpenAI's format: every category with a boolean and a score (1 for
/// the categories Llama Guard named, 0 otherwise; Llama Guard gives no probabilities), the
/// categories applied to text, and Llama Stack's `user_message` and `metadata`.
fn moderation_result(violation: Option<&Violation>) -> Value {
    let codes: &[String] = violation.map_or(&[], |v| &v.codes);
    let mapped: Vec<&str> = codes
        .iter()
        .filter_map(|c| llama_guard::openai_category(c))
        .collect();
    let mut categories = Map::new();
    let mut scores = Map::new();
    let mut applied = Map::new();
    for c in llama_guard::OPENAI_CATEGORIES {
        let hit = mapped.contains(&c);
        categories.insert(c.to_owned(), Value::Bool(hit));
        scores.insert(c.to_owned(), json!(if hit { 1.0 } else { 0.0 }));
        applied.insert(c.to_owned(), if hit { json!(["text"]) } else { json!([]) });
    }
    json!({
        "flagged": violation.is_some(),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
        "user_message": violation.map(|v| v.user_message.clone()),
        "metadata": violation.map_or(json!({}), |v| v.metadata.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{chat_reply, fake_provider, json_reply, stack_for};
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, ResponseTemplate};

    /// A stack on `server` with the shield `guard` on its model `smollm2-135m`.
    async fn stack_with_guard(server: &wiremock::MockServer) -> Stack {
        let stack = stack_for(server).await;
        stack
            .register_shield(
                &json!({"shield_id": "guard", "provider_shield_id": "llamacpp/smollm2-135m"}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        stack
    }

    /// A stack whose shield `guard` runs on a fake provider answering `answer` (HTTP `status`).
    async fn guarded(status: u16, answer: Value) -> (Stack, wiremock::MockServer) {
        let server = fake_provider().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_string_contains("UNSAFE CONTENT CATEGORIES"))
            .respond_with(ResponseTemplate::new(status).set_body_json(answer))
            .mount(&server)
            .await;
        let stack = stack_with_guard(&server).await;
        (stack, server)
    }

    #[tokio::test]
    async fn an_output_guardrail_refuses_the_answer_after_one_check() {
        let server = fake_provider().await;
        let guard = |assessed: &'static str, verdict: &'static str| {
            Mock::given(method("POST"))
                .and(body_string_contains(assessed))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(chat_reply("smollm2-135m", verdict)),
                )
        };
        guard("ONLY THE LAST User", "safe")
            .expect(1)
            .mount(&server)
            .await;
        guard("ONLY THE LAST Agent", "unsafe\nS9")
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_string_contains("Tell me about fireworks"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(chat_reply("smollm2-135m", "Mix these...")),
            )
            .expect(1)
            .mount(&server)
            .await;
        let stack = stack_with_guard(&server).await;
        let r = json_reply(
            stack
                .create_response(
                    json!({"model": "llamacpp/smollm2-135m", "input": "Tell me about fireworks",
                                        "guardrails": ["guard"]}),
                )
                .await,
        );
        assert_eq!(r["status"], "completed");
        assert_eq!(
            r["output"][0]["content"][0],
            json!({"type": "refusal", "refusal": llama_guard::REFUSAL})
        );
        assert_eq!(r["output"].as_array().map(Vec::len), Some(1));
    }

    fn ask(text: &str) -> Value {
        json!({"shield_id": "guard", "messages": [{"role": "user", "content": text}]})
    }

    #[tokio::test]
    async fn an_unsafe_verdict_is_a_violation_and_a_flagged_moderation() {
        let (stack, _server) = guarded(200, chat_reply("smollm2-135m", "unsafe\nS1,S10")).await;
        let r = json_reply(stack.run_shield(ask("x")).await);
        assert_eq!(r["violation"]["violation_level"], "error");
        assert_eq!(r["violation"]["metadata"]["violation_type"], "S1,S10");
        assert_eq!(
            r["violation"]["metadata"]["categories"],
            json!(["Violent Crimes", "Hate"])
        );
        let m = json_reply(
            stack
                .moderations(json!({"input": ["x", "y"], "model": "guard"}))
                .await,
        );
        assert_eq!(m["results"].as_array().map(Vec::len), Some(2));
        assert_eq!(m["results"][0]["categories"]["violence"], true);
        assert_eq!(m["results"][0]["categories"]["hate"], true);
        assert_eq!(m["results"][0]["categories"]["sexual"], false);
        // The guard model's id works as the moderation model too.
        let by_model = json_reply(
            stack
                .moderations(json!({"input": "x", "model": "llamacpp/smollm2-135m"}))
                .await,
        );
        assert_eq!(by_model["results"][0]["flagged"], true);
    }

    #[tokio::test]
    async fn a_guard_model_that_fails_passes_its_status_on_naming_the_shield() {
        let (stack, _server) = guarded(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
        .await;
        let e = stack.run_shield(ask("x")).await.unwrap_err();
        assert_eq!(e.status, 503, "{e}");
        assert!(
            e.message.contains("shield 'guard'") && e.message.contains("overloaded"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn an_unreadable_verdict_is_an_error_quoting_it_never_safe() {
        let (stack, _server) = guarded(200, chat_reply("smollm2-135m", "Sure! Here is how.")).await;
        let e = stack.run_shield(ask("x")).await.unwrap_err();
        assert_eq!(e.status, 502);
        assert!(e.message.contains("Sure! Here is how."), "{}", e.message);
        let e = stack.moderations(json!({"input": "x"})).await.unwrap_err();
        assert_eq!(e.status, 502);
    }

    #[test]
    fn run_shield_messages_are_checked_field_by_field() {
        let param = |v: Value| turns(Some(&v)).unwrap_err().param.unwrap_or_default();
        assert_eq!(turns(None).unwrap_err().param.as_deref(), Some("messages"));
        assert_eq!(param(json!([])), "messages");
        assert_eq!(
            param(json!([{"role": "robot", "content": "x"}])),
            "messages[0].role"
        );
        assert_eq!(
            param(json!([{"role": "user", "content": "x"}, {"role": "user", "content": 7}])),
            "messages[1].content"
        );
        assert_eq!(
            param(json!([{"role": "system", "content": "x"}])),
            "messages"
        );
        let t = turns(Some(&json!([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": [{"type": "text", "text": "a"}]}]))).unwrap();
        assert_eq!(
            t,
            vec![(Role::User, "u".to_owned()), (Role::Agent, "a".to_owned())]
        );
    }

    #[test]
    fn moderation_results_map_llama_guard_categories() {
        let v = Violation {
            level: "error",
            user_message: "no".into(),
            metadata: json!({"violation_type": "S1,S6"}),
            codes: vec!["S1".into(), "S6".into()],
        };
        let r = moderation_result(Some(&v));
        assert_eq!(r["flagged"], true);
        assert_eq!(r["categories"]["violence"], true);
        assert_eq!(r["category_scores"]["violence"], 1.0);
        assert_eq!(r["categories"]["hate"], false);
        assert_eq!(r["categories"].as_object().unwrap().len(), 13);
        assert_eq!(
            r["category_applied_input_types"]["violence"],
            json!(["text"])
        );
        let safe = moderation_result(None);
        assert_eq!(safe["flagged"], false);
        assert!(
            safe["categories"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == false)
        );
    }

    #[test]
    fn unknown_shields_are_404s_listing_the_registered_ones() {
        let shields = Shields::from_config(&[ShieldConfig {
            shield_id: "llama-guard".into(),
            provider_id: "llama-guard".into(),
            provider_shield_id: "p/m".into(),
            params: Map::new(),
        }]);
        let e = shields.get("nope").unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (404, Some("shield_id")));
        assert!(
            e.message.contains("Registered shields: llama-guard."),
            "{}",
            e.message
        );
        assert!(
            Shields::default()
                .get("x")
                .unwrap_err()
                .message
                .contains("No shields are registered")
        );
    }
}
