//! The `admin:` section and `state_file` of `config.yaml` (control plane); a child of `load`.
//! Also what a running admin listener takes from a reloaded file ([`publish_reloaded_admin`]).
//!
//! Rules:
//! - `admin` absent or `null`: no admin listener. A map enables it; `listen` defaults to
//!   `127.0.0.1:8081` (a TCP address or `unix:/path`), `token` to none. An empty token (e.g.
//!   `"${DIRECTOR_ADMIN_TOKEN:-}"` with the variable unset) means none; a token shorter than 16
//!   characters is refused. Whether a listener off loopback has a token is checked at start-up,
//!   where `--demo` can still generate one. `max_connections` (default 64, at least 1) caps the
//!   admin connections served at once; the proxy's client timeouts and head limits apply too.
//! - `session_ttl`: how long a dashboard login lasts, 1m to 720h (default 12h).
//! - `max_event_streams`: concurrent `/api/v1/events` streams, at least 1 (default 16).
//! - `state_file`: a non-empty path (relative paths are relative to the working directory).
//! - `tls`: the listener serves HTTPS (`load/tls.rs` checks the section).
//! - On reload, the listener stays where it was bound and keeps its `tls` certificate list;
//!   the token, `session_ttl` and `max_event_streams` change, except that a reload never takes
//!   the token away from a listener off loopback (see [`reloaded_admin`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::Deserialize;
use serde_json::Value;

use super::super::address::parse_listen;
use super::super::duration::DurationValue;
use super::super::model::{AdminConfig, ListenAddr};
use super::{key_path, kind, Loader};

const ADMIN_KEYS: &[&str] = &[
    "listen",
    "token",
    "session_ttl",
    "max_event_streams",
    "max_connections",
    "tls",
];

/// Admin connections served at once when `admin.max_connections` is not given.
const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;

/// Shortest accepted admin token.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin listener when `admin.listen` is not given.
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";

/// `admin.session_ttl` when not given: a working day and then some.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Bounds of `admin.session_ttl`: shorter logs people out while they look; longer makes a
/// stolen cookie as good as the token.
const MIN_SESSION_TTL: Duration = Duration::from_secs(60);
const MAX_SESSION_TTL: Duration = Duration::from_secs(720 * 3600);

/// `admin.max_event_streams` when not given: a few dashboards open in a few browsers.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
    session_ttl: Option<DurationValue>,
    max_event_streams: Option<usize>,
    max_connections: Option<usize>,
    /// Checked in `load/tls.rs`.
    tls: Option<Value>,
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
        let session_ttl = raw.session_ttl.map_or(DEFAULT_SESSION_TTL, |d| d.0);
        let session_ttl = if (MIN_SESSION_TTL..=MAX_SESSION_TTL).contains(&session_ttl) {
            Some(session_ttl)
        } else {
            self.error(key_path(path, "session_ttl"), "must be between 1m and 720h");
            None
        };
        let mut at_least_one = |key: &str, value: usize| match value {
            0 => {
                self.error(key_path(path, key), "must be at least 1");
                None
            }
            n => Some(n),
        };
        let max_event_streams = at_least_one(
            "max_event_streams",
            raw.max_event_streams.unwrap_or(DEFAULT_MAX_EVENT_STREAMS),
        );
        let max_connections = at_least_one(
            "max_connections",
            raw.max_connections.unwrap_or(DEFAULT_ADMIN_MAX_CONNECTIONS),
        );
        let tls = self.tls(raw.tls, &key_path(path, "tls"));
        Some(Some(AdminConfig {
            listen: listen?,
            tls: tls?,
            token: token?,
            session_ttl: session_ttl?,
            max_event_streams: max_event_streams?,
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

/// The admin settings in force, `None` when there is no admin listener: stored at start-up,
/// swapped by the Director actor on every successful reload, read by every admin request.
pub type SharedAdmin = Arc<ArcSwapOption<AdminConfig>>;

/// The settings a running admin listener (`running`, `None` when none was started) takes from
/// a reloaded configuration whose `admin:` section is `new`, and a message for each part of
/// `new` that could not be applied.
///
/// - No listener was started: there is none now either (that needs a restart).
/// - `admin:` removed: the listener keeps running as it is, until a restart.
/// - `listen` changed: the listener stays where it was bound, until a restart.
/// - No token in `new` for a listener off loopback: the running token stays (start-up refuses
///   such a listener without one, and `--demo` may have made one up), so a reload never opens
///   it to other hosts.
/// - Anything else — the token, `session_ttl`, `max_event_streams` — is taken from `new`; a
///   new token ends every dashboard session signed with the old one.
pub fn reloaded_admin(
    running: Option<&AdminConfig>,
    new: Option<&AdminConfig>,
) -> (Option<AdminConfig>, Vec<String>) {
    let mut notes = Vec::new();
    let (running, new) = match (running, new) {
        (None, None) => return (None, notes),
        (None, Some(_)) => {
            notes.push("the admin listener starts only with a restart".to_owned());
            return (None, notes);
        }
        (Some(running), None) => {
            notes.push("admin: removed; the admin listener keeps its settings until a restart".to_owned());
            return (Some(running.clone()), notes);
        }
        (Some(running), Some(new)) => (running, new),
    };
    let mut next = new.clone();
    if new.listen != running.listen {
        notes.push(format!(
            "admin.listen: {} takes effect with a restart; the admin listener stays on {}",
            new.listen, running.listen
        ));
        next.listen = running.listen.clone();
    }
    if new.tls != running.tls {
        notes.push(
            "admin.tls: a changed certificate list takes effect with a restart (the certificate files \
             themselves reload when they change)"
                .to_owned(),
        );
        next.tls = running.tls.clone();
    }
    if next.token.is_none() && running.token.is_some() && !is_local(&next.listen) {
        notes.push(format!(
            "admin.token: the admin listener {} is reachable from other hosts, so it keeps its token",
            next.listen
        ));
        next.token = running.token.clone();
    }
    (Some(next), notes)
}

/// Applies [`reloaded_admin`] to `shared` and logs what was not applied.
pub fn publish_reloaded_admin(shared: &SharedAdmin, new: Option<&AdminConfig>) {
    let running = shared.load_full();
    let (next, notes) = reloaded_admin(running.as_deref(), new);
    for note in notes {
        log::warn!("reload: {note}");
    }
    shared.store(next.map(Arc::new));
}
