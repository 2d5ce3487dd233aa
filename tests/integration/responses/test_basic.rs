//! Text responses, plain and streamed, structured output, storage (retrieve, list, delete, input
//! items) and the requests the stack refuses.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::{assert_response, events, items, output_text, types};
use crate::common::{LlamaStackModels, TestEnv, client, expect_bad_request};

/// A plain text response: one completed message whose text is the response's text.
pub async fn test_response_text_non_streaming(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(json!({
            "model": env.text_model(), "input": "Which planet do humans live on? Answer in one word.",
            "temperature": 0, "max_output_tokens": 16
        }))
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    let messages = items(&r, "message");
    ensure!(messages.len() == 1, "one message expected: {r}");
    let m = messages[0];
    ensure!(
        m["role"] == "assistant" && m["status"] == "completed",
        "{m}"
    );
    ensure!(m["content"][0]["type"] == "output_text", "{m}");
    ensure!(!output_text(&r).trim().is_empty(), "empty text: {r}");
    ensure!(r["error"].is_null(), "error {}", r["error"]);
    ensure!(
        r["store"] == true && r["tool_choice"] == "auto" && r["text"]["format"]["type"] == "text"
    );
    Ok(())
}

/// A streamed text response sends OpenAI's event sequence, numbered, and the deltas add up to
/// the text of the completed response.
pub async fn test_response_text_streaming(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let evs = events(c.create_response_stream(json!({
        "model": env.text_model(), "input": "Name two colors.", "temperature": 0, "max_output_tokens": 24
    })))
    .await?;
    let t = types(&evs);
    ensure!(
        t[..2] == ["response.created", "response.in_progress"],
        "{t:?}"
    );
    let expected_order = [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ];
    let mut at = 0;
    for kind in expected_order {
        let found = t[at..]
            .iter()
            .position(|x| *x == kind)
            .with_context(|| format!("no {kind} after event {at}: {t:?}"))?;
        at += found;
    }
    let deltas: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.output_text.done")
        .context("no text done")?;
    ensure!(
        done["text"] == deltas.as_str(),
        "deltas {deltas:?} vs done {}",
        done["text"]
    );
    let completed = &evs.last().context("no last")?["response"];
    assert_response(completed, "completed", env.text_model())?;
    ensure!(
        output_text(completed) == deltas,
        "completed text differs from the deltas"
    );
    let created = &evs[0]["response"];
    ensure!(
        created["status"] == "in_progress" && created["id"] == completed["id"],
        "{created}"
    );
    // The streamed response is stored like any other.
    let stored = c
        .get_response(completed["id"].as_str().unwrap_or_default())
        .await?;
    ensure!(
        stored == *completed,
        "stored {stored} vs streamed {completed}"
    );
    Ok(())
}

/// `text.format` json_schema: the answer is JSON (the provider constrains it with the schema).
pub async fn test_response_structured_output(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                        "required": ["city", "country"], "additionalProperties": false});
    let r = c
        .create_response(json!({
            "model": env.text_model(), "input": "Name the capital of France as JSON.",
            "text": {"format": {"type": "json_schema", "name": "capital", "schema": schema, "strict": true}},
            "temperature": 0, "max_output_tokens": 48
        }))
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    let parsed: Value =
        serde_json::from_str(&output_text(&r)).with_context(|| format!("not JSON: {r}"))?;
    ensure!(
        parsed["city"].is_string() && parsed["country"].is_string(),
        "{parsed}"
    );
    ensure!(
        r["text"]["format"]["type"] == "json_schema",
        "{}",
        r["text"]
    );
    Ok(())
}

