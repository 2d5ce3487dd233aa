//! Built-in distributions: run configs that ship with the binary.
//!
//! `starter` enables each remote provider whose variables are set:
//!
//! | provider | enabled when | variables |
//! |---|---|---|
//! | `openai` | `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set | `OPENAI_BASE_URL` (default `https://api.openai.com/v1`), `OPENAI_API_KEY` |
//! | `ollama` | `OLLAMA_URL` is set | `OLLAMA_URL` (with or without `/v1`) |
//! | `vllm` | `VLLM_URL` is set | `VLLM_URL` (with or without `/v1`), `VLLM_API_TOKEN` |
//! | `llamacpp` | `LLAMACPP_URL` is set | `LLAMACPP_URL` (with or without `/v1`), `LLAMACPP_API_KEY` |
//!
//! Its models are the ones each provider lists at `GET /v1/models` when the stack starts. With
//! `SAFETY_MODEL` set (a stack model id, e.g. `llamacpp/qwen2.5-coder-0.5b`), it registers the
//! shield `llama-guard` running Llama Guard on that model.

/// The `starter` distribution.
pub const STARTER: &str = r#"# Built-in distribution `starter`: every remote provider whose variables are set.
name = "starter"

[server]
host = "127.0.0.1"
port = 8321

[[providers]]
provider_id = "openai"
provider_type = "remote::openai"
base_url = "${env.OPENAI_BASE_URL:=${env.OPENAI_API_KEY:+https://api.openai.com/v1}}"
api_key = "${env.OPENAI_API_KEY:=}"

[[providers]]
provider_id = "ollama"
provider_type = "remote::ollama"
base_url = "${env.OLLAMA_URL:=}"

[[providers]]
provider_id = "vllm"
provider_type = "remote::vllm"
base_url = "${env.VLLM_URL:=}"
api_key = "${env.VLLM_API_TOKEN:=}"

[[providers]]
provider_id = "llamacpp"
provider_type = "remote::llamacpp"
base_url = "${env.LLAMACPP_URL:=}"
api_key = "${env.LLAMACPP_API_KEY:=}"

# Llama Guard on the guard model SAFETY_MODEL (a stack model id), when it is set.
[[shields]]
shield_id = "llama-guard"
provider_id = "llama-guard"
provider_shield_id = "${env.SAFETY_MODEL:=}"
"#;

/// Names of the built-in distributions.
pub const NAMES: &[&str] = &["starter"];

/// The TOML text of a built-in distribution.
pub fn get(name: &str) -> Option<&'static str> {
    match name {
        "starter" => Some(STARTER),
        _ => None,
    }
}

/// The TOML text of an ad-hoc stack built from `api=provider_type` pairs (Llama Stack's
/// `inference=remote::ollama` form). The reference stack has one API, `inference`; each
/// provider reads its URL and key from the same variables as in `starter`.
pub fn adhoc(pairs: &[(String, String)]) -> Result<String, String> {
    if pairs.is_empty() {
        return Err("no api=provider pairs given".into());
    }
    let mut text = String::from("name = \"adhoc\"\n");
    for (api, provider_type) in pairs {
        if api != "inference" {
            return Err(format!(
                "api '{api}' is not one this stack has (it has: inference); write e.g. inference=remote::llamacpp"
            ));
        }
        let (id, url, key) = match provider_type.as_str() {
            "remote::openai" => (
                "openai",
                "${env.OPENAI_BASE_URL:=https://api.openai.com/v1}",
                "${env.OPENAI_API_KEY:=}",
            ),
            "remote::ollama" => ("ollama", "${env.OLLAMA_URL:=http://localhost:11434}", ""),
            "remote::vllm" => (
                "vllm",
                "${env.VLLM_URL:=http://localhost:8000}",
                "${env.VLLM_API_TOKEN:=}",
            ),
            "remote::llamacpp" => (
                "llamacpp",
                "${env.LLAMACPP_URL:=http://127.0.0.1:8080}",
                "${env.LLAMACPP_API_KEY:=}",
            ),
            other => {
                return Err(format!(
                    "provider '{other}' is not known (known: remote::openai, remote::ollama, remote::vllm, remote::llamacpp)"
                ));
            }
        };
        text.push_str(&format!(
            "\n[[providers]]\nprovider_id = \"{id}\"\nprovider_type = \"{provider_type}\"\nbase_url = \"{url}\"\napi_key = \"{key}\"\n"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use crate::config::RunConfig;

    #[test]
    fn adhoc_pairs_make_a_config_and_bad_ones_say_why() {
        let text = super::adhoc(&[("inference".into(), "remote::llamacpp".into())]).unwrap();
        let cfg = RunConfig::from_toml_str_with_env(&text, "adhoc", &|_| None).unwrap();
        let ids: Vec<_> = cfg
            .enabled_providers()
            .map(|p| p.provider_id.clone())
            .collect();
        assert_eq!(ids, ["llamacpp"]);
        assert!(
            super::adhoc(&[("safety".into(), "inline::llama-guard".into())])
                .unwrap_err()
                .contains("inference")
        );
        assert!(
            super::adhoc(&[("inference".into(), "remote::nope".into())])
                .unwrap_err()
                .contains("remote::llamacpp")
        );
    }

    fn starter(pairs: &'static [(&'static str, &'static str)]) -> RunConfig {
        let env = move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        RunConfig::resolve_with_env("starter", &env).unwrap()
    }

    fn enabled(c: &RunConfig) -> Vec<(String, String, Option<String>)> {
        c.enabled_providers()
            .map(|p| {
                let url = p
                    .base_url
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                (p.provider_id.clone(), url, p.api_key.clone())
            })
            .collect()
    }

    #[test]
    fn starter_enables_only_configured_providers() {
        assert!(enabled(&starter(&[])).is_empty());
        assert_eq!(
            enabled(&starter(&[("LLAMACPP_URL", "http://127.0.0.1:8080")])),
            vec![("llamacpp".into(), "http://127.0.0.1:8080/v1".into(), None)]
        );
        assert_eq!(
            enabled(&starter(&[("OPENAI_API_KEY", "sk-x")])),
            vec![(
                "openai".into(),
                "https://api.openai.com/v1".into(),
                Some("sk-x".into())
            )]
        );
        assert_eq!(
            enabled(&starter(&[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")])),
            vec![("openai".into(), "http://127.0.0.1:9/v1".into(), None)]
        );
        let all = starter(&[
            ("OLLAMA_URL", "http://localhost:11434"),
            ("VLLM_URL", "http://localhost:8000/v1"),
            ("VLLM_API_TOKEN", "tok"),
        ]);
        assert_eq!(
            enabled(&all),
            vec![
                ("ollama".into(), "http://localhost:11434/v1".into(), None),
                (
                    "vllm".into(),
                    "http://localhost:8000/v1".into(),
                    Some("tok".into())
                ),
            ]
        );
    }
}
