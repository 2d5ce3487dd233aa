//! Providers API (`GET /v1/providers`), as Llama Stack's `tests/integration/providers`.

pub mod test_providers;
