//! Configuration (control plane): the typed model of `config.yaml` and its loader.
//!
//! [`model`] holds the validated structs; [`load_file`] / [`load_str`] turn YAML into a
//! [`Config`] or into [`ConfigErrors`] listing every problem with its path. The value parsers
//! [`parse_backend_url`] and [`parse_duration`] are shared with the admin API, which accepts the
//! same syntax at runtime.

mod address;
mod backend_kinds;
mod backend_tls;
pub mod certificates;
pub mod discovery;
mod duration;
pub mod edit;
mod load;
pub mod model;
pub mod overlay;
pub mod overlay_merge;
mod size;
pub mod state_file;
pub mod topology_edit;
pub mod watcher;

pub use address::parse_backend_url;
pub use backend_tls::{accept_any_certificate, BackendTls, BackendTlsSettings, TlsSettingError};
pub use discovery::{DiscoveryConfig, DnsQuery, DnsRecordType, ResolverConfig};
pub use duration::parse_duration;
pub use load::admin::{
    is_local, publish_reloaded_admin, reloaded_admin, SharedAdmin, DEFAULT_MAX_EVENT_STREAMS,
    DEFAULT_SESSION_TTL, MIN_TOKEN_LEN,
};
pub use load::haproxy_compat::{
    check_password_hash, SharedHaproxyCompat, DEFAULT_MONITOR_URI, DEFAULT_REALM, DEFAULT_STATS_URI,
};
pub use load::{load_file, load_str, load_value, read_file, ConfigError, ConfigErrors, Document};
pub use model::*;
pub use size::parse_size;
