//! The providers of the stack under test, as Llama Stack's client fixtures list them first.
//! Modelled on Llama Stack's `tests/integration/providers/test_providers.py`.

use anyhow::{Context, Result, ensure};

use crate::common::{LlamaStackModels, TestEnv, client};

/// Every provider has `api`, `provider_id`, `provider_type`, `config` and `health`; the text
/// model's provider is an inference provider whose discovery went well, and no API key appears.
pub async fn test_providers_list(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c.providers().await?;
    let data = r["data"].as_array().context("data")?;
    for p in data {
        for field in ["api", "provider_id", "provider_type"] {
            ensure!(p[field].is_string(), "{field} of {p}");
        }
        ensure!(
            p["config"].is_object() && p["health"]["status"].is_string(),
            "{p}"
        );
        if let Some(key) = p["config"]["api_key"].as_str() {
            ensure!(key == "********", "the API key is redacted: {p}");
        }
    }
    let provider = env.text_model().split('/').next().unwrap_or_default();
    let inference = data
        .iter()
        .find(|p| p["provider_id"] == provider)
        .with_context(|| format!("provider {provider} is listed: {r}"))?;
    ensure!(inference["api"] == "inference", "{inference}");
    ensure!(inference["health"]["status"] == "OK", "{inference}");
    ensure!(
        data.iter().any(|p| p["api"] == "safety"),
        "a safety provider is listed: {r}"
    );
    Ok(())
}

/// `GET /v1/providers/{id}` answers the listed entry; an unknown id is a 404 naming the known
/// ones.
pub async fn test_provider_inspect(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let provider = env.text_model().split('/').next().unwrap_or_default();
    let one = c.provider(provider).await?;
    let listed = c.providers().await?;
    let same = listed["data"]
        .as_array()
        .and_then(|d| d.iter().find(|p| p["provider_id"] == provider))
        .context("listed")?;
    ensure!(
        &one == same,
        "inspect {one} differs from the listing {same}"
    );
    let err = c
        .provider("no-such-provider")
        .await
        .err()
        .context("an unknown provider must fail")?;
    ensure!(
        err.status() == Some(404) && err.message().contains(provider),
        "a 404 listing the providers: {err}"
    );
    Ok(())
}
