//! The models list (`GET /v1/models`) and the health and version endpoints.

use anyhow::{Context, Result, ensure};

use crate::common::{TestEnv, client};

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
