//! Helpers shared by the harness's integration tests.

#![allow(dead_code)] // each test binary takes what it needs

pub mod otlp;

use harness::testkit::ServerSpec;

/// A server that answers `GET /` on 127.0.0.1:`port`: Python's `http.server`.
pub fn python_http_server(port: u16) -> ServerSpec {
    let mut spec = ServerSpec::new(
        "python3",
        [
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ],
        port,
    );
    spec.health_path = "/".to_owned();
    spec
}
