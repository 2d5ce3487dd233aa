//! `encoding_format: "base64"`: vectors as base64 of little-endian float32, as OpenAI sends them.
//!
//! The stack always asks its provider for floats and encodes them itself, so base64 works the same
//! with every provider (not all OpenAI-compatible servers implement it).

use base64::Engine;
use serde_json::Value;

/// Encodes one vector as OpenAI does: little-endian `f32`s, standard base64.
pub fn encode_vector(values: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes an OpenAI base64 vector; `None` when it is not base64 of whole `f32`s.
pub fn decode_vector(text: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Replaces every `data[i].embedding` float array of an embeddings response by its base64 form.
/// Embeddings that already are strings are left alone. Errors say what was malformed.
pub fn to_base64(response: &mut Value) -> Result<(), String> {
    let Some(data) = response.get_mut("data").and_then(Value::as_array_mut) else {
        return Err("the embeddings response has no `data` array".into());
    };
    for (i, item) in data.iter_mut().enumerate() {
        let Some(embedding) = item.get_mut("embedding") else {
            return Err(format!("data[{i}] has no `embedding`"));
        };
        let floats = match embedding {
            Value::String(_) => continue,
            Value::Array(values) => values
                .iter()
                .map(|v| v.as_f64().map(|x| x as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| format!("data[{i}].embedding contains a non-number"))?,
            _ => {
                return Err(format!(
                    "data[{i}].embedding is neither an array nor a string"
                ));
            }
        };
        *embedding = Value::String(encode_vector(&floats));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_round_trips_floats_exactly() {
        let v = [0.1f32, -2.5, 1e-8, 3.4028235e38];
        assert_eq!(decode_vector(&encode_vector(&v)).unwrap(), v);
        // OpenAI's encoding of [1.0, 2.0]: 0000803f 00000040
        assert_eq!(encode_vector(&[1.0, 2.0]), "AACAPwAAAEA=");
        assert!(decode_vector("AAA=").is_none());
    }

    #[test]
    fn responses_are_rewritten_in_place() {
        let mut r = json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [1.0, 2.0]}]});
        to_base64(&mut r).unwrap();
        assert_eq!(r["data"][0]["embedding"], "AACAPwAAAEA=");
        assert!(to_base64(&mut json!({"data": [{"embedding": ["x"]}]})).is_err());
        assert!(to_base64(&mut json!({})).is_err());
    }
}