/// A stored response can be retrieved, listed, its input items listed (newest first by
/// default), and deleted; then it is gone.
pub async fn test_response_retrieve_list_delete(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(json!({
            "model": env.text_model(),
            "input": [
                {"role": "system", "content": "Answer in one word."},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What color is the sky?"}]}
            ],
            "metadata": {"purpose": "retrieve-list-delete"},
            "temperature": 0, "max_output_tokens": 8
        }))
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    let id = r["id"].as_str().context("id")?;
    ensure!(
        r["metadata"]["purpose"] == "retrieve-list-delete",
        "{}",
        r["metadata"]
    );
    ensure!(c.get_response(id).await? == r, "retrieved != created");
    let items_desc = c.list_input_items(id, "").await?;
    ensure!(
        items_desc["object"] == "list" && items_desc["has_more"] == false,
        "{items_desc}"
    );
    let data = items_desc["data"].as_array().context("data")?;
    ensure!(data.len() == 2, "two input items: {items_desc}");
    ensure!(
        data[0]["role"] == "user" && data[1]["role"] == "system",
        "newest first: {items_desc}"
    );
    ensure!(
        data.iter()
            .all(|i| i["id"].as_str().is_some_and(|s| s.starts_with("msg_"))),
        "{items_desc}"
    );
    let asc = c.list_input_items(id, "order=asc&limit=1").await?;
    ensure!(
        asc["data"][0]["role"] == "system" && asc["has_more"] == true,
        "{asc}"
    );
    let after = c
        .list_input_items(
            id,
            &format!(
                "order=asc&after={}",
                asc["last_id"].as_str().unwrap_or_default()
            ),
        )
        .await?;
    ensure!(
        after["data"][0]["role"] == "user" && after["data"].as_array().map(Vec::len) == Some(1),
        "{after}"
    );
    let listed = c
        .list_responses(&format!("limit=100&model={}", env.text_model()))
        .await?;
    ensure!(listed["object"] == "list", "{listed}");
    let listed_ids: Vec<&str> = listed["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    ensure!(
        listed_ids.contains(&id) || listed["has_more"] == true,
        "{id} not listed: {listed_ids:?}"
    );
    let deleted = c.delete_response(id).await?;
    ensure!(
        deleted == json!({"id": id, "object": "response", "deleted": true}),
        "{deleted}"
    );
    for again in [c.get_response(id).await, c.delete_response(id).await] {
        match again {
            Err(e) if e.status() == Some(404) && e.message().contains(id) => {}
            other => bail!("expected a 404 naming {id}, got {other:?}"),
        }
    }
    Ok(())
}

/// `store: false`: the response is answered but cannot be retrieved or continued.
pub async fn test_response_store_false(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .create_response(
            json!({"model": env.text_model(), "input": "Say yes.", "store": false,
                                "temperature": 0, "max_output_tokens": 4}),
        )
        .await?;
    assert_response(&r, "completed", env.text_model())?;
    ensure!(r["store"] == false);
    let id = r["id"].as_str().context("id")?;
    let e = c
        .get_response(id)
        .await
        .err()
        .context("an unstored response was found")?;
    ensure!(e.status() == Some(404), "{e}");
    let e = c
        .create_response(
            json!({"model": env.text_model(), "input": "And?", "previous_response_id": id}),
        )
        .await
        .err()
        .context("continued an unstored response")?;
    ensure!(
        e.status() == Some(404) && e.param() == Some("previous_response_id"),
        "{e}"
    );
    Ok(())
}

/// Unknown model and unknown previous response: 404 naming them; malformed tools and input:
/// 400 naming the field. Nothing reaches a provider.
pub async fn test_response_bad_requests(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let e = c
        .create_response(json!({"model": "llamacpp/no-such-model", "input": "x"}))
        .await
        .err()
        .context("an unknown model was accepted")?;
    ensure!(
        e.status() == Some(404)
            && e.message().contains("llamacpp/no-such-model")
            && e.param() == Some("model"),
        "{e}"
    );
    let e = c
        .create_response(json!({"model": env.text_model(), "input": "x", "previous_response_id": "resp_missing"}))
        .await
        .err()
        .context("an unknown previous response was accepted")?;
    ensure!(
        e.status() == Some(404) && e.message().contains("resp_missing"),
        "{e}"
    );
    expect_bad_request(
        c.create_response(json!({"model": env.text_model(), "input": "x",
                                 "tools": [{"type": "mcp", "server_label": "github", "server_url": "not a url"}]}))
            .await,
        "tools[0].server_url",
    )?;
    expect_bad_request(
        c.create_response(json!({"model": env.text_model(), "input": [{"type": "message", "role": "robot", "content": "x"}]}))
            .await,
        "input[0].role",
    )?;
    expect_bad_request(c.post_raw("/v1/responses", "{").await, "JSON")?;
    expect_bad_request(c.list_responses("limit=0").await, "limit")?;
    Ok(())
}
