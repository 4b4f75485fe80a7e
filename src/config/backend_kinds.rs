//! The settings a backend shares with the discovery entries that stand for many (control
//! plane, pure data): its protocol, role, FastCGI script mapping and health checks. Apart from
//! `model` so that `discovery` and `model` both build on them without depending on each other.

use std::path::PathBuf;
use std::time::Duration;

/// `fastcgi:` of a cluster or a backend: where `SCRIPT_FILENAME` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastCgiConfig {
    /// `document_root`: an absolute directory (`DOCUMENT_ROOT`).
    pub document_root: PathBuf,
    /// `script`: a front controller every request runs (absolute, or relative to the document
    /// root, resolved at load time). Without it the script is document root + request path.
    pub script: Option<PathBuf>,
}

/// `health:` of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// `mode` (default `paranoid`).
    pub mode: HealthMode,
    /// `interval` between probes (default 2s), > 0.
    pub interval: Duration,
    /// `timeout` of one probe: connect, send, and read the response head (default 1s), > 0.
    pub timeout: Duration,
    /// `rise` (default 2): consecutive successes to come online, >= 1.
    pub rise: u32,
    /// `fall` (default 3): consecutive failures to go offline, >= 1.
    pub fall: u32,
    /// `path` of the probe request (default `/`), starts with `/` (a query is allowed).
    pub path: String,
    /// `host`: the probe's `Host` header (default: the backend's address).
    pub host: Option<String>,
    /// `expect`: accepted status codes (100..=599); empty (the default) accepts 2xx and 3xx.
    pub expect: Vec<u16>,
    /// `initial` (default `online`): the state before the first probe.
    pub initial: InitialHealth,
    /// `fcgi_script_filename`: `SCRIPT_FILENAME` of probes to FastCGI backends (default: the
    /// cluster's mapping of `path`).
    pub fcgi_script_filename: Option<PathBuf>,
}

/// `health.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthMode {
    /// `lazy`: probe only backends that are offline.
    Lazy,
    /// `opportunistic`: also online backends idle for an interval; a probe takes a slot.
    Opportunistic,
    /// `paranoid`: probe always.
    Paranoid,
}

/// `health.initial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialHealth {
    Online,
    Offline,
}

/// Backend role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Active,
    /// Overflow: used when every active backend is full.
    Standby,
    /// Failover: used only when no active or standby backend is available.
    Backup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    FastCgi,
}
