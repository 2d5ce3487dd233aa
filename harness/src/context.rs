//! Test identity: which test a provider call belongs to.
//!
//! A test runs its body inside [`TestContext::scope`]; every outbound call the service makes from
//! that task sees the context through [`TestContext::current`]. A server receives the identity in
//! the profile's [context header](crate::profile::Profile::context_header) (`{"__test_id":
//! "..."}`, Llama Stack's convention; `X-LlamaStack-Provider-Data` in its profile) and re-enters
//! the scope per request with [`TestContext::from_provider_data`].
//!
//! The context also hands out deterministic numbers ([`TestContext::next_number`], with
//! [`TestContext::id_hash`]) so that ids the service generates (response ids, tool-call ids, file
//! ids) are the same in every run of a test.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// Llama Stack's header that carries provider data, and with it the test id, to a server; a
/// profile names its own ([`Profile::context_header`](crate::profile::Profile::context_header)).
pub use crate::profile::llama_stack::PROVIDER_DATA_HEADER;
/// Key of the test id inside the provider-data JSON object.
pub const TEST_ID_KEY: &str = "__test_id";
/// Key of the per-execution nonce inside the provider-data JSON object (our extension: lets a
/// long-lived server reset a test's occurrence counters when the test runs again).
pub const TEST_RUN_KEY: &str = "__test_run";

tokio::task_local! {
    static CURRENT: TestContext;
}

/// The identity of one execution of one test.
#[derive(Clone, Debug)]
pub struct TestContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    test_id: String,
    run: String,
}

/// Test id -> (execution nonce being counted, kind -> next id). Process-wide, because a server
/// makes a new context for every request of a test: the counters must outlive each of them. A new
/// execution of a test resets its counters.
type IdCounters = HashMap<String, (String, HashMap<String, u64>)>;

static ID_COUNTERS: Mutex<Option<IdCounters>> = Mutex::new(None);

impl TestContext {
    /// A context for test `test_id`, with a fresh execution nonce.
    pub fn new(test_id: impl Into<String>) -> Self {
        let run = format!(
            "{:x}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        Self::with_run(test_id, run)
    }

    /// A context for test `test_id` with an explicit execution nonce (as received by a server).
    pub fn with_run(test_id: impl Into<String>, run: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                test_id: test_id.into(),
                run: run.into(),
            }),
        }
    }

    /// The stable test id (path and parameters), the part of the request key.
    pub fn test_id(&self) -> &str {
        &self.inner.test_id
    }

    /// The nonce of this execution of the test.
    pub fn run(&self) -> &str {
        &self.inner.run
    }

    /// The context of the current task, if it runs inside [`TestContext::scope`].
    pub fn current() -> Option<TestContext> {
        CURRENT.try_with(|c| c.clone()).ok()
    }

    /// Runs `fut` with this context as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// Reads the context out of a provider-data header value. Returns `None` when the header
    /// carries no test id; malformed JSON is treated as no test id (the server still answers).
    pub fn from_provider_data(header_value: &str) -> Option<TestContext> {
        let value: serde_json::Value = serde_json::from_str(header_value).ok()?;
        let test_id = value.get(TEST_ID_KEY)?.as_str()?.to_owned();
        let run = value
            .get(TEST_RUN_KEY)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        Some(Self::with_run(test_id, run))
    }

    /// Adds this context to a provider-data JSON object (creating it when `existing` is empty or
    /// not an object), for a client that talks to a server.
    pub fn to_provider_data(&self, existing: Option<&str>) -> String {
        let mut obj = existing
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| match v {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default();
        obj.insert(TEST_ID_KEY.into(), self.test_id().into());
        obj.insert(TEST_RUN_KEY.into(), self.run().into());
        serde_json::Value::Object(obj).to_string()
    }

    /// The next number of the counter `kind` of this test execution (0, 1, 2...), for ids and
    /// other values (timestamps) the service derives from it; with [`TestContext::id_hash`] it
    /// makes ids that are the same in every run of the test. Counters start at 0 for each
    /// execution of a test.
    pub fn next_number(&self, kind: &str) -> u64 {
        let mut guard = support::sync::lock(&ID_COUNTERS);
        let (run, counters) = guard
            .get_or_insert_with(HashMap::new)
            .entry(self.test_id().to_owned())
            .or_default();
        if run != self.run() {
            *run = self.run().to_owned();
            counters.clear();
        }
        let c = counters.entry(kind.to_owned()).or_insert(0);
        let n = *c;
        *c += 1;
        n
    }

    /// 16 hex digits derived from the test id: stable across runs, different between tests.
    pub fn id_hash(&self) -> String {
        let digest = Sha256::digest(self.test_id().as_bytes());
        hex::encode(&digest[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id as a service makes them from the context (the stack's `next_in_test`).
    trait NextId {
        fn next_id(&self, kind: &str) -> String;
    }

    impl NextId for TestContext {
        fn next_id(&self, kind: &str) -> String {
            format!("{kind}-{}-{}", self.id_hash(), self.next_number(kind))
        }
    }

    #[tokio::test]
    async fn scope_sets_current_and_ends_with_the_future() {
        assert!(TestContext::current().is_none());
        let ctx = TestContext::new("tests/a.rs::t");
        let seen = ctx
            .clone()
            .scope(async { TestContext::current().map(|c| c.test_id().to_owned()) })
            .await;
        assert_eq!(seen.as_deref(), Some("tests/a.rs::t"));
        assert!(TestContext::current().is_none());
    }

    #[test]
    fn provider_data_round_trip_keeps_other_keys() {
        let ctx = TestContext::with_run("t1", "r1");
        let header = ctx.to_provider_data(Some(r#"{"openai_api_key":"x"}"#));
        let v: serde_json::Value = serde_json::from_str(&header).unwrap();
        assert_eq!(v["openai_api_key"], "x");
        let back = TestContext::from_provider_data(&header).unwrap();
        assert_eq!(back.test_id(), "t1");
        assert_eq!(back.run(), "r1");
        assert!(TestContext::from_provider_data("not json").is_none());
        assert!(TestContext::from_provider_data(r#"{"a":1}"#).is_none());
    }

    #[test]
    fn ids_continue_across_contexts_of_one_execution() {
        // A server makes one context per request of the same test execution.
        let first = TestContext::with_run("server-test", "run-1").next_id("file");
        let second = TestContext::with_run("server-test", "run-1").next_id("file");
        assert!(
            first.ends_with("-0") && second.ends_with("-1"),
            "{first} {second}"
        );
        assert!(
            TestContext::with_run("server-test", "run-2")
                .next_id("file")
                .ends_with("-0")
        );
    }

    #[test]
    fn ids_are_deterministic_per_test_and_restart_per_execution() {
        let a = TestContext::new("t");
        let first = (a.next_id("resp"), a.next_id("resp"), a.next_id("call"));
        let b = TestContext::new("t");
        assert_eq!(
            first,
            (b.next_id("resp"), b.next_id("resp"), b.next_id("call"))
        );
        assert!(first.0.ends_with("-0") && first.1.ends_with("-1"));
        assert_ne!(TestContext::new("u").next_id("resp"), first.0);
    }
}
