//! Server-sent events from a provider: each `data:` payload, in order, up to `[DONE]`.

use eventsource_stream::Eventsource;
use futures::stream::{BoxStream, StreamExt};
use serde_json::json;

use super::ProviderError;

/// The `data:` payloads of a provider's event stream, one item per event, ending before
/// `[DONE]` (or when the provider closes the stream). A transport failure is the last item.
pub type DataStream = BoxStream<'static, Result<String, ProviderError>>;

/// Turns a provider's streaming response into its sequence of `data:` payloads.
///
/// Events named `error` whose data is not already an `{"error": ...}` object are wrapped into
/// one, so that the API layer sees every in-stream error the same way.
pub fn data_events(provider: String, response: reqwest::Response) -> DataStream {
    let events = response.bytes_stream().eventsource();
    futures::stream::unfold(Some((events, provider)), |state| async move {
        let (mut events, provider) = state?;
        loop {
            match events.next().await {
                None => {
                    tracing::debug!(provider, "provider stream ended without [DONE]");
                    return None;
                }
                Some(Ok(event)) => {
                    let data = event.data;
                    if data.trim() == "[DONE]" {
                        return None;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    let data = if event.event == "error" && !is_error_object(&data) {
                        json!({"error": {"message": data, "type": "provider_error"}}).to_string()
                    } else {
                        data
                    };
                    return Some((Ok(data), Some((events, provider))));
                }
                Some(Err(e)) => {
                    let err = match e {
                        eventsource_stream::EventStreamError::Transport(t) => {
                            ProviderError::from_reqwest(&provider, &t)
                        }
                        other => ProviderError::InvalidResponse {
                            provider: provider.clone(),
                            message: format!("malformed event stream: {other}"),
                        },
                    };
                    return Some((Err(err), None));
                }
            }
        }
    })
    .boxed()
}

fn is_error_object(data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .map(|v| v.get("error").is_some())
        .unwrap_or(false)
}
