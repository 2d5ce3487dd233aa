//! Embeddings through the stack (`POST /v1/embeddings`).

use anyhow::{Context, Result, ensure};
use base64::Engine;
use serde_json::{Value, json};

use crate::common::{LlamaStackModels, TestEnv, client, expect_bad_request};

fn vector(item: &Value) -> Result<Vec<f64>> {
    item["embedding"]
        .as_array()
        .context("embedding is not a list of floats")?
        .iter()
        .map(|x| x.as_f64().context("not a number"))
        .collect()
}

/// One string gives one vector of the model's dimension.
pub async fn test_embeddings_single_string(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let r = c
        .embeddings(json!({"model": env.embedding_model(), "input": "The quick brown fox"}))
        .await?;
    ensure!(r["object"] == "list", "object {}", r["object"]);
    let data = r["data"].as_array().context("data")?;
    ensure!(data.len() == 1, "one vector, got {}", data.len());
    ensure!(
        data[0]["object"] == "embedding" && data[0]["index"] == 0,
        "{}",
        data[0]
    );
    let v = vector(&data[0])?;
    ensure!(
        v.len() == env.embedding_dimension(),
        "dimension {} != {}",
        v.len(),
        env.embedding_dimension()
    );
    ensure!(v.iter().any(|x| *x != 0.0), "a non-zero vector");
    Ok(())
}

/// A batch gives one vector per input, in order, and different texts differ.
pub async fn test_embeddings_batch(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let inputs = ["cats purr", "dogs bark", "the stock market fell"];
    let r = c
        .embeddings(json!({"model": env.embedding_model(), "input": inputs}))
        .await?;
    let data = r["data"].as_array().context("data")?;
    ensure!(
        data.len() == inputs.len(),
        "{} vectors for {} inputs",
        data.len(),
        inputs.len()
    );
    for (i, d) in data.iter().enumerate() {
        ensure!(d["index"] == i, "index {} at {i}", d["index"]);
        ensure!(
            vector(d)?.len() == env.embedding_dimension(),
            "dimension of {i}"
        );
    }
    ensure!(
        vector(&data[0])? != vector(&data[2])?,
        "different texts give different vectors"
    );
    Ok(())
}

/// `encoding_format: base64` decodes to the same little-endian f32 values as the float form.
pub async fn test_embeddings_base64_matches_float(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let float = c.embeddings(json!({"model": env.embedding_model(), "input": "hello world", "encoding_format": "float"})).await?;
    let b64 = c.embeddings(json!({"model": env.embedding_model(), "input": "hello world", "encoding_format": "base64"})).await?;
    let text = b64["data"][0]["embedding"]
        .as_str()
        .context("base64 embedding is a string")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    ensure!(
        bytes.len() == 4 * env.embedding_dimension(),
        "{} bytes",
        bytes.len()
    );
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let floats = vector(&float["data"][0])?;
    for (a, b) in decoded.iter().zip(&floats) {
        ensure!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
    }
    Ok(())
}

/// An invalid encoding format is a 400 that names the field.
pub async fn test_embeddings_invalid_encoding_format(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    expect_bad_request(
        c.embeddings(
            json!({"model": env.embedding_model(), "input": "x", "encoding_format": "hex"}),
        )
        .await,
        "encoding_format",
    )
}

/// `dimensions` other than the model's own size, for a provider that cannot shorten vectors, is
/// a 400 naming `dimensions` and both sizes (not full-size vectors that silently ignore it).
pub async fn test_embeddings_dimensions_unsupported(env: TestEnv) -> Result<()> {
    let c = client(&env).await?;
    let native = env.embedding_dimension();
    let asked = native / 2;
    let err = c
        .embeddings(json!({"model": env.embedding_model(), "input": "x", "dimensions": asked}))
        .await
        .err()
        .context("dimensions the model cannot give must fail")?;
    ensure!(err.status() == Some(400), "status of {err}");
    let msg = err.message();
    ensure!(
        msg.contains("dimensions")
            && msg.contains(&native.to_string())
            && msg.contains(&asked.to_string()),
        "the error names the field and both sizes: {msg}"
    );
    Ok(())
}
