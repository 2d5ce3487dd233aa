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

use harness::profile::llama_stack::roles::{COMPLETION, EMBEDDING, SAFETY_SHIELD, TEXT};
use harness::testkit::runner::{TestCase, run_suite};

/// A test case whose id (`area/file.rs::test`) is derived from the function's own path, so the
/// id that keys its recordings cannot drift from the code.
macro_rules! case {
    ($area:ident :: $file:ident :: $test:ident, [$($role:expr),*]) => {
        TestCase::new(
            concat!(stringify!($area), "/", stringify!($file), ".rs::", stringify!($test)),
            &[$($role),*],
            |e| Box::pin($area::$file::$test(e)),
        )
    };
}

/// Every test of the suite. Metric deltas are process-wide: that test runs alone.
fn cases() -> Vec<TestCase> {
    vec![
        case!(
            inference::test_openai_chat_completion::test_chat_completion_non_streaming,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_system_prompt,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_multi_turn,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_stop_sequence,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_max_tokens_length,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_seed,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_json_response_format,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_tools,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_streaming,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_streaming_usage,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_unknown_model,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_inference_store,
            [TEXT]
        ),
        case!(
            inference::test_openai_chat_completion::test_chat_completion_malformed_body,
            [TEXT]
        ),
        case!(
            inference::test_openai_completion::test_completion_non_streaming,
            [COMPLETION]
        ),
        case!(
            inference::test_openai_completion::test_completion_streaming,
            [COMPLETION]
        ),
        case!(
            inference::test_openai_completion::test_completion_stop_sequence,
            [COMPLETION]
        ),
        case!(
            inference::test_openai_completion::test_completion_logprobs,
            [COMPLETION]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_single_string,
            [EMBEDDING]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_batch,
            [EMBEDDING]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_base64_matches_float,
            [EMBEDDING]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_invalid_encoding_format,
            [EMBEDDING]
        ),
        case!(
            inference::test_openai_embeddings::test_embeddings_dimensions_unsupported,
            [EMBEDDING]
        ),
        case!(models::test_models::test_models_list, [TEXT, EMBEDDING]),
        case!(models::test_models::test_health_and_version, []),
        case!(
            models::test_models::test_models_custom_metadata,
            [TEXT, EMBEDDING]
        ),
        case!(models::test_models::test_model_retrieve, [TEXT]),
        case!(providers::test_providers::test_providers_list, [TEXT]),
        case!(providers::test_providers::test_provider_inspect, [TEXT]),
        case!(
            telemetry::test_genai_spans::test_chat_completion_span,
            [TEXT]
        ),
        case!(
            telemetry::test_genai_spans::test_streaming_chat_one_span,
            [TEXT]
        ),
        case!(
            telemetry::test_genai_spans::test_embeddings_span,
            [EMBEDDING]
        ),
        case!(
            telemetry::test_genai_spans::test_provider_error_span,
            [TEXT]
        ),
        case!(telemetry::test_genai_spans::test_span_parent_chain, [TEXT]),
        case!(
            telemetry::test_genai_spans::test_no_spans_when_disabled,
            [TEXT]
        ),
        case!(
            telemetry::test_genai_metrics::test_token_usage_and_duration_metrics,
            [TEXT]
        )
        .run_alone(),
        case!(
            responses::test_basic::test_response_text_non_streaming,
            [TEXT]
        ),
        case!(responses::test_basic::test_response_text_streaming, [TEXT]),
        case!(
            responses::test_basic::test_response_structured_output,
            [TEXT]
        ),
        case!(
            responses::test_basic::test_response_retrieve_list_delete,
            [TEXT]
        ),
        case!(responses::test_basic::test_response_store_false, [TEXT]),
        case!(responses::test_basic::test_response_bad_requests, [TEXT]),
        case!(
            responses::test_function_tools::test_function_call_round_trip,
            [TEXT]
        ),
        case!(responses::test_mcp::test_mcp_list_tools, [TEXT]),
        case!(responses::test_mcp::test_mcp_tool_call, [TEXT]),
        case!(responses::test_mcp::test_mcp_tool_call_streaming, [TEXT]),
        case!(responses::test_mcp::test_mcp_tool_error, [TEXT]),
        case!(responses::test_mcp::test_mcp_allowed_tools, [TEXT]),
        case!(responses::test_mcp::test_mcp_max_tool_calls, [TEXT]),
        case!(
            responses::test_mcp::test_mcp_chain_does_not_list_again,
            [TEXT]
        ),
        case!(responses::test_mcp::test_mcp_approval, [TEXT]),
        case!(responses::test_mcp::test_mcp_unreachable_server, [TEXT]),
        case!(
            responses::test_mcp::test_mcp_authorization_reaches_server_not_disk,
            [TEXT]
        ),
        case!(
            responses::test_responses_telemetry::test_response_mcp_spans,
            [TEXT]
        ),
        case!(
            responses::test_responses_telemetry::test_response_tool_error_span,
            [TEXT]
        ),
        case!(
            safety::test_safety::test_shields_list_and_get,
            [SAFETY_SHIELD]
        ),
        case!(safety::test_safety::test_register_and_delete_shield, [TEXT]),
        case!(safety::test_safety::test_run_shield_benign, [SAFETY_SHIELD]),
        case!(safety::test_safety::test_run_shield_unsafe, [SAFETY_SHIELD]),
        case!(
            safety::test_safety::test_run_shield_multi_turn,
            [SAFETY_SHIELD]
        ),
        case!(
            safety::test_safety::test_run_shield_bad_requests,
            [SAFETY_SHIELD]
        ),
        case!(
            safety::test_safety::test_moderations_single,
            [SAFETY_SHIELD]
        ),
        case!(safety::test_safety::test_moderations_batch, [SAFETY_SHIELD]),
        case!(
            safety::test_safety::test_responses_guardrails,
            [TEXT, SAFETY_SHIELD]
        ),
        case!(
            safety::test_safety_telemetry::test_run_shield_span,
            [SAFETY_SHIELD]
        ),
        case!(
            safety::test_safety_telemetry::test_guarded_stream_checks_once_per_item,
            [TEXT, SAFETY_SHIELD]
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
