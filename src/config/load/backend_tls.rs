//! How `https://` backends are reached, in `config.yaml` (control plane); a child of `load`.
//!
//! Rules:
//! - a cluster's `backend_tls` holds defaults for its `https://` backends; a backend's own `tls`
//!   keys are laid over them, key by key; a route to a single `https://` address has its own
//!   `tls`. Each is `{ ca, server_name, client_cert, client_key, verify }`, every key optional;
//! - `ca`, `client_cert` and `client_key` are absolute paths of PEM files, read (and checked)
//!   whenever the configuration is loaded; `client_cert` and `client_key` go together;
//! - `tls` on anything but an `https://` URL is an error; `backend_tls` on a cluster without
//!   `https://` backends is checked and unused.
//!
//! A file that cannot be read or parsed is reported at the key that names it, in the section
//! that set it (the backend's `tls` or the cluster's `backend_tls`).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::super::backend_tls::{BackendTls, BackendTlsSettings};
use super::super::model::{BackendUrl, Endpoint};
use super::fastcgi::absolute_path_problem;
use super::{key_path, Loader};

const TLS_KEYS: &[&str] = &["ca", "server_name", "client_cert", "client_key", "verify"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<String>,
    server_name: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    verify: Option<bool>,
}

/// A `tls` or `backend_tls` section whose keys passed their own checks, and where it was
/// written.
pub(super) struct TlsSection {
    raw: RawTls,
    path: String,
}

impl TlsSection {
    /// Which key holds which string, for the key-by-key merge.
    fn text(&self, key: &str) -> Option<&String> {
        match key {
            "ca" => self.raw.ca.as_ref(),
            "server_name" => self.raw.server_name.as_ref(),
            "client_cert" => self.raw.client_cert.as_ref(),
            "client_key" => self.raw.client_key.as_ref(),
            _ => None,
        }
    }
}

/// The first of `sections` (the most specific first) that sets `key`.
fn set_by<'a>(sections: &[Option<&'a TlsSection>], key: &str) -> Option<&'a TlsSection> {
    sections.iter().flatten().copied().find(|s| match key {
        "verify" => s.raw.verify.is_some(),
        _ => s.text(key).is_some(),
    })
}

impl Loader<'_> {
    /// A `tls` or `backend_tls` section (optional) at `path`: `Some(None)` when absent or
    /// `null`, `None` when invalid (reported).
    pub(super) fn tls_section(&mut self, value: Option<Value>, path: &str) -> Option<Option<TlsSection>> {
        let value = match value {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let what = "`{ ca, server_name, client_cert, client_key, verify }`";
        let raw: RawTls = self.piece(Some(value), path, TLS_KEYS, what)?;
        let mut valid = true;
        for (key, file) in [
            ("ca", &raw.ca),
            ("client_cert", &raw.client_cert),
            ("client_key", &raw.client_key),
        ] {
            if let Some(problem) = file.as_deref().and_then(absolute_path_problem) {
                self.error(key_path(path, key), problem);
                valid = false;
            }
        }
        if raw.server_name.as_deref() == Some("") {
            self.error(key_path(path, "server_name"), "must not be empty");
            valid = false;
        }
        valid.then_some(Some(TlsSection {
            raw,
            path: path.to_owned(),
        }))
    }

    /// The TLS side of the backend (or road-warrior route) at `path` whose key `url_key` holds
    /// `url`: its own `tls` laid over `defaults` (its cluster's `backend_tls`), built.
    /// `Some(None)` for a URL that is not `https://`; `None` when something is wrong (reported),
    /// or when `defaults` is `None` (an invalid cluster section, reported there).
    pub(super) fn backend_tls(
        &mut self,
        url: &BackendUrl,
        own: Option<&TlsSection>,
        defaults: Option<Option<&TlsSection>>,
        path: &str,
        url_key: &str,
    ) -> Option<Option<BackendTls>> {
        if !url.tls {
            if own.is_some() {
                let message = "`tls` applies to an https:// URL only";
                self.error(key_path(path, "tls"), message);
                return None;
            }
            return Some(None);
        }
        let Endpoint::Tcp { host, .. } = &url.endpoint else {
            self.error(key_path(path, url_key), "an https:// URL needs a host");
            return None;
        };
        let sections = [own, defaults?];
        let text = |key: &str| set_by(&sections, key).and_then(|s| s.text(key)).cloned();
        let settings = BackendTlsSettings {
            ca: text("ca").map(PathBuf::from),
            server_name: text("server_name"),
            client_cert: text("client_cert").map(PathBuf::from),
            client_key: text("client_key").map(PathBuf::from),
            verify: set_by(&sections, "verify")
                .and_then(|s| s.raw.verify)
                .unwrap_or(true),
        };
        match BackendTls::build(settings, host) {
            Ok(tls) => Some(Some(tls)),
            Err(e) => {
                let at = match set_by(&sections, e.key) {
                    Some(section) => key_path(&section.path, e.key),
                    // Only the URL's host can be wrong without a key saying so.
                    None if e.key == "server_name" => key_path(path, url_key),
                    None => key_path(path, "tls"),
                };
                self.error(at, e.message);
                None
            }
        }
    }
}
