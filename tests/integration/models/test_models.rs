//! The models list (`GET /v1/models`) and the health and version endpoints.

use anyhow::{Context, Result, ensure};

use crate::common::{LlamaStackModels, TestEnv, client};

/// The list is an OpenAI list whose ids are `provider_id/provider_model_id` and includes the
/// setup's models.
pub async fn test_models_list(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c.models().await?;
    ensure!(r["object"] == "list", "object {}", r["object"]);
    let data = r["data"].as_array().context("data")?;
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    for m in data {
        ensure!(m["object"] == "model", "object {}", m["object"]);
        let id = m["id"].as_str().context("id")?;
        ensure!(
            id.split_once('/')
                .is_some_and(|(p, rest)| !p.is_empty() && !rest.is_empty()),
            "id {id} is provider/model"
        );
    }
    for want in [env.text_model(), env.embedding_model()] {
        ensure!(ids.contains(&want), "{want} not in {ids:?}");
    }
    Ok(())
}

/// Health says OK and version names a version.
pub async fn test_health_and_version(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    ensure!(c.health().await?["status"] == "OK", "health");
    ensure!(
        c.version().await?["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "version"
    );
    Ok(())
}

/// Each listed model carries Llama Stack's `custom_metadata` (`model_type`, `provider_id`,
/// `provider_resource_id`), and the embedding model its `embedding_dimension`, as
/// `llama-stack-client` reads them.
pub async fn test_models_custom_metadata(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c.models().await?;
    let data = r["data"].as_array().context("data")?;
    let find = |id: &str| data.iter().find(|m| m["id"] == id).cloned();
    let text = find(env.text_model()).context("the text model is listed")?;
    let meta = &text["custom_metadata"];
    let (provider, resource) = env
        .text_model()
        .split_once('/')
        .context("model ids are provider/model")?;
    ensure!(meta["model_type"] == "llm", "text model: {text}");
    ensure!(
        meta["provider_id"] == provider && meta["provider_resource_id"] == resource,
        "text model: {text}"
    );
    ensure!(text["owned_by"] == provider, "owned_by: {text}");
    let emb = find(env.embedding_model()).context("the embedding model is listed")?;
    ensure!(
        emb["custom_metadata"]["model_type"] == "embedding",
        "embedding model: {emb}"
    );
    ensure!(
        emb["custom_metadata"]["embedding_dimension"].as_u64()
            == Some(env.embedding_dimension() as u64),
        "embedding dimension of {emb} (setup says {})",
        env.embedding_dimension()
    );
    Ok(())
}

/// `GET /v1/models/{model_id}` answers Llama Stack's model resource, the id's `/` included; an
/// unknown id is a 404 that lists the known ones.
pub async fn test_model_retrieve(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let m = c.model(env.text_model()).await?;
    ensure!(m["identifier"] == env.text_model(), "{m}");
    ensure!(
        m["id"] == env.text_model() && m["object"] == "model",
        "the OpenAI fields too: {m}"
    );
    ensure!(m["type"] == "model" && m["model_type"] == "llm", "{m}");
    ensure!(
        m["provider_id"].is_string() && m["provider_resource_id"].is_string(),
        "{m}"
    );
    let err = c
        .model("nope/not-a-model")
        .await
        .err()
        .context("an unknown model must fail")?;
    ensure!(err.status() == Some(404), "status of {err}");
    ensure!(
        err.message().contains("nope/not-a-model") && err.message().contains(env.text_model()),
        "the error names the model and the known ones: {err}"
    );
    Ok(())
}
