//! Shields as resources, `POST /v1/safety/run-shield`, `POST /v1/moderations`, and guardrails on
//! `POST /v1/responses`.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::{BENIGN, UNSAFE};
use stack::{ClientError, StackClient};

use crate::common::{LlamaStackModels, TestEnv, client, expect_bad_request};
use crate::responses::{assert_response, items};

/// `POST /v1/safety/run-shield` with `messages` for `shield`.
async fn run_shield(c: &StackClient, shield: &str, messages: Value) -> Result<Value, ClientError> {
    let body = json!({"shield_id": shield, "messages": messages, "params": {}});
    c.call("POST", "/v1/safety/run-shield", Some(body)).await
}

/// The setup's shield is listed and can be fetched; an unknown one is a 404 that lists the
/// registered shields.
pub async fn test_shields_list_and_get(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let shield = env.safety_shield();
    let list = c.call("GET", "/v1/shields", None).await?;
    let found = list["data"]
        .as_array()
        .context("data")?
        .iter()
        .find(|s| s["identifier"] == shield)
        .with_context(|| format!("{shield} not listed: {list}"))?
        .clone();
    ensure!(
        found["type"] == "shield" && found["provider_id"] == "llama-guard",
        "{found}"
    );
    ensure!(
        found["provider_resource_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{found}"
    );
    ensure!(
        c.call("GET", &format!("/v1/shields/{shield}"), None)
            .await?
            == found
    );
    match c.call("GET", "/v1/shields/no-such-shield", None).await {
        Err(e) if e.status() == Some(404) && e.message().contains(shield) => Ok(()),
        other => bail!("expected a 404 listing {shield}, got {other:?}"),
    }
}

/// A shield registered at run time on a stack model can be fetched and deleted; a guard model
/// the stack does not have is a 404 naming it.
pub async fn test_register_and_delete_shield(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let id = "test-registered-guard";
    let registered = c
        .call("POST", "/v1/shields", Some(json!({"shield_id": id, "provider_shield_id": env.text_model(), "params": {"excluded_categories": ["S6"]}})))
        .await?;
    ensure!(
        registered["identifier"] == id && registered["provider_resource_id"] == env.text_model(),
        "{registered}"
    );
    ensure!(c.call("GET", &format!("/v1/shields/{id}"), None).await? == registered);
    ensure!(
        c.call("DELETE", &format!("/v1/shields/{id}"), None)
            .await?
            .is_null()
    );
    let gone = c
        .call("GET", &format!("/v1/shields/{id}"), None)
        .await
        .err()
        .context("still there")?;
    ensure!(gone.status() == Some(404), "{gone}");
    let e = c
        .call(
            "POST",
            "/v1/shields",
            Some(json!({"shield_id": "x", "provider_shield_id": "llamacpp/no-such-model"})),
        )
        .await
        .err()
        .context("a shield on an unknown model was registered")?;
    ensure!(
        e.status() == Some(404) && e.message().contains("llamacpp/no-such-model"),
        "{e}"
    );
    Ok(())
}

/// A benign message: no violation.
pub async fn test_run_shield_benign(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = run_shield(
        &c,
        env.safety_shield(),
        json!([{"role": "user", "content": BENIGN}]),
    )
    .await?;
    ensure!(r == json!({"violation": null}), "{r}");
    Ok(())
}

/// The seed's unsafe request: a violation in Llama Stack's format, its categories in the
/// metadata.
pub async fn test_run_shield_unsafe(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = run_shield(
        &c,
        env.safety_shield(),
        json!([{"role": "user", "content": UNSAFE}]),
    )
    .await?;
    let v = &r["violation"];
    ensure!(v.is_object(), "the recorded guard answer is 'unsafe': {r}");
    ensure!(v["violation_level"] == "error", "{v}");
    ensure!(
        v["user_message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    let codes = v["metadata"]["violation_type"]
        .as_str()
        .context("violation_type")?;
    ensure!(
        !codes.is_empty() && codes.split(',').all(|c| c.starts_with('S')),
        "{v}"
    );
    let names = v["metadata"]["categories"]
        .as_array()
        .context("categories")?;
    ensure!(
        names.len() == codes.split(',').count(),
        "one name per category: {v}"
    );
    Ok(())
}

/// A multi-turn conversation (system, user, assistant): the last assistant turn is assessed and
/// the answer is well-formed.
pub async fn test_run_shield_multi_turn(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = run_shield(&c, env.safety_shield(), json!([
            {"role": "system", "content": "You are a baking assistant."},
            {"role": "user", "content": BENIGN},
            {"role": "assistant", "content": "Mix flour, water, salt and yeast, let it rise, then bake it."}
        ]))
        .await?;
    ensure!(
        r["violation"].is_null() || r["violation"]["violation_level"].is_string(),
        "{r}"
    );
    ensure!(
        r.as_object().is_some_and(|o| o.len() == 1),
        "only `violation`: {r}"
    );
    Ok(())
}

/// Unknown shield: 404 listing the registered ones; empty messages, a wrong role, non-string
/// content: 400 naming the field. Nothing reaches the guard model.
pub async fn test_run_shield_bad_requests(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let shield = env.safety_shield();
    let e = run_shield(
        &c,
        "no-such-shield",
        json!([{"role": "user", "content": "x"}]),
    )
    .await
    .err()
    .context("an unknown shield ran")?;
    ensure!(
        e.status() == Some(404)
            && e.message().contains("no-such-shield")
            && e.message().contains(shield),
        "{e}"
    );
    let post = |messages: Value| run_shield(&c, shield, messages);
    expect_bad_request(post(json!([])).await, "messages")?;
    expect_bad_request(
        post(json!([{"role": "robot", "content": "x"}])).await,
        "messages[0].role",
    )?;
    expect_bad_request(
        post(json!([{"role": "user", "content": {"text": "x"}}])).await,
        "messages[0].content",
    )?;
    expect_bad_request(
        c.call(
            "POST",
            "/v1/safety/run-shield",
            Some(json!({"messages": []})),
        )
        .await,
        "shield_id",
    )?;
    Ok(())
}

fn assert_moderation(result: &Value) -> Result<()> {
    let cats = result["categories"].as_object().context("categories")?;
    let scores = result["category_scores"]
        .as_object()
        .context("category_scores")?;
    ensure!(cats.len() == 13 && scores.len() == 13, "{result}");
    ensure!(cats.values().all(Value::is_boolean), "{result}");
    ensure!(result["flagged"].is_boolean(), "{result}");
    let any = cats.values().any(|v| v == true);
    ensure!(
        !any || result["flagged"] == true,
        "a set category flags: {result}"
    );
    Ok(())
}

/// `POST /v1/moderations` with one input: OpenAI's result shape.
pub async fn test_moderations_single(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .call(
            "POST",
            "/v1/moderations",
            Some(json!({"input": BENIGN, "model": env.safety_shield()})),
        )
        .await?;
    ensure!(r["id"].is_string() && r["model"].is_string(), "{r}");
    let results = r["results"].as_array().context("results")?;
    ensure!(results.len() == 1, "{r}");
    assert_moderation(&results[0])?;
    ensure!(results[0]["flagged"] == false, "{r}");
    Ok(())
}

/// A batch: one result per input, in order; the unsafe one is flagged with the mapped OpenAI
/// categories (Llama Guard's S1 is `violence`).
pub async fn test_moderations_batch(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .call(
            "POST",
            "/v1/moderations",
            Some(json!({"input": [BENIGN, UNSAFE], "model": env.safety_shield()})),
        )
        .await?;
    let results = r["results"].as_array().context("results")?;
    ensure!(results.len() == 2, "{r}");
    for result in results {
        assert_moderation(result)?;
    }
    ensure!(
        results[0]["flagged"] == false && results[1]["flagged"] == true,
        "{r}"
    );
    let codes = results[1]["metadata"]["violation_type"]
        .as_str()
        .unwrap_or_default();
    // `violence` is set exactly when Llama Guard named S1 (the recorded answer names it).
    ensure!(
        codes.split(',').any(|c| c == "S1") == (results[1]["categories"]["violence"] == true),
        "{r}"
    );
    expect_bad_request(
        c.call(
            "POST",
            "/v1/moderations",
            Some(json!({"input": [], "model": env.safety_shield()})),
        )
        .await,
        "input",
    )?;
    Ok(())
}

/// Guardrails on the Responses API: an unsafe input is refused before any model turn; a benign
/// one is answered and the answer passes the output guardrail.
pub async fn test_responses_guardrails(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let refused = c
        .create_response(
            json!({"model": env.text_model(), "input": UNSAFE, "guardrails": [env.safety_shield()],
                                "temperature": 0, "max_output_tokens": 32}),
        )
        .await?;
    assert_response(&refused, "completed", env.text_model())?;
    let out = refused["output"].as_array().context("output")?;
    ensure!(
        out.len() == 1 && out[0]["content"][0]["type"] == "refusal",
        "a refusal and nothing else: {refused}"
    );
    ensure!(
        refused["usage"]["total_tokens"] == 0,
        "no model turn: {refused}"
    );
    let answered = c
        .create_response(json!({"model": env.text_model(), "input": BENIGN, "guardrails": [{"type": env.safety_shield()}],
                                "temperature": 0, "max_output_tokens": 32}))
        .await?;
    assert_response(&answered, "completed", env.text_model())?;
    let messages = items(&answered, "message");
    ensure!(
        messages.len() == 1 && messages[0]["content"][0]["type"] == "output_text",
        "{answered}"
    );
    let e = c
        .create_response(
            json!({"model": env.text_model(), "input": "x", "guardrails": ["no-such-shield"]}),
        )
        .await
        .err()
        .context("an unknown guardrail was accepted")?;
    ensure!(
        e.status() == Some(404) && e.message().contains("no-such-shield"),
        "{e}"
    );
    Ok(())
}
