//! Test identity plumbing. With the `replay` feature this is the harness's
//! `harness::context::TestContext`: a server re-enters the caller's test scope from
//! the `X-LlamaStack-Provider-Data` header, and the HTTP client sends that header. Without the
//! feature every function here is a no-op, so the rest of the stack needs no `cfg`.

use std::future::Future;

/// The name of the header that carries provider data (and the test id) to a server.
pub const PROVIDER_DATA_HEADER: &str = "X-LlamaStack-Provider-Data";

/// A test context taken from the current task or from a request header (empty without `replay`).
#[derive(Debug, Clone, Default)]
pub struct Captured {
    #[cfg(feature = "replay")]
    ctx: Option<harness::context::TestContext>,
}

impl Captured {
    /// The context of the current task, if it runs inside a test scope.
    pub fn current() -> Self {
        Self {
            #[cfg(feature = "replay")]
            ctx: harness::context::TestContext::current(),
        }
    }

    /// The context named by a provider-data header value (`{"__test_id": "..."}`).
    pub fn from_provider_data(header_value: Option<&str>) -> Self {
        #[cfg(feature = "replay")]
        {
            Self {
                ctx: header_value.and_then(harness::context::TestContext::from_provider_data),
            }
        }
        #[cfg(not(feature = "replay"))]
        {
            let _ = header_value;
            Self {}
        }
    }

    /// The provider-data header value to send to a server for this context, if there is one.
    pub fn provider_data(&self) -> Option<String> {
        #[cfg(feature = "replay")]
        {
            self.ctx.as_ref().map(|c| c.to_provider_data(None))
        }
        #[cfg(not(feature = "replay"))]
        {
            None
        }
    }

    /// The test id, if there is a context.
    pub fn test_id(&self) -> Option<String> {
        #[cfg(feature = "replay")]
        {
            self.ctx.as_ref().map(|c| c.test_id().to_owned())
        }
        #[cfg(not(feature = "replay"))]
        {
            None
        }
    }

    /// Runs `fut` inside this context (or just runs it when there is none).
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        #[cfg(feature = "replay")]
        if let Some(ctx) = self.ctx {
            return ctx.scope(fut).await;
        }
        fut.await
    }
}

/// What a test context says about the next object of `kind` the stack creates: a stable hash of
/// the test id and the per-test counter of `kind` (0, 1, 2... reset at each execution of the
/// test). `None` outside tests, where callers make random ids.
pub fn next_in_test(kind: &str) -> Option<(String, u64)> {
    #[cfg(feature = "replay")]
    {
        harness::context::TestContext::current().map(|c| (c.id_hash(), c.next_number(kind)))
    }
    #[cfg(not(feature = "replay"))]
    {
        let _ = kind;
        None
    }
}
