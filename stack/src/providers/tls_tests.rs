//! `https://` providers: a local OpenAI-compatible provider on 127.0.0.1 serving TLS with a
//! certificate of a CA made by the test, trusted through the CA-file mechanism of
//! [`super::tls`] (passed explicitly: no test here touches the process environment).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::http::{ClientSetupError, http_client_with_ca};
use super::tls::{CaFileError, read_ca_file};
use crate::testutil::{chat_reply, stack_with};
use crate::{RunConfig, StackClient};

/// The model the local provider lists and answers as.
const MODEL: &str = "tls-model";
/// What it answers.
const ANSWER: &str = "served over TLS";

/// A self-signed CA (`ca.pem`, holding an unrelated CA first and the test CA second, as bundles
/// do) and the server side of a leaf certificate it signed for 127.0.0.1 and localhost.
struct TestCa {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    fn new() -> Self {
        let (ca, ca_pem) = new_ca("llama-stack-rs test CA");
        let (_, other_pem) = new_ca("llama-stack-rs unrelated CA");

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("leaf key");
        let leaf = params.signed_by(&key, &ca).expect("leaf cert");

        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), format!("{other_pem}{ca_pem}")).expect("ca.pem");

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .expect("server config");
        Self {
            dir,
            server: Arc::new(server),
        }
    }

    /// The PEM file to trust.
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// A self-signed CA named `name`, and its certificate as PEM.
fn new_ca(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let pem = ca.pem();
    (ca, pem)
}

/// A TCP listener that serves TLS: each connection is accepted once its handshake is done;
/// a failed handshake (e.g. a client that does not trust the CA) is counted and skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    failed_handshakes: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(_) => {
                    self.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A running https provider: `GET /v1/models` and `POST /v1/chat/completions`, as a hosted
/// OpenAI-compatible provider answers them.
struct HttpsProvider {
    addr: SocketAddr,
    chats: Arc<AtomicUsize>,
    failed_handshakes: Arc<AtomicUsize>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsProvider {
    async fn start(ca: &TestCa) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(ca.server.clone()),
            failed_handshakes: failed_handshakes.clone(),
        };
        let chats = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .with_state(chats.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("https provider");
        });
        Self {
            addr,
            chats,
            failed_handshakes,
            stop,
            task,
        }
    }

    /// Its OpenAI base URL.
    fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}/v1", self.addr.port())
    }

    /// Stops it and waits until its port is closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the https provider stops within 10 s")
            .expect("https provider task");
        assert!(
            TcpStream::connect(self.addr).await.is_err(),
            "nothing listens on {} any more",
            self.addr
        );
    }
}

async fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": MODEL, "object": "model", "created": 1_700_000_000, "owned_by": "tls-test"}
    ]}))
}

async fn chat(State(chats): State<Arc<AtomicUsize>>, Json(body): Json<Value>) -> Json<Value> {
    chats.fetch_add(1, Ordering::SeqCst);
    let model = body["model"].as_str().unwrap_or("?");
    Json(chat_reply(model, ANSWER))
}

/// A run config with one `remote::openai` provider `tls` at `base_url` (with an API key, as a
/// hosted provider wants), its model also registered so that it is routed even when discovery
/// fails.
fn https_config(base_url: &str, storage: &Path) -> RunConfig {
    let text = format!(
        r#"
[[providers]]
provider_id = "tls"
provider_type = "remote::openai"
base_url = "{base_url}"
api_key = "sk-test-not-a-secret"

[[models]]
provider_id = "tls"
provider_model_id = "{MODEL}"
"#
    );
    let mut config = RunConfig::from_toml_str(&text, "https provider").expect("config");
    config.storage.db_path = storage.join("sql_store.db");
    config
}

fn chat_body() -> Value {
    json!({"model": format!("tls/{MODEL}"), "messages": [{"role": "user", "content": "hi"}]})
}

fn plain(http: reqwest::Client) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(http).build()
}

