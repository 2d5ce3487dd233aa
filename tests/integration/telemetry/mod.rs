//! Telemetry: the stack's OpenTelemetry GenAI spans and metrics, in library and server mode.

pub mod test_genai_metrics;
pub mod test_genai_spans;
