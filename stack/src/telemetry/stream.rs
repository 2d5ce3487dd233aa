//! One GenAI span per stream: [`traced`] wraps a stream of provider chunks so that the span of
//! its [`GenAiCall`] stays open while the chunks flow and ends exactly once, when the stream
//! ends, fails, or is dropped unfinished (the guard's `Drop`), carrying what the chunks said
//! (response id and model, finish reasons, usage) and the stream figures (chunk count, time to
//! first chunk).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::stream::{Stream, StreamExt};
use serde_json::Value;

use super::content::{self, StreamedOutput};
use super::genai::{Failure, GenAiCall, ResponseSummary, StreamStats};
use crate::api::ChunkStream;
use crate::error::ApiError;

/// `chunks` (provider chunks, as the provider sent them, ending at the first error) with the
/// span and metrics of `call` recorded as they flow.
pub fn traced(chunks: ChunkStream, call: GenAiCall) -> ChunkStream {
    let output = call.captures_content().then(StreamedOutput::default);
    TracedStream {
        inner: chunks,
        state: Some(StreamState {
            call,
            summary: ResponseSummary::default(),
            finish_reasons: BTreeMap::new(),
            chunk_count: 0,
            first_chunk: None,
            output,
        }),
    }
    .boxed()
}

struct TracedStream {
    inner: ChunkStream,
    /// `None` once the span has ended.
    state: Option<StreamState>,
}

struct StreamState {
    call: GenAiCall,
    summary: ResponseSummary,
    /// The last finish reason of each choice, by choice index.
    finish_reasons: BTreeMap<u64, String>,
    chunk_count: u64,
    first_chunk: Option<Instant>,
    output: Option<StreamedOutput>,
}

impl StreamState {
    fn on_chunk(&mut self, chunk: &Value) {
        self.chunk_count += 1;
        if self.first_chunk.is_none() {
            self.first_chunk = Some(Instant::now());
        }
        if self.call.is_quiet() {
            return;
        }
        self.summary.read_header(chunk);
        self.summary.read_usage(chunk);
        for (index, choice) in content::indexed(chunk.get("choices")) {
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reasons.insert(index, reason.to_owned());
            }
        }
        if let Some(output) = &mut self.output {
            output.add(chunk);
        }
    }

    fn finish(mut self, failure: Option<&Failure>) {
        self.summary.finish_reasons = std::mem::take(&mut self.finish_reasons)
            .into_values()
            .collect();
        self.summary.output_messages = self.output.as_ref().map(StreamedOutput::messages);
        let stats = StreamStats {
            chunk_count: self.chunk_count,
            time_to_first_chunk: self
                .first_chunk
                .map(|t| t.duration_since(self.call.started()).as_secs_f64()),
        };
        self.call.finish(&self.summary, failure, Some(stats));
    }
}

impl Stream for TracedStream {
    type Item = Result<Value, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = match self.inner.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            Some(Ok(chunk)) => {
                if let Some(state) = &mut self.state {
                    state.on_chunk(chunk);
                }
            }
            Some(Err(e)) => {
                if let Some(state) = self.state.take() {
                    state.finish(Some(&Failure::from_api_error(e)));
                }
            }
            None => {
                if let Some(state) = self.state.take() {
                    state.finish(None);
                }
            }
        }
        Poll::Ready(item)
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            state.finish(None);
        }
    }
}
