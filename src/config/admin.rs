//! The `admin:` section and `state_file` of `config.yaml` (control plane); a child of `load`.
//!
//! Rules:
//! - `admin` absent or `null`: no admin listener. A map enables it; `listen` defaults to
//!   `127.0.0.1:8081` (a TCP address or `unix:/path`), `token` to none. An empty token (e.g.
//!   `"${DIRECTOR_ADMIN_TOKEN:-}"` with the variable unset) means none; a token shorter than 16
//!   characters is refused. Whether a listener off loopback has a token is checked at start-up,
//!   where `--demo` can still generate one. `max_connections` (default 64, at least 1) caps the
//!   admin connections served at once; the proxy's client timeouts and head limits apply too.
//! - `state_file`: a non-empty path (relative paths are relative to the working directory).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::super::address::parse_listen;
use super::super::model::{AdminConfig, ListenAddr};
use super::{key_path, kind, Loader};

const ADMIN_KEYS: &[&str] = &["listen", "token", "max_connections"];

/// Admin connections served at once when `admin.max_connections` is not given.
const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;

/// Shortest accepted admin token.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin listener when `admin.listen` is not given.
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
    max_connections: Option<usize>,
}

impl Loader<'_> {
    /// `admin:` (optional); `Some(None)` when there is no admin listener.
    pub(super) fn admin(&mut self, value: Option<Value>) -> Option<Option<AdminConfig>> {
        let path = "admin";
        let value = match value {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let raw: RawAdmin = self.piece(Some(value), path, ADMIN_KEYS, "the admin section")?;
        let listen = match parse_listen(raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN)) {
            Ok(addr) => Some(addr),
            Err(message) => {
                self.error(key_path(path, "listen"), message);
                None
            }
        };
        let token = match raw.token {
            None => Some(None),
            Some(token) if token.is_empty() => Some(None),
            Some(token) if token.chars().count() < MIN_TOKEN_LEN => {
                let message = format!("must be at least {MIN_TOKEN_LEN} characters long");
                self.error(key_path(path, "token"), message);
                None
            }
            Some(token) if token.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                self.error(
                    key_path(path, "token"),
                    "must not contain spaces or control characters",
                );
                None
            }
            Some(token) => Some(Some(token)),
        };
        let max_connections = match raw.max_connections.unwrap_or(DEFAULT_ADMIN_MAX_CONNECTIONS) {
            0 => {
                self.error(key_path(path, "max_connections"), "must be at least 1");
                None
            }
            n => Some(n),
        };
        Some(Some(AdminConfig {
            listen: listen?,
            token: token?,
            max_connections: max_connections?,
        }))
    }

    /// `state_file` (optional).
    pub(super) fn state_file(&mut self, value: Option<Value>) -> Option<Option<PathBuf>> {
        match value {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) if !s.is_empty() => Some(Some(PathBuf::from(s))),
            Some(Value::String(_)) => {
                self.error("state_file", "must not be empty");
                None
            }
            Some(other) => {
                let found = kind(&other);
                self.error("state_file", format!("expected a file path, found {found}"));
                None
            }
        }
    }
}

/// Whether `addr` is reachable only from this host.
pub fn is_local(addr: &ListenAddr) -> bool {
    match addr {
        ListenAddr::Tcp(sa) => sa.ip().is_loopback(),
        ListenAddr::Unix(_) => true,
    }
}
