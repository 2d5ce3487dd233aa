//! The integration suite: one folder per API area, run by the harness runner so that one suite
//! runs unchanged against an in-process stack or a server, for any suite, setup and mode, under
//! `cargo test` and `cargo nextest`.
//!
//! Every test is listed in [`cases`] with the model kinds it takes; the runner expands it once per
//! model value and names the trial `area/file.rs::test[txt=...]`, which is also its test id.

mod common;
mod inference;
mod models;
mod telemetry;

use std::path::Path;
use std::process::ExitCode;

use harness::fixtures::ModelKind::{Completion, Embedding, Text};
use harness::fixtures::runner::{TestCase, run_suite};

/// Every test of the suite.
fn cases() -> Vec<TestCase> {
    use inference::{
        test_openai_chat_completion as chat, test_openai_completion as cmpl,
        test_openai_embeddings as emb,
    };
    use models::test_models;
    use telemetry::{test_genai_metrics as metrics, test_genai_spans as spans};
    vec![
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_non_streaming",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_non_streaming(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_system_prompt",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_system_prompt(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_multi_turn",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_multi_turn(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_stop_sequence",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_stop_sequence(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_max_tokens_length",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_max_tokens_length(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_seed",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_seed(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_json_response_format",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_json_response_format(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_tools",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_tools(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_streaming",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_streaming(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_streaming_usage",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_streaming_usage(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_unknown_model",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_unknown_model(e)),
        ),
        TestCase::new(
            "inference/test_openai_chat_completion.rs::test_chat_completion_malformed_body",
            &[Text],
            |e| Box::pin(chat::test_chat_completion_malformed_body(e)),
        ),
        TestCase::new(
            "inference/test_openai_completion.rs::test_completion_non_streaming",
            &[Completion],
            |e| Box::pin(cmpl::test_completion_non_streaming(e)),
        ),
        TestCase::new(
            "inference/test_openai_completion.rs::test_completion_streaming",
            &[Completion],
            |e| Box::pin(cmpl::test_completion_streaming(e)),
        ),
        TestCase::new(
            "inference/test_openai_completion.rs::test_completion_stop_sequence",
            &[Completion],
            |e| Box::pin(cmpl::test_completion_stop_sequence(e)),
        ),
        TestCase::new(
            "inference/test_openai_embeddings.rs::test_embeddings_single_string",
            &[Embedding],
            |e| Box::pin(emb::test_embeddings_single_string(e)),
        ),
        TestCase::new(
            "inference/test_openai_embeddings.rs::test_embeddings_batch",
            &[Embedding],
            |e| Box::pin(emb::test_embeddings_batch(e)),
        ),
        TestCase::new(
            "inference/test_openai_embeddings.rs::test_embeddings_base64_matches_float",
            &[Embedding],
            |e| Box::pin(emb::test_embeddings_base64_matches_float(e)),
        ),
        TestCase::new(
            "inference/test_openai_embeddings.rs::test_embeddings_invalid_encoding_format",
            &[Embedding],
            |e| Box::pin(emb::test_embeddings_invalid_encoding_format(e)),
        ),
        TestCase::new(
            "models/test_models.rs::test_models_list",
            &[Text, Embedding],
            |e| Box::pin(test_models::test_models_list(e)),
        ),
        TestCase::new("models/test_models.rs::test_health_and_version", &[], |e| {
            Box::pin(test_models::test_health_and_version(e))
        }),
        TestCase::new(
            "telemetry/test_genai_spans.rs::test_chat_completion_span",
            &[Text],
            |e| Box::pin(spans::test_chat_completion_span(e)),
        ),
        TestCase::new(
            "telemetry/test_genai_spans.rs::test_streaming_chat_one_span",
            &[Text],
            |e| Box::pin(spans::test_streaming_chat_one_span(e)),
        ),
        TestCase::new(
            "telemetry/test_genai_spans.rs::test_embeddings_span",
            &[Embedding],
            |e| Box::pin(spans::test_embeddings_span(e)),
        ),
        TestCase::new(
            "telemetry/test_genai_spans.rs::test_provider_error_span",
            &[Text],
            |e| Box::pin(spans::test_provider_error_span(e)),
        ),
        TestCase::new(
            "telemetry/test_genai_spans.rs::test_span_parent_chain",
            &[Text],
            |e| Box::pin(spans::test_span_parent_chain(e)),
        ),
        TestCase::new(
            "telemetry/test_genai_spans.rs::test_no_spans_when_disabled",
            &[Text],
            |e| Box::pin(spans::test_no_spans_when_disabled(e)),
        ),
        // Metric deltas are process-wide: this test runs alone.
        TestCase::new(
            "telemetry/test_genai_metrics.rs::test_token_usage_and_duration_metrics",
            &[Text],
            |e| Box::pin(metrics::test_token_usage_and_duration_metrics(e)),
        )
        .run_alone(),
    ]
}

fn main() -> ExitCode {
    common::default_env();
    run_suite(
        cases(),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("suites.toml"),
    )
}
