//! `blob_loader`: reading recording blobs, as the store does (`serde_json::from_slice` into
//! [`harness::recorder::format::Recording`], or into
//! [`harness::recorder::format::Replayable`] on the replay path).
//!
//! Input: the bytes of a blob file.
//!
//! Checked: nothing panics, whatever the bytes; a blob that loads as a `Recording` also loads as a
//! `Replayable` (replay can read whatever `get` can), with the same request line and response;
//! the bodies and stream events decode or say why not; and a loaded recording written back the
//! way the store writes it (`to_vec_pretty`) loads again and writes back to the same bytes (a
//! fixed point after one write), and loads as a `Replayable` with the same response.

use harness::recorder::format::{RecordedResponse, Recording, Replayable};

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let replayable = serde_json::from_slice::<Replayable>(data);
    if let Ok(r) = &replayable {
        touch_response(&r.response);
    }
    let Ok(recording) = serde_json::from_slice::<Recording>(data) else {
        return;
    };
    let replayable =
        replayable.unwrap_or_else(|e| panic!("loads as a Recording but not as a Replayable: {e}"));
    assert_eq!(replayable.request.method, recording.request.method);
    assert_eq!(replayable.request.path, recording.request.path);
    assert_eq!(
        response_json(&replayable.response),
        response_json(&recording.response),
        "the replay path reads another response"
    );
    let _ = recording.request.body.to_bytes();
    touch_response(&recording.response);

    let written = serde_json::to_vec_pretty(&recording).expect("a loaded recording serializes");
    let reloaded: Recording = serde_json::from_slice(&written).unwrap_or_else(|e| {
        panic!(
            "a written recording does not load ({e}):\n{}",
            String::from_utf8_lossy(&written)
        )
    });
    let rewritten = serde_json::to_vec_pretty(&reloaded).expect("serializes");
    assert!(
        written == rewritten,
        "write, load, write is not a fixed point:\n{}\n---\n{}",
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&rewritten)
    );
    let replayed: Replayable = serde_json::from_slice(&written)
        .unwrap_or_else(|e| panic!("a written recording does not load for replay ({e})"));
    assert_eq!(
        response_json(&replayed.response),
        response_json(&recording.response)
    );
}

/// What replay does with a response's bytes, minus the HTTP.
fn touch_response(response: &RecordedResponse) {
    let _ = response.status();
    let _ = response.is_streaming();
    match response {
        RecordedResponse::Http { body, .. } => {
            let _ = body.to_bytes();
        }
        RecordedResponse::Stream { events, .. } => {
            for event in events {
                let _ = event.bytes();
            }
        }
        RecordedResponse::TransportError { .. } => {}
    }
}

fn response_json(response: &RecordedResponse) -> String {
    serde_json::to_string(response).expect("a response serializes")
}