#[tokio::test]
async fn an_https_provider_is_reached_with_its_ca_trusted() {
    let ca = TestCa::new();
    let provider = HttpsProvider::start(&ca).await;
    let http = http_client_with_ca(Some(&ca.ca_file())).expect("client with the test CA");
    let stack = stack_with(
        https_config(&provider.base_url(), ca.dir.path()),
        plain(http),
    )
    .await;

    let ids: Vec<String> = stack
        .registry()
        .models()
        .iter()
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(ids, [format!("tls/{MODEL}")], "discovered over https");
    let answer = StackClient::library(stack)
        .chat_completion(chat_body())
        .await
        .expect("chat over https");
    assert_eq!(answer["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(provider.chats.load(Ordering::SeqCst), 1);
    assert_eq!(provider.failed_handshakes.load(Ordering::SeqCst), 0);
    provider.stop().await;
}

#[tokio::test]
async fn without_its_ca_an_https_provider_fails_with_a_certificate_error() {
    let ca = TestCa::new();
    let provider = HttpsProvider::start(&ca).await;
    // The system's store only: the test CA is in no system store.
    let http = http_client_with_ca(None).expect("client");
    let stack = stack_with(
        https_config(&provider.base_url(), ca.dir.path()),
        plain(http),
    )
    .await;

    let err = StackClient::library(stack)
        .chat_completion(chat_body())
        .await
        .expect_err("an untrusted certificate is refused");
    let message = err.to_string();
    assert!(
        message.contains("could not connect to provider 'tls'")
            && message.contains("invalid peer certificate")
            && message.contains("UnknownIssuer"),
        "{message}"
    );
    assert_eq!(
        provider.chats.load(Ordering::SeqCst),
        0,
        "no request got through"
    );
    assert!(provider.failed_handshakes.load(Ordering::SeqCst) >= 1);
    provider.stop().await;
}

#[cfg(feature = "replay")]
#[tokio::test]
async fn an_https_provider_records_then_replays_without_the_server() {
    use harness::recorder::{Mode, Store};

    use crate::testutil::recorded_stack_over;

    let ca = TestCa::new();
    let recordings = tempfile::tempdir().expect("tempdir");
    let provider = HttpsProvider::start(&ca).await;
    let config = https_config(&provider.base_url(), ca.dir.path());
    let http = || http_client_with_ca(Some(&ca.ca_file())).expect("client with the test CA");

    let recording =
        recorded_stack_over(Mode::Record, recordings.path(), config.clone(), http()).await;
    let recorded = StackClient::library(recording.clone())
        .chat_completion(chat_body())
        .await
        .expect("chat over https, recorded");
    assert_eq!(recorded["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(provider.chats.load(Ordering::SeqCst), 1);
    drop(recording);

    let store = Store::open(recordings.path()).expect("store");
    let rows = store.rows().expect("rows");
    let chat_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.endpoint == "/v1/chat/completions")
        .collect();
    assert_eq!(chat_rows.len(), 1, "{rows:#?}");
    assert_eq!(
        rows.iter().filter(|r| r.endpoint == "/v1/models").count(),
        1,
        "{rows:#?}"
    );
    let blob = store
        .get(&chat_rows[0].request_hash)
        .expect("read the recording")
        .expect("the chat recording");
    assert_eq!(
        blob.metadata.provider_base_url,
        format!("https://127.0.0.1:{}", provider.addr.port())
    );
    assert_eq!(
        blob.request
            .headers
            .get("authorization")
            .map(String::as_str),
        Some("<redacted>")
    );
    drop(store);

    provider.stop().await;
    let replaying = recorded_stack_over(Mode::Replay, recordings.path(), config, http()).await;
    let ids: Vec<String> = replaying
        .registry()
        .models()
        .iter()
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(ids, [format!("tls/{MODEL}")]);
    let replayed = StackClient::library(replaying)
        .chat_completion(chat_body())
        .await
        .expect("chat replayed with the https provider gone");
    assert_eq!(replayed, recorded);
}

/// A file `name` in `dir` holding `bytes`.
fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

/// The client setup error for `path`, checked to name it.
fn setup_error(path: &Path) -> (ClientSetupError, String) {
    let err = http_client_with_ca(Some(path)).expect_err("a bad CA file is refused");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("SSL_CERT_FILE"),
        "{message}"
    );
    (err, message)
}

#[test]
fn a_bad_ca_file_is_refused_naming_the_file_and_the_fault() {
    let dir = tempfile::tempdir().expect("tempdir");

    let (err, message) = setup_error(&dir.path().join("missing.pem"));
    assert!(
        matches!(err, ClientSetupError::CaFile(CaFileError::Read { .. })),
        "{err:?}"
    );
    let io = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io error is kept as the source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound, "{message}");

    let (err, _) = setup_error(dir.path());
    assert!(
        matches!(err, ClientSetupError::CaFile(CaFileError::Read { .. })),
        "a directory: {err:?}"
    );

    let der = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("cert")
        .cert;
    for (name, bytes) in [
        ("empty.pem", &b""[..]),
        ("text.pem", b"not a certificate\n"),
        ("cert.der", der.der().as_ref()),
        (
            "key.pem",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
    ] {
        let (err, message) = setup_error(&file(dir.path(), name, bytes));
        assert!(
            matches!(
                err,
                ClientSetupError::CaFile(CaFileError::NoCertificate { .. })
            ),
            "{name}: {err:?}"
        );
        assert!(message.contains("holds no certificate"), "{message}");
    }

    let unterminated = file(
        dir.path(),
        "unterminated.pem",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n",
    );
    let (err, message) = setup_error(&unterminated);
    assert!(
        matches!(err, ClientSetupError::CaFile(CaFileError::Pem { .. })),
        "{err:?}"
    );
    assert!(message.contains("not valid PEM"), "{message}");

    let garbage = file(
        dir.path(),
        "garbage.pem",
        format!(
            "{}-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
            der.pem()
        )
        .as_bytes(),
    );
    let (err, message) = setup_error(&garbage);
    assert!(
        matches!(
            err,
            ClientSetupError::CaFile(CaFileError::BadCertificate { index: 2, .. })
        ),
        "{err:?}"
    );
    assert!(
        message.contains("certificate 2 of the CA file"),
        "{message}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "rustls' error is kept"
    );
}

#[test]
fn a_ca_file_may_hold_several_certificates() {
    let ca = TestCa::new();
    assert_eq!(read_ca_file(&ca.ca_file()).expect("two CAs").len(), 2);
}

#[cfg(all(unix, not(target_vendor = "apple"), not(target_os = "android")))]
#[test]
fn the_system_store_is_read_from_its_own_places() {
    // Where this machine has Debian's bundle, every CA of it is in the store the client trusts
    // next to an extra CA file.
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !bundle.exists() {
        return;
    }
    let system = super::tls::system_roots();
    let bundled = read_ca_file(bundle).expect("the system bundle");
    assert!(!bundled.is_empty());
    let missing = bundled.iter().filter(|c| !system.contains(c)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} bundled CAs missing",
        bundled.len()
    );
}
