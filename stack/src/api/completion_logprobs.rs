//! `logprobs` of `/v1/completions` in the completions API's own shape. Some providers
//! (llama.cpp's server) answer a completion's `logprobs` in the chat shape
//! (`{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob"}]}]}`);
//! the completions API promises `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}`
//! (`top_logprobs` one `{token: logprob}` object a position, `text_offset` each token's character
//! offset in the prompt followed by the completion). Answers already in that shape pass as they
//! are.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// Rewrites every choice's chat-shaped `logprobs` of a completion answer (or of one stream
/// chunk) into the completions shape. `offsets` holds, per choice index, the character offset
/// the choice's next token starts at; a choice seen for the first time starts after its prompt
/// (`prompt_len(index)`), and each token moves it on.
pub fn translate(
    answer: &mut Value,
    offsets: &mut HashMap<u64, usize>,
    prompt_len: &dyn Fn(u64) -> usize,
) {
    let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) else {
        return;
    };
    for choice in choices {
        let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(logprobs) = choice.get_mut("logprobs") else {
            continue;
        };
        let Some(content) = logprobs.get("content").and_then(Value::as_array) else {
            continue;
        };
        let offset = offsets.entry(index).or_insert_with(|| prompt_len(index));
        *logprobs = completions_shape(content, offset);
    }
}

/// One choice's chat-shaped `content` entries as the completions shape, advancing `offset`.
fn completions_shape(content: &[Value], offset: &mut usize) -> Value {
    let mut tokens = Vec::with_capacity(content.len());
    let mut token_logprobs = Vec::with_capacity(content.len());
    let mut top_logprobs = Vec::with_capacity(content.len());
    let mut text_offset = Vec::with_capacity(content.len());
    for entry in content {
        let token = entry
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default();
        tokens.push(Value::from(token));
        token_logprobs.push(entry.get("logprob").cloned().unwrap_or(Value::Null));
        let top: Map<String, Value> = entry
            .get("top_logprobs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let token = t.get("token").and_then(Value::as_str)?;
                Some((
                    token.to_owned(),
                    t.get("logprob").cloned().unwrap_or(Value::Null),
                ))
            })
            .collect();
        top_logprobs.push(Value::Object(top));
        text_offset.push(Value::from(*offset));
        *offset += token.chars().count();
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

/// The character length of the prompt that choice `index` completes, for a request with
/// `prompt` and `n`: a string prompt's length, or the `index / n`-th string of a list; 0 for
/// token-id prompts (their text is not known here).
pub fn prompt_length(request: &Value, index: u64) -> usize {
    let n = request.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    match request.get("prompt") {
        Some(Value::String(p)) => p.chars().count(),
        Some(Value::Array(items)) => usize::try_from(index / n)
            .ok()
            .and_then(|i| items.get(i))
            .and_then(Value::as_str)
            .map_or(0, |p| p.chars().count()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_shaped(tokens: &[(&str, f64)]) -> Value {
        json!({"content": tokens.iter().map(|(t, l)| json!({"id": 1, "token": t, "logprob": l, "bytes": [],
            "top_logprobs": [{"id": 1, "token": t, "logprob": l, "bytes": []}, {"id": 2, "token": "x", "logprob": -9.0, "bytes": []}]})).collect::<Vec<_>>()})
    }

    #[test]
    fn chat_shaped_logprobs_become_the_completions_shape() {
        let request = json!({"prompt": "The sky is", "logprobs": 2});
        let mut answer = json!({"choices": [{"index": 0, "text": " blue.", "logprobs": chat_shaped(&[(" blue", -0.5), (".", -0.25)])}]});
        let mut offsets = HashMap::new();
        translate(&mut answer, &mut offsets, &|i| prompt_length(&request, i));
        assert_eq!(
            answer["choices"][0]["logprobs"],
            json!({"tokens": [" blue", "."], "token_logprobs": [-0.5, -0.25],
                   "top_logprobs": [{" blue": -0.5, "x": -9.0}, {".": -0.25, "x": -9.0}],
                   "text_offset": [10, 15]})
        );
    }

    #[test]
    fn stream_chunks_continue_the_offsets_and_other_shapes_pass() {
        let request = json!({"prompt": ["ab", "cde"], "n": 1});
        let mut offsets = HashMap::new();
        let len = |i| prompt_length(&request, i);
        let mut first = json!({"choices": [{"index": 1, "logprobs": chat_shaped(&[("x", -1.0)])}]});
        let mut second =
            json!({"choices": [{"index": 1, "logprobs": chat_shaped(&[("yz", -1.0)])}]});
        translate(&mut first, &mut offsets, &len);
        translate(&mut second, &mut offsets, &len);
        assert_eq!(first["choices"][0]["logprobs"]["text_offset"], json!([3]));
        assert_eq!(second["choices"][0]["logprobs"]["text_offset"], json!([4]));
        let native = json!({"choices": [{"index": 0, "logprobs": {"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": null, "text_offset": [0]}}]});
        let mut same = native.clone();
        translate(&mut same, &mut HashMap::new(), &len);
        assert_eq!(same, native);
        assert_eq!(prompt_length(&json!({"prompt": [1, 2, 3]}), 0), 0);
    }
}
