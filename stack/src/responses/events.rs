//! Streaming events of the Responses API: each event is `{"type": ..., "sequence_number": n,
//! ...}`, numbered from 0 in the order sent. A non-streaming response runs the same code with an
//! emitter that sends nowhere.

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

/// Numbers events and sends them to the stream, if there is one.
#[derive(Debug, Default)]
pub struct Emitter {
    tx: Option<UnboundedSender<Value>>,
    next: u64,
}

impl Emitter {
    /// An emitter that sends to `tx`.
    pub fn to(tx: UnboundedSender<Value>) -> Self {
        Self {
            tx: Some(tx),
            next: 0,
        }
    }

    /// An emitter that sends nowhere (non-streaming responses).
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether events go anywhere.
    pub fn is_streaming(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends an event of `kind` with the fields of `fields` (an object).
    pub fn emit(&mut self, kind: &str, fields: Value) {
        let Some(tx) = &self.tx else {
            return;
        };
        let mut event = json!({"type": kind, "sequence_number": self.next});
        if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
            event.extend(fields);
        }
        self.next += 1;
        // A receiver that went away (the client disconnected) does not stop the response: it
        // still completes and is stored.
        let _ = tx.send(event);
    }

    /// `response.output_item.added`.
    pub fn item_added(&mut self, output_index: usize, item: &Value) {
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
    }

    /// `response.output_item.done`.
    pub fn item_done(&mut self, output_index: usize, item: &Value) {
        self.emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_in_order() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut e = Emitter::to(tx);
        e.emit("response.created", json!({"response": {}}));
        e.item_added(0, &json!({"id": "x"}));
        let first = rx.try_recv().unwrap();
        let second = rx.try_recv().unwrap();
        assert_eq!(
            (first["type"].as_str(), first["sequence_number"].as_u64()),
            (Some("response.created"), Some(0))
        );
        assert_eq!(
            (
                second["sequence_number"].as_u64(),
                second["output_index"].as_u64()
            ),
            (Some(1), Some(0))
        );
        let mut quiet = Emitter::none();
        quiet.emit("x", json!({}));
        assert!(!quiet.is_streaming());
    }
}
