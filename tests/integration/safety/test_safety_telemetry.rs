//! The telemetry of shield runs (`docs/telemetry.md`, guardrail spans after the GenAI SIG's
//! proposal, Llama Stack's `llama_stack.safety.*` attributes) and how many guard calls a guarded
//! streamed response makes.

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use harness::telemetry::{CapturedSpan, SpanKind};
use serde_json::json;

use super::{BENIGN, UNSAFE};
use crate::common::{LlamaStackModels, TestEnv, client, telemetry};
use crate::telemetry::test_genai_spans::{WAIT, provider_model, text};

/// A run-shield call makes one `run_guardrail {shield}` span with the verdict, Llama Stack's
/// safety attributes, the guard model's chat span as its child, and a verdict count.
pub async fn test_run_shield_span(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let shield = env.safety_shield();
    let baseline = capture.metrics_baseline().await?;
    let root = capture.test_root_span("test_run_shield_span");
    let r = root
        .run(c.call(
            "POST",
            "/v1/safety/run-shield",
            Some(json!({
                "shield_id": shield, "messages": [{"role": "user", "content": UNSAFE}], "params": {}
            })),
        ))
        .await?;
    let name = format!("run_guardrail {shield}");
    let spans = capture
        .wait_for_trace(
            root.trace_id(),
            |s| s.iter().any(|x| x.name == name) && s.iter().any(|x| x.name.starts_with("chat ")),
            WAIT,
        )
        .await?;
    let span = spans
        .iter()
        .find(|s| s.name == name)
        .context("shield span")?;
    ensure!(
        span.kind == SpanKind::Internal && !span.is_error(),
        "{span:?}"
    );
    ensure!(text(span, "gen_ai.operation.name")? == "run_guardrail");
    ensure!(text(span, "llama_stack.safety.request.shield_id")? == shield);
    ensure!(text(span, "gen_ai.guardrail.target.type")? == "input");
    ensure!(text(span, "gen_ai.guardrail.verdict.type")? == "violation");
    ensure!(text(span, "gen_ai.guardrail.action.type")? == "block");
    ensure!(text(span, "llama_stack.safety.response.violation.level")? == "error");
    ensure!(
        Some(text(
            span,
            "llama_stack.safety.response.violation.user_message"
        )?) == r["violation"]["user_message"].as_str()
    );
    let metadata: serde_json::Value =
        serde_json::from_str(text(span, "llama_stack.safety.response.metadata")?)?;
    ensure!(metadata == r["violation"]["metadata"], "{metadata}");
    ensure!(
        span.attr("llama_stack.safety.request.messages").is_none(),
        "messages are opt-in"
    );
    let guard_model = span
        .str_attr("gen_ai.request.model")
        .context("guard model")?;
    let chat: &CapturedSpan = spans
        .iter()
        .find(|s| s.name == format!("chat {}", provider_model(guard_model)))
        .context("the guard model's chat span")?;
    ensure!(
        chat.is_child_of(span),
        "the guard call is the shield span's child"
    );
    let delta = capture.metrics_delta_since(&baseline, WAIT).await?;
    let verdicts = delta.counter_value(
        "llama_stack.safety.verdicts",
        &[
            ("llama_stack.safety.shield_id", shield),
            ("gen_ai.guardrail.verdict.type", "violation"),
        ],
    );
    ensure!(
        verdicts >= 1.0,
        "verdict counter: {verdicts} ({:?})",
        delta.names()
    );
    Ok(())
}

/// A guarded streamed response calls the guard twice (its input, then its one answer once it is
/// complete), whatever the number of text deltas: Llama Stack's output guardrail called it on
/// every delta (585 recordings for one test).
pub async fn test_guarded_stream_checks_once_per_item(env: TestEnv) -> Result<()> {
    let capture = telemetry(&env).await?;
    let c = client(&env).await?;
    let shield = env.safety_shield();
    let root = capture.test_root_span("test_guarded_stream_checks_once_per_item");
    let events: Vec<_> = root
        .run(async {
            c.create_response_stream(json!({
                "model": env.text_model(), "input": BENIGN, "guardrails": [shield],
                "temperature": 0, "max_output_tokens": 48
            }))
            .collect::<Vec<_>>()
            .await
        })
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let deltas = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .count();
    ensure!(deltas > 2, "a streamed answer of several deltas: {deltas}");
    let name = format!("run_guardrail {shield}");
    let spans = capture
        .wait_for_trace(
            root.trace_id(),
            |s| {
                s.iter().filter(|x| x.name == name).count() >= 2
                    && s.iter().any(|x| x.name == "invoke_agent")
            },
            WAIT,
        )
        .await?;
    let guards: Vec<&CapturedSpan> = spans.iter().filter(|s| s.name == name).collect();
    let mut targets: Vec<&str> = guards
        .iter()
        .filter_map(|s| s.str_attr("gen_ai.guardrail.target.type"))
        .collect();
    targets.sort_unstable();
    ensure!(
        targets == ["input", "output"],
        "two guard calls for {deltas} deltas: {targets:?}"
    );
    let agent = spans
        .iter()
        .find(|s| s.name == "invoke_agent")
        .context("invoke_agent")?;
    ensure!(
        guards.iter().all(|g| g.is_child_of(agent)),
        "guard spans are children of the response span"
    );
    Ok(())
}
