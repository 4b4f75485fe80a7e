//! Reading one configured TLS certificate from disk (control plane): a PEM certificate chain
//! and its PEM private key, checked to belong together, with the names (SAN, else CN) and the
//! expiry read from the end-entity certificate.
//!
//! Owns [`load_certificate`], used by the loader to validate `tls.certificates` entries and by
//! the TLS listeners (`listener::tls`) to build and reload what they serve. Runs off the
//! request path (start-up, reload, the certificate watcher's thread).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::ring;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::model::CertificateFiles;

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    pub key: Arc<CertifiedKey>,
    /// The DNS names it is for, lower-cased: its subject alternative names, or its subject's
    /// common name when it has none. Wildcards stay as written (`*.example.com`).
    pub names: Vec<String>,
    /// The end of its validity period.
    pub not_after: SystemTime,
}

/// Which configured file a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateField {
    Cert,
    Key,
}

impl CertificateField {
    /// The key of `tls.certificates[i]` it is written at.
    pub fn key(self) -> &'static str {
        match self {
            CertificateField::Cert => "cert",
            CertificateField::Key => "key",
        }
    }
}

/// A certificate that cannot be served, and which file is to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateError {
    pub field: CertificateField,
    pub message: String,
}

impl std::fmt::Display for CertificateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field.key(), self.message)
    }
}

/// Reads, parses and checks the certificate chain and private key of `files`.
pub fn load_certificate(files: &CertificateFiles) -> Result<LoadedCertificate, CertificateError> {
    let cert_error = |message: String| CertificateError {
        field: CertificateField::Cert,
        message,
    };
    let key_error = |message: String| CertificateError {
        field: CertificateField::Key,
        message,
    };
    let chain_pem = read(&files.cert).map_err(cert_error)?;
    let key_pem = read(&files.key).map_err(key_error)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            cert_error(format!(
                "{}: not a PEM certificate chain ({e})",
                files.cert.display()
            ))
        })?;
    let Some(leaf) = chain.first() else {
        return Err(cert_error(format!(
            "{}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            files.cert.display()
        )));
    };
    let (names, not_after) =
        leaf_facts(leaf).map_err(|e| cert_error(format!("{}: {e}", files.cert.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_error(format!("{}: not a PEM private key ({e})", files.key.display())))?;
    let key = CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_error(format!(
            "{} does not belong to the certificate in {}",
            files.key.display(),
            files.cert.display()
        )),
        other => key_error(format!("{}: unusable private key ({other})", files.key.display())),
    })?;
    Ok(LoadedCertificate {
        key: Arc::new(key),
        names,
        not_after,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{}: file not found", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })
}

/// The DNS names and the expiry of an end-entity certificate.
fn leaf_facts(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, SystemTime), String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let seconds = cert.validity().not_after.timestamp();
    let not_after = match u64::try_from(seconds) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => SystemTime::UNIX_EPOCH,
    };
    Ok((names, not_after))
}
