//! The integration suite: one folder per API area, run by the harness runner so that one suite
//! runs unchanged against an in-process stack or a server, for any suite, setup and mode, under
//! `cargo test` and `cargo nextest`.
//!
//! Every test is listed in [`cases`] with the model kinds it takes; the runner expands it once per
//! model value and names the trial `area/file.rs::test[txt=...]`, which is also its test id.

mod common;
mod inference;
mod models;
mod providers;
mod responses;
mod safety;
mod telemetry;

use std::path::Path;
use std::process::ExitCode;

use harness::testkit::ModelKind::{Completion, Embedding, SafetyShield, Text};
use harness::testkit::runner::{TestCase, run_suite};

/// A test case whose id (`area/file.rs::test`) is derived from the function's own path, so the
/// id that keys its recordings cannot drift from the code.
macro_rules! case {
    ($area:ident :: $file:ident :: $test:ident, [$($kind:expr),*]) => {
        TestCase::new(
            concat!(stringify!($area), "/", stringify!($file), ".rs::", stringify!($test)),
            &[$($kind),*],
            |e| Box::pin($area::$file::$test(e)),
        )
    };
}

/// Every test of the suite. Metric deltas are process-wide: that test runs alone.
fn cases() -> Vec<TestCase> {
    vec![
        case!(
            inference::test_openai_chat_completion::test_chat_completion_non_streaming,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_system_prompt,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_multi_turn,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_stop_sequence,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_max_tokens_length,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_seed,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_json_response_format,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_tools,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_streaming,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_streaming_usage,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_unknown_model,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_inference_store,
            [Text]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_malformed_body,
            [Text]
        ),
        case!(
            inference::test_openai_completion::test_completion_non_streaming,
            [Completion]
        ),
        case!(
            inference::test_openai_completion::test_completion_streaming,
            [Completion]
        ),
        case!(
            inference::test_openai_completion::test_completion_stop_sequence,
            [Completion]
        ),
        case!(
            inference::test_openai_completion::test_completion_logprobs,
            [Completion]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_single_string,
            [Embedding]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_batch,
            [Embedding]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_base64_matches_float,
            [Embedding]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_invalid_encoding_format,
            [Embedding]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_dimensions_unsupported,
            [Embedding]
        ),
        case!(models::test_models::test_models_list, [Text, Embedding]),
        case!(models::test_models::test_health_and_version, []),
        case!(
            models::test_models::test_models_custom_metadata,
            [Text, Embedding]
        ),
        case!(models::test_models::test_model_retrieve, [Text]),
        case!(providers::test_providers::test_providers_list, [Text]),
        case!(providers::test_providers::test_provider_inspect, [Text]),
        case!(
            telemetry::test_genai_spans::test_chat_completion_span,
            [Text]
        ),
        case!(
            telemetry::test_genai_spans::test_streaming_chat_one_span,
            [Text]
        ),
        case!(
            telemetry::test_genai_spans::test_embeddings_span,
            [Embedding]
        ),
        case!(
            telemetry::test_genai_spans::test_provider_error_span,
            [Text]
        ),
        case!(telemetry::test_genai_spans::test_span_parent_chain, [Text]),
        case!(
            telemetry::test_genai_spans::test_no_spans_when_disabled,
            [Text]
        ),
        case!(
            telemetry::test_genai_metrics::test_token_usage_and_duration_metrics,
            [Text]
        )
        .run_alone(),
        case!(
            responses::test_basic::test_response_text_non_streaming,
            [Text]
        ),
        case!(responses::test_basic::test_response_text_streaming, [Text]),
        case!(
            responses::test_basic::test_response_structured_output,
            [Text]
        ),
        case!(
            responses::test_basic::test_response_retrieve_list_delete,
            [Text]
        ),
        case!(responses::test_basic::test_response_store_false, [Text]),
        case!(responses::test_basic::test_response_bad_requests, [Text]),
        case!(
            responses::test_function_tools::test_function_call_round_trip,
            [Text]
        ),
        case!(responses::test_mcp::test_mcp_list_tools, [Text]),
        case!(responses::test_mcp::test_mcp_tool_call, [Text]),
        case!(responses::test_mcp::test_mcp_tool_call_streaming, [Text]),
        case!(responses::test_mcp::test_mcp_tool_error, [Text]),
        case!(responses::test_mcp::test_mcp_allowed_tools, [Text]),
        case!(responses::test_mcp::test_mcp_max_tool_calls, [Text]),
        case!(
            responses::test_mcp::test_mcp_chain_does_not_list_again,
            [Text]
        ),
        case!(responses::test_mcp::test_mcp_approval, [Text]),
        case!(responses::test_mcp::test_mcp_unreachable_server, [Text]),
        case!(
            responses::test_mcp::test_mcp_authorization_reaches_server_not_disk,
            [Text]
        ),
        case!(
            responses::test_responses_telemetry::test_response_mcp_spans,
            [Text]
        ),
        case!(
            responses::test_responses_telemetry::test_response_tool_error_span,
            [Text]
        ),
        case!(
            safety::test_safety::test_shields_list_and_get,
            [SafetyShield]
        ),
        case!(safety::test_safety::test_register_and_delete_shield, [Text]),
        case!(safety::test_safety::test_run_shield_benign, [SafetyShield]),
        case!(safety::test_safety::test_run_shield_unsafe, [SafetyShield]),
        case!(
            safety::test_safety::test_run_shield_multi_turn,
            [SafetyShield]
        ),
        case!(
            safety::test_safety::test_run_shield_bad_requests,
            [SafetyShield]
        ),
        case!(safety::test_safety::test_moderations_single, [SafetyShield]),
        case!(safety::test_safety::test_moderations_batch, [SafetyShield]),
        case!(
            safety::test_safety::test_responses_guardrails,
            [Text, SafetyShield]
        ),
        case!(
            safety::test_safety_telemetry::test_run_shield_span,
            [SafetyShield]
        ),
        case!(
            safety::test_safety_telemetry::test_guarded_stream_checks_once_per_item,
            [Text, SafetyShield]
        ),
    ]
}

fn main() -> ExitCode {
    common::default_env();
    run_suite(
        cases(),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("suites.toml"),
    )
}
