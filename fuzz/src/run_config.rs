//! `run_config`: the run-config parsers, TOML
//! ([`stack::config::RunConfig::from_toml_str_with_env`]) and Llama Stack `run.yaml`
//! ([`stack::config::RunConfig::from_yaml_str_with_env`]), with a fixed fake environment.
//!
//! Input: the text of a config (bytes that are not UTF-8 are replaced, as a lossy read would).
//!
//! Checked: each parser returns `Ok` or a `ConfigError` (whose message formats) and never
//! panics; parsing twice gives the same result; what parses has providers and models whose
//! accessors answer.

use stack::config::{ConfigError, RunConfig};

/// The environment every parse sees: some variables set, one empty, the rest unset.
pub fn fake_env(name: &str) -> Option<String> {
    let value = match name {
        "HOME" => "/home/fuzz",
        "OPENAI_API_KEY" => "sk-fuzz-0000",
        "LLAMACPP_URL" => "http://127.0.0.1:8080",
        "OLLAMA_URL" => "http://127.0.0.1:11434/v1",
        "SAFETY_MODEL" => "llamacpp/guard",
        "SQLITE_STORE_DIR" => "/tmp/fuzz-store",
        "EMPTY" => "",
        _ => return None,
    };
    Some(value.to_owned())
}

type Parse = fn(&str, &str, &dyn Fn(&str) -> Option<String>) -> Result<RunConfig, ConfigError>;

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsers: [(&str, Parse); 2] = [
        ("fuzz.toml", RunConfig::from_toml_str_with_env),
        ("fuzz.yaml", RunConfig::from_yaml_str_with_env),
    ];
    for (source, parse) in parsers {
        let first = parse(&text, source, &fake_env);
        let second = parse(&text, source, &fake_env);
        assert_eq!(
            format!("{first:?}"),
            format!("{second:?}"),
            "{source}: two parses of the same text differ"
        );
        match first {
            Ok(config) => {
                for provider in config.enabled_providers() {
                    let _ = provider.provider_type.as_str();
                    let _ = provider.provider_type.llama_stack_name();
                }
                for model in &config.models {
                    let _ = model.model_id();
                    let _ = model.embedding_dimension();
                    let _ = model.model_type.as_str();
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}
