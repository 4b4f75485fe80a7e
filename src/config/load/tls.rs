//! What a listener's TLS settings mean (control plane): a `proxy.listen` entry written as a map
//! (`{ address, tls, redirect_to_https, hsts }`), the `tls:` section shared with `admin.tls`,
//! and `hsts:`.
//!
//! - `tls: { certificates: [{ cert: a.pem, key: a.key }, ...] }` needs at least one certificate;
//!   each is read and checked here (file found, PEM parses, the key belongs to the
//!   certificate), so a bad one is an error at `...tls.certificates[i].cert` or `.key`.
//! - `redirect_to_https: true | <port>` only on a plain listener; `hsts` only on a TLS one.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::super::address::parse_listen;
use super::super::certificates::load_certificate;
use super::super::duration::DurationValue;
use super::super::model::{CertificateFiles, HstsConfig, ListenerConfig, TlsConfig};
use super::MISSING;
use super::{index_path, key_path, kind, Loader};

const LISTENER_KEYS: &[&str] = &["address", "tls", "redirect_to_https", "hsts"];
const TLS_KEYS: &[&str] = &["certificates"];
const CERTIFICATE_KEYS: &[&str] = &["cert", "key"];
const HSTS_KEYS: &[&str] = &["max_age", "include_subdomains", "preload"];

/// `hsts.max_age` when not given: a year, what HSTS preload lists ask for.
const DEFAULT_HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The port `redirect_to_https: true` sends clients to.
const HTTPS_PORT: u16 = 443;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    address: Option<String>,
    tls: Option<Value>,
    /// `true`, `false` or a port.
    redirect_to_https: Option<Value>,
    hsts: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificates: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHsts {
    max_age: Option<DurationValue>,
    include_subdomains: Option<bool>,
    preload: Option<bool>,
}

impl Loader<'_> {
    /// A `proxy.listen` entry written as a map.
    pub(super) fn listener_entry(&mut self, value: Value, path: &str) -> Option<ListenerConfig> {
        let raw: RawListener = self.piece(Some(value), path, LISTENER_KEYS, "a listener")?;
        let address = match raw.address.as_deref().map(parse_listen) {
            None => {
                self.error(key_path(path, "address"), MISSING);
                None
            }
            Some(Ok(address)) => Some(address),
            Some(Err(message)) => {
                self.error(key_path(path, "address"), message);
                None
            }
        };
        let tls = self.tls(raw.tls, &key_path(path, "tls"));
        let redirect_path = key_path(path, "redirect_to_https");
        let redirect_to_https = match raw.redirect_to_https {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Some(None),
            Some(Value::Bool(true)) => Some(Some(HTTPS_PORT)),
            Some(Value::Number(n)) => match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(port) if port > 0 => Some(Some(port)),
                _ => {
                    self.error(redirect_path.clone(), "expected a port between 1 and 65535");
                    None
                }
            },
            Some(other) => {
                let found = kind(&other);
                self.error(
                    redirect_path.clone(),
                    format!("expected true, false or the HTTPS port, found {found}"),
                );
                None
            }
        };
        let hsts = self.hsts(raw.hsts, &key_path(path, "hsts"));
        let (tls, redirect_to_https, hsts) = (tls?, redirect_to_https?, hsts?);
        if tls.is_some() && redirect_to_https.is_some() {
            self.error(redirect_path, "only for a plain listener (this one has tls)");
            return None;
        }
        if tls.is_none() && hsts.is_some() {
            self.error(key_path(path, "hsts"), "only for a listener with tls");
            return None;
        }
        Some(ListenerConfig {
            address: address?,
            tls,
            redirect_to_https,
            hsts,
        })
    }

    /// `tls:` of a listener (optional): every certificate is read and checked.
    pub(super) fn tls(&mut self, value: Option<Value>, path: &str) -> Option<Option<TlsConfig>> {
        if value.as_ref().is_none_or(Value::is_null) {
            return Some(None);
        }
        let raw: RawTls = self.piece(value, path, TLS_KEYS, "the tls section")?;
        let list_path = key_path(path, "certificates");
        let items = match raw.certificates {
            None => {
                self.error(list_path, MISSING);
                return None;
            }
            Some(items) if items.is_empty() => {
                self.error(list_path, "must list at least one certificate");
                return None;
            }
            Some(items) => items,
        };
        let mut certificates = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.into_iter().enumerate() {
            let files = self.certificate(item, &index_path(&list_path, i));
            match (files, certificates.as_mut()) {
                (Some(files), Some(list)) => list.push(files),
                _ => certificates = None,
            }
        }
        Some(Some(TlsConfig {
            certificates: certificates?,
        }))
    }

    /// One `{ cert, key }`, loaded to check it.
    fn certificate(&mut self, value: Value, path: &str) -> Option<CertificateFiles> {
        let raw: RawCertificate = self.piece(Some(value), path, CERTIFICATE_KEYS, "a certificate")?;
        let mut file = |key: &str, value: Option<String>| match value {
            Some(file) if !file.is_empty() => Some(PathBuf::from(file)),
            _ => {
                self.error(key_path(path, key), MISSING);
                None
            }
        };
        let cert = file("cert", raw.cert);
        let key = file("key", raw.key);
        let files = CertificateFiles {
            cert: cert?,
            key: key?,
        };
        match load_certificate(&files) {
            Ok(_) => Some(files),
            Err(e) => {
                self.error(key_path(path, e.field.key()), e.message);
                None
            }
        }
    }

    /// `hsts:` (optional).
    fn hsts(&mut self, value: Option<Value>, path: &str) -> Option<Option<HstsConfig>> {
        if value.as_ref().is_none_or(Value::is_null) {
            return Some(None);
        }
        let raw: RawHsts = self.piece(value, path, HSTS_KEYS, "the hsts section")?;
        Some(Some(HstsConfig {
            max_age: raw.max_age.map_or(DEFAULT_HSTS_MAX_AGE, |d| d.0),
            include_subdomains: raw.include_subdomains.unwrap_or(false),
            preload: raw.preload.unwrap_or(false),
        }))
    }
}
