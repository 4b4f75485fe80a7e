//! How director reaches an `https://` backend (control plane): the settings as written
//! ([`BackendTlsSettings`]) and the rustls client configuration built from them once, when the
//! configuration is loaded ([`BackendTls`]), never per connection.
//!
//! Reads the CA bundle, client certificate and key files named in the settings; the system's
//! trusted roots are read once per process. Connecting is `transport`'s business.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// The ALPN protocol offered to backends: director speaks HTTP/1.1 to them.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A backend's `tls` keys (laid over its cluster's `backend_tls`), as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTlsSettings {
    /// `ca`: PEM file of the certificates the backend's must chain to, in place of the
    /// system's trusted roots.
    pub ca: Option<PathBuf>,
    /// `server_name`: the name sent as SNI and checked against the certificate, in place of
    /// the URL's host (an IP-literal URL sends no SNI and is checked against the address).
    pub server_name: Option<String>,
    /// `client_cert`, `client_key`: PEM files of the certificate chain and key director shows
    /// a backend that asks for one (mutual TLS); both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// `verify` (default true): `false` accepts any certificate (HAProxy's `verify none`).
    pub verify: bool,
}

/// A setting that could not be used: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettingError {
    /// `ca`, `server_name`, `client_cert`, `client_key`, or empty for the settings as a whole.
    pub key: &'static str,
    pub message: String,
}

impl TlsSettingError {
    fn new(key: &'static str, message: impl Into<String>) -> TlsSettingError {
        TlsSettingError {
            key,
            message: message.into(),
        }
    }
}

/// The TLS side of one `https://` backend: its settings, the server name it is checked against,
/// and the rustls client configuration (with its session-resumption cache) its connections
/// share.
///
/// Two are equal when their settings and the contents of the files they read are: a reload
/// after a CA or certificate file changed gives a different value, and so a new backend.
#[derive(Clone)]
pub struct BackendTls {
    pub settings: BackendTlsSettings,
    server_name: ServerName<'static>,
    client: Arc<ClientConfig>,
    /// SHA-256 over the files read, in a fixed order.
    files_digest: [u8; 32],
}

impl PartialEq for BackendTls {
    fn eq(&self, other: &BackendTls) -> bool {
        self.settings == other.settings && self.files_digest == other.files_digest
    }
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTls")
            .field("settings", &self.settings)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl BackendTls {
    /// Builds the client configuration for a backend at `host` (the URL's host, brackets
    /// removed) from `settings`, reading the files they name.
    pub fn build(settings: BackendTlsSettings, host: &str) -> Result<BackendTls, TlsSettingError> {
        let server_name = match &settings.server_name {
            Some(name) => ServerName::try_from(name.clone()).map_err(|_| {
                TlsSettingError::new("server_name", format!("`{name}` is not a DNS name or IP address"))
            })?,
            None => ServerName::try_from(host.to_owned()).map_err(|_| {
                TlsSettingError::new(
                    "server_name",
                    format!("the URL's host `{host}` is not a valid TLS server name; set `server_name`"),
                )
            })?,
        };
        let mut digest = Sha256::new();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSettingError::new("", e.to_string()))?;
        let builder = if !settings.verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(accept_any_certificate(provider))
        } else if let Some(ca) = &settings.ca {
            let pem = read("ca", ca, &mut digest)?;
            builder.with_root_certificates(ca_roots(ca, &pem)?)
        } else {
            builder.with_root_certificates(
                system_roots().map_err(|message| TlsSettingError::new("ca", message))?,
            )
        };
        let mut client = match (&settings.client_cert, &settings.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(TlsSettingError::new(
                    "client_key",
                    "`client_cert` needs a `client_key`",
                ))
            }
            (None, Some(_)) => {
                return Err(TlsSettingError::new(
                    "client_cert",
                    "`client_key` needs a `client_cert`",
                ))
            }
            (Some(cert_path), Some(key_path)) => {
                let pem = read("client_cert", cert_path, &mut digest)?;
                let chain = certificates("client_cert", cert_path, &pem)?;
                let pem = read("client_key", key_path, &mut digest)?;
                let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                    TlsSettingError::new(
                        "client_key",
                        format!("no PEM private key in {}: {e}", key_path.display()),
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    TlsSettingError::new("client_key", format!("not usable with `client_cert`: {e}"))
                })?
            }
        };
        client.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(BackendTls {
            settings,
            server_name,
            client: Arc::new(client),
            files_digest: digest.finalize().into(),
        })
    }

    /// The name the backend's certificate is checked against (and sent as SNI when it is a DNS
    /// name).
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// The client configuration its connections share.
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.client
    }
}

/// The contents of the file at `path` (setting `key`), added to `digest`.
fn read(key: &'static str, path: &Path, digest: &mut Sha256) -> Result<Vec<u8>, TlsSettingError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TlsSettingError::new(key, format!("cannot read {}: {e}", path.display())))?;
    digest.update(key.as_bytes());
    digest.update((bytes.len() as u64).to_le_bytes());
    digest.update(&bytes);
    Ok(bytes)
}

/// Every PEM certificate in `pem` (read from `path`); at least one.
fn certificates(
    key: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsSettingError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSettingError::new(key, format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        let message = format!("no PEM certificate (BEGIN CERTIFICATE) in {}", path.display());
        return Err(TlsSettingError::new(key, message));
    }
    Ok(certs)
}

/// The trust anchors of a `ca` bundle.
fn ca_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsSettingError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("ca", path, pem)? {
        roots.add(cert).map_err(|e| {
            TlsSettingError::new(
                "ca",
                format!("unusable CA certificate in {}: {e}", path.display()),
            )
        })?;
    }
    Ok(roots)
}

/// The system's trusted roots (`rustls-native-certs`, which honours `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`), read on first use and kept for the life of the process.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                log::warn!("system root certificates: {error}");
            }
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no system root certificates found; set `ca` to a PEM bundle".to_owned());
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// A verifier that accepts any server certificate for any name, checking only the handshake's
/// signatures: `verify: false`, and test clients that compare what was presented themselves.
pub fn accept_any_certificate(provider: Arc<CryptoProvider>) -> Arc<dyn ServerCertVerifier> {
    Arc::new(NoCertificateVerification(provider))
}

/// `verify: false`: any certificate is accepted for any name. The handshake's signatures are
/// still checked, so the peer holds the key of the certificate it showed; but anyone on the
/// path can show one.
#[derive(Debug)]
struct NoCertificateVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
