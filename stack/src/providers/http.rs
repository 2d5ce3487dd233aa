//! The provider HTTP client: what every provider call is sent with (timeouts, CAs), with the
//! recorder installed when asked. Not the stack's own API client ([`crate::client`]).

use std::path::Path;
use std::time::Duration;

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware};

use super::tls::{self, CaFileError};

/// The variable that switches the harness recorder on (`record`, `replay`, `record-if-missing`, ...).
pub const INFERENCE_MODE_VAR: &str = "LLAMA_STACK_TEST_INFERENCE_MODE";

/// How long to wait for a TCP connection to a provider.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a provider may stay silent while answering (between two reads of the body).
pub const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the provider client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// The recorder was asked for, but this binary was built without it.
    #[error(
        "{INFERENCE_MODE_VAR} is set to '{0}', but this stack was built without the recorder: \
         rebuild with --features replay (e.g. `cargo run -p stack --features replay -- run starter`), \
         or unset {INFERENCE_MODE_VAR}"
    )]
    ReplayNotBuilt(String),
    /// The recorder refused its configuration.
    #[cfg(feature = "replay")]
    #[error("cannot set up the recorder ({INFERENCE_MODE_VAR})")]
    Recorder(#[source] harness::recorder::RecorderError),
    /// reqwest could not build a client.
    #[error("cannot build the provider HTTP client")]
    Http(#[source] reqwest::Error),
    /// The extra CA file (`SSL_CERT_FILE`) cannot be used.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
}

/// The plain reqwest client used for providers: it trusts the system's CA store and the extra CA
/// file named by `SSL_CERT_FILE`, if any (see [`super::tls`]).
pub fn http_client() -> Result<reqwest::Client, ClientSetupError> {
    http_client_with_ca(tls::ca_file_from_env().as_deref())
}

/// [`http_client`] trusting the CAs of `ca_file` (PEM) besides the system's store, instead of
/// the file `SSL_CERT_FILE` names. A bad file is a [`ClientSetupError::CaFile`] naming it.
pub fn http_client_with_ca(ca_file: Option<&Path>) -> Result<reqwest::Client, ClientSetupError> {
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT);
    tls::trust(builder, ca_file)?
        .build()
        .map_err(ClientSetupError::Http)
}

/// The provider client for this process: `spans` (the stack passes its client span middleware,
/// an OpenTelemetry CLIENT span per request with `traceparent` injected), then the harness
/// recorder when `LLAMA_STACK_TEST_INFERENCE_MODE` is set (feature `replay`); without the feature
/// that variable is refused with a message saying how to rebuild. The span middleware comes
/// first so replayed calls have client spans too; the recorder keeps headers out of its request
/// key. Providers know nothing of telemetry: the caller brings the middleware.
pub fn provider_client_with(
    spans: impl Middleware,
) -> Result<ClientWithMiddleware, ClientSetupError> {
    let builder = ClientBuilder::new(http_client()?).with(spans);
    #[cfg(feature = "replay")]
    {
        match harness::recorder::Recorder::from_env() {
            Ok(Some(recorder)) => {
                tracing::info!(
                    "recorder installed on the provider client ({INFERENCE_MODE_VAR} is set)"
                );
                Ok(builder.with(recorder).build())
            }
            Ok(None) => Ok(builder.build()),
            Err(e) => Err(ClientSetupError::Recorder(e)),
        }
    }
    #[cfg(not(feature = "replay"))]
    {
        refuse_inference_mode(std::env::var_os(INFERENCE_MODE_VAR))?;
        Ok(builder.build())
    }
}

/// Without the `replay` feature: an error when the inference mode variable is set at all (the
/// recorder treats any value as switching it on).
#[cfg(not(feature = "replay"))]
fn refuse_inference_mode(mode: Option<std::ffi::OsString>) -> Result<(), ClientSetupError> {
    match mode {
        Some(mode) => Err(ClientSetupError::ReplayNotBuilt(
            mode.to_string_lossy().into_owned(),
        )),
        None => Ok(()),
    }
}

#[cfg(all(test, not(feature = "replay")))]
mod tests {
    use super::*;

    #[test]
    fn inference_mode_without_the_feature_is_refused_clearly() {
        assert!(refuse_inference_mode(None).is_ok());
        assert!(
            refuse_inference_mode(Some("".into())).is_err(),
            "set, even empty, is refused"
        );
        let msg = refuse_inference_mode(Some("replay".into()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("LLAMA_STACK_TEST_INFERENCE_MODE") && msg.contains("--features replay"),
            "{msg}"
        );
    }
}
