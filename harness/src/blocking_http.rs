//! The harness's blocking HTTP client ([`ureq`]), for the GETs that run outside any async
//! runtime: server health checks and the remote telemetry read API.

use std::time::Duration;

/// An agent with these timeouts that hands back every status as a response (no status is an
/// error) and follows no redirects.
pub(crate) fn agent(connect_timeout: Duration, io_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(connect_timeout))
        .timeout_per_read(Some(io_timeout))
        .timeout_per_write(Some(io_timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}
