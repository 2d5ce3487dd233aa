//! Which certificate authorities the provider client trusts for `https://` providers and MCP
//! servers. This module is the one place that decides it ([`trust`]).
//!
//! - **The system's store**, always: on macOS and Windows the OS verifier (reqwest's
//!   `rustls-platform-verifier`); on Linux and other non-Apple Unixes the distribution's CA files
//!   under `/etc/ssl/certs` and the like, read here ([`system_roots`]).
//! - **An extra CA file**, when `SSL_CERT_FILE` names one ([`ca_file_from_env`], the only place
//!   the environment is read): PEM, one or more certificates, e.g. the CA of a self-hosted vLLM
//!   or of a corporate proxy. It is read and checked when the client is built, so a bad file
//!   stops the stack at start-up with a [`CaFileError`] naming the file.
//!
//! Why Linux reads its store here: there the platform verifier gets the system store from
//! `rustls-native-certs`, which loads `SSL_CERT_FILE` or `SSL_CERT_DIR`, when set, *instead of* the
//! system store (OpenSSL's meaning of those variables). With the platform verifier, setting
//! `SSL_CERT_FILE` to a private CA would silently drop every public CA. Reading the well-known
//! places ourselves and handing reqwest exactly "system store + extra file" keeps the extra CA an
//! addition, and leaves `SSL_CERT_DIR` without effect on every platform.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use support::file_stamp::FileStamp;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The variable naming an extra CA file (PEM) to trust besides the system's store.
pub const CA_FILE_VAR: &str = "SSL_CERT_FILE";

/// Why the extra CA file cannot be used. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file could not be read (missing, a directory, no permission, ...).
    #[error("cannot read the CA file {} ({CA_FILE_VAR}): {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has a broken PEM section (bad base64, a section that does not end, ...).
    #[error("the CA file {} ({CA_FILE_VAR}) is not valid PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's error.
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no `-----BEGIN CERTIFICATE-----` section (e.g. a DER file, or a key only).
    #[error(
        "the CA file {} ({CA_FILE_VAR}) holds no certificate: expected one or more PEM \
         '-----BEGIN CERTIFICATE-----' sections",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate section does not hold a certificate usable as a trust anchor.
    #[error(
        "certificate {index} of the CA file {} ({CA_FILE_VAR}) is not a usable CA certificate: {}",
        path.display(),
        anchor_fault(source)
    )]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Which certificate of the file, from 1.
        index: usize,
        /// Why rustls refused it.
        source: rustls::Error,
    },
    /// reqwest refused a certificate that rustls accepted (not expected with the rustls backend).
    #[error(
        "certificate {index} of the CA file {} ({CA_FILE_VAR}) was refused by the HTTP client: {source}",
        path.display()
    )]
    Rejected {
        /// The file.
        path: PathBuf,
        /// Which certificate of the file, from 1.
        index: usize,
        /// reqwest's error.
        source: reqwest::Error,
    },
}

/// Why rustls refused a certificate as a trust anchor, without its "invalid peer certificate"
/// wording (the certificate comes from a file, not a peer).
fn anchor_fault(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(fault) => format!("{fault}"),
        other => other.to_string(),
    }
}

/// The extra CA file named by `SSL_CERT_FILE`, if any. The only place the environment is read
/// for TLS; everything else takes the path as an argument.
pub fn ca_file_from_env() -> Option<PathBuf> {
    ca_file_from(std::env::var_os(CA_FILE_VAR))
}

/// The CA file a value of `SSL_CERT_FILE` names: none when unset or empty.
fn ca_file_from(value: Option<OsString>) -> Option<PathBuf> {
    value.filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The certificates of a PEM CA file, each checked to be usable as a trust anchor. Sections
/// other than certificates (e.g. comments between them) are skipped.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CaFileError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CaFileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    let mut check = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        check
            .add(cert.clone())
            .map_err(|source| CaFileError::BadCertificate {
                path: path.to_owned(),
                index: i + 1,
                source,
            })?;
    }
    Ok(certs)
}

/// `builder` set to trust the system's store, plus the CAs of `ca_file` when given (see the
/// module docs). A bad `ca_file` is an error here, before any request.
pub fn trust(
    builder: reqwest::ClientBuilder,
    ca_file: Option<&Path>,
) -> Result<reqwest::ClientBuilder, CaFileError> {
    let extra = match ca_file {
        Some(path) => extra_roots(path)?,
        None => Vec::new(),
    };
    Ok(with_system_roots(builder, extra))
}

/// The CAs of the extra CA file, as reqwest certificates: read and checked once a process while
/// the file keeps its stamp ([`FileStamp`]: a suite builds a client, and in process a stack, for
/// every test; reading and checking a bundle of 144 CAs took about 10 ms each time in a debug
/// build). A changed file is read again, one written in the last two seconds is not kept, and a
/// file that cannot be used is never kept.
fn extra_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    static LAST: std::sync::Mutex<Option<(PathBuf, FileStamp, Vec<reqwest::Certificate>)>> =
        std::sync::Mutex::new(None);
    let stamp = std::fs::metadata(path).ok().map(|m| FileStamp::of(&m));
    if let Some(stamp) = stamp
        && let Some((last_path, last_stamp, certs)) = &*support::sync::lock(&LAST)
        && last_path == path
        && *last_stamp == stamp
    {
        return Ok(certs.clone());
    }
    let certs = read_extra_roots(path)?;
    if let Some(stamp) = stamp.filter(FileStamp::is_settled) {
        *support::sync::lock(&LAST) = Some((path.to_owned(), stamp, certs.clone()));
    }
    Ok(certs)
}

