//! Whether a finished exchange is stored: the one place that decides it.
//!
//! A transient failure (an HTTP 5xx answer, a transport error, a stream that broke off) says
//! nothing lasting about the request: stored, it would be replayed forever after. So by default it
//! is not stored, and the log says so (the next recording run calls the provider again); the
//! switch [`RECORD_ERRORS_ENV`] (`LLAMA_STACK_TEST_RECORD_ERRORS=1` in Llama Stack's profile) stores failures too, for
//! tests of error paths. And `record` mode never replaces a good recording with a failure, switch
//! or not. Everything else (2xx, 3xx, 4xx answers, whole streams) is stored.

use std::sync::Arc;

use super::error::RecorderError;
use super::format::{RecordedResponse, Recording, StreamEnd};
use super::mode::Mode;
use super::store::{KeyLock, Store};

/// Llama Stack's variable that makes the recorder store transient failures too (`1`, `true`,
/// `yes`); a profile names its own ([`EnvNames::record_errors`](crate::profile::EnvNames)).
pub use crate::profile::llama_stack::RECORD_ERRORS_ENV;

/// What decides whether a recording is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The recorder's mode.
    pub mode: Mode,
    /// Store transient failures too.
    pub record_errors: bool,
    /// The variable that switches `record_errors` on, for the log.
    pub record_errors_env: &'static str,
}

/// Where a finished exchange's recording goes: the store, the policy, and the key's recording
/// lock, held until the recording is kept (or given up), whoever keeps it (the request, a
/// stream's end, a blocking thread).
pub(crate) struct Keeper {
    pub store: Arc<Store>,
    pub policy: KeepPolicy,
    pub lock: Option<KeyLock>,
}

impl Keeper {
    /// [`keep`]s `rec`, then lets the key's lock go.
    pub(crate) fn keep(self, rec: &Recording) -> Result<(), RecorderError> {
        let kept = keep(&self.store, self.policy, rec);
        drop(self.lock);
        kept
    }
}

/// A transient failure: an HTTP 5xx (streamed or not), a transport error, or a stream that
/// ended in an error. `None` for everything else; else a description for the log.
pub fn transient_failure(response: &RecordedResponse) -> Option<String> {
    match response {
        RecordedResponse::Http { status, .. } | RecordedResponse::Stream { status, .. }
            if *status >= 500 =>
        {
            Some(format!("an HTTP {status} answer"))
        }
        RecordedResponse::TransportError { error_kind, .. } => {
            Some(format!("a transport error ({error_kind})"))
        }
        RecordedResponse::Stream {
            end: StreamEnd::Error { .. },
            events,
            ..
        } => Some(format!(
            "a stream that broke off after {} events",
            events.len()
        )),
        _ => None,
    }
}

/// Stores `rec` unless the policy says not to; what is not stored is logged with the reason.
pub fn keep(store: &Store, policy: KeepPolicy, rec: &Recording) -> Result<(), RecorderError> {
    let Some(failure) = transient_failure(&rec.response) else {
        return store.put(rec);
    };
    let what = super::format::describe_request(
        &rec.request.method,
        &rec.request.path,
        &rec.request_hash,
        rec.test_id.as_deref(),
    );
    if policy.mode == Mode::Record
        && let Some(existing) = store.get_replayable(&rec.request_hash)?
        && transient_failure(&existing.response).is_none()
    {
        tracing::warn!(
            target: "harness::recorder",
            "{what}: got {failure}; not stored, the good recording it would replace is kept"
        );
        return Ok(());
    }
    if policy.record_errors {
        return store.put(rec);
    }
    tracing::warn!(
        target: "harness::recorder",
        "{what}: got {failure}; not recorded, transient failures are not stored (the next \
         recording run calls the provider again; {}=1 records them)",
        policy.record_errors_env
    );
    Ok(())
}