/// The CAs of the extra CA file, read and checked, as reqwest certificates.
fn read_extra_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    let certs = read_ca_file(path)?;
    tracing::info!(
        "trusting {} extra CA certificate(s) from {} ({CA_FILE_VAR}) besides the system's store",
        certs.len(),
        path.display()
    );
    certs
        .iter()
        .enumerate()
        .map(|(i, der)| {
            reqwest::Certificate::from_der(der).map_err(|source| CaFileError::Rejected {
                path: path.to_owned(),
                index: i + 1,
                source,
            })
        })
        .collect()
}

/// Linux and other non-Apple Unixes: trust the system store read by [`system_roots`] and
/// `extra`, and nothing else.
#[cfg(all(unix, not(target_vendor = "apple"), not(target_os = "android")))]
fn with_system_roots(
    builder: reqwest::ClientBuilder,
    extra: Vec<reqwest::Certificate>,
) -> reqwest::ClientBuilder {
    // Read and parsed once a process: every stack (a test suite builds one a test) and every
    // provider client trusts the same system store, which takes tens of milliseconds to read.
    static SYSTEM: std::sync::LazyLock<Vec<reqwest::Certificate>> =
        std::sync::LazyLock::new(|| {
            system_roots()
                .into_iter()
                .filter_map(|der| {
                    reqwest::Certificate::from_der(&der)
                        .inspect_err(|e| tracing::warn!("a system CA certificate is ignored: {e}"))
                        .ok()
                })
                .collect()
        });
    builder.tls_certs_only(SYSTEM.iter().cloned().chain(extra))
}

/// macOS, Windows, Android: the platform verifier asks the OS (which does not read
/// `SSL_CERT_FILE`); `extra` is added to it.
#[cfg(not(all(unix, not(target_vendor = "apple"), not(target_os = "android"))))]
fn with_system_roots(
    builder: reqwest::ClientBuilder,
    extra: Vec<reqwest::Certificate>,
) -> reqwest::ClientBuilder {
    builder.tls_certs_merge(extra)
}

/// The system's CA certificates from the well-known directories of this platform
/// (`/etc/ssl/certs`, `/etc/pki/tls/certs`, ...; the bundles of Debian, RHEL, Alpine live there),
/// as the platform verifier reads them when `SSL_CERT_FILE` and `SSL_CERT_DIR` are unset (here
/// neither variable is looked at).
/// Certificates that are not usable trust anchors are left out, with a warning, as the platform
/// verifier does.
#[cfg(all(unix, not(target_vendor = "apple"), not(target_os = "android")))]
pub fn system_roots() -> Vec<CertificateDer<'static>> {
    let mut roots = Vec::new();
    let mut check = RootCertStore::empty();
    let mut ignored = 0;
    for dir in openssl_probe::candidate_cert_dirs() {
        let found = rustls_native_certs::load_certs_from_paths(None, Some(dir));
        for error in found.errors {
            tracing::warn!("reading the system CA store: {error}");
        }
        for cert in found.certs {
            if roots.contains(&cert) {
                continue;
            }
            match check.add(cert.clone()) {
                Ok(()) => roots.push(cert),
                Err(_) => ignored += 1,
            }
        }
    }
    if ignored > 0 {
        tracing::warn!("{ignored} system CA certificate(s) ignored: not usable as trust anchors");
    }
    if roots.is_empty() {
        tracing::warn!(
            "no system CA certificates found (/etc/ssl/certs, ...): https providers can be \
             verified only with a CA file named by {CA_FILE_VAR}"
        );
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_ca_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        let pem = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                        .expect("cert")
                        .cert
                        .pem()
                })
                .collect()
        };
        std::fs::write(&path, pem(1)).expect("write");
        assert_eq!(extra_roots(&path).expect("one CA").len(), 1);
        assert_eq!(extra_roots(&path).expect("the same CA").len(), 1);
        std::fs::write(&path, pem(2)).expect("rewrite");
        assert_eq!(extra_roots(&path).expect("two CAs").len(), 2);
        std::fs::write(&path, "not a certificate\n").expect("spoil");
        assert!(matches!(
            extra_roots(&path),
            Err(CaFileError::NoCertificate { .. })
        ));
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(extra_roots(&path), Err(CaFileError::Read { .. })));
    }

    #[test]
    fn an_unset_or_empty_variable_names_no_file() {
        assert_eq!(ca_file_from(None), None);
        assert_eq!(ca_file_from(Some("".into())), None);
        assert_eq!(
            ca_file_from(Some("/etc/ca.pem".into())),
            Some(PathBuf::from("/etc/ca.pem"))
        );
    }
}
