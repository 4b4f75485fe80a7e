//! Backend discovery by DNS in `config.yaml` (control plane): a backend entry's `discover:`
//! and the global `resolver:` section; a child of `load`.
//!
//! Rules:
//! - `discover: { name, type, port, protocol, min_interval, max_interval, total_capacity,
//!   priority_roles }` stands in a `backends:` entry instead of `url`; the entry's `capacity`,
//!   `role`, `enabled`, `fastcgi` and `health` are the template of every backend found.
//! - `name`: a DNS name (letters, digits, `_`, `-`, `.`; a trailing dot makes it absolute).
//! - `type`: `a` (default), `aaaa` or `srv`. A/AAAA need `port`; SRV records carry their own
//!   port, so `port` is refused there, and so is the entry's `role` (priorities give roles).
//! - `protocol`: `http` (default) or `fastcgi` (which needs a script mapping, like a
//!   `fastcgi://` backend).
//! - `min_interval` (default 1s) > 0, `max_interval` (default 30s) >= `min_interval`: the
//!   bounds the record TTL is clamped to.
//! - `total_capacity` (> 0) and `priority_roles` (a non-empty list of roles) only with `srv`.
//! - `resolver: { nameservers, timeout, attempts }`: `nameservers` a list of `IP` or
//!   `IP:PORT` (`[v6]:PORT`); empty or absent = `/etc/resolv.conf`. `timeout` > 0 (default
//!   2s), `attempts` >= 1 (default 2).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::super::discovery::{
    DiscoveryConfig, DnsQuery, DnsRecordType, ResolverConfig, DEFAULT_MAX_INTERVAL, DEFAULT_MIN_INTERVAL,
    DEFAULT_PRIORITY_ROLES,
};
use super::super::duration::DurationValue;
use super::super::model::{FastCgiConfig, HealthConfig, Protocol, Role};
use super::MISSING;
use super::{index_path, key_path, Loader};

const DISCOVER_KEYS: &[&str] = &[
    "name",
    "type",
    "port",
    "protocol",
    "min_interval",
    "max_interval",
    "total_capacity",
    "priority_roles",
];
const RESOLVER_KEYS: &[&str] = &["nameservers", "timeout", "attempts"];

const RECORD_TYPES: &[(&str, DnsRecordType)] = &[
    ("a", DnsRecordType::A),
    ("aaaa", DnsRecordType::Aaaa),
    ("srv", DnsRecordType::Srv),
];
const PROTOCOLS: &[(&str, Protocol)] = &[("http", Protocol::Http), ("fastcgi", Protocol::FastCgi)];
const ROLES: &[(&str, Role)] = &[
    ("active", Role::Active),
    ("standby", Role::Standby),
    ("backup", Role::Backup),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscover {
    name: Option<String>,
    #[serde(rename = "type")]
    record: Option<String>,
    port: Option<u16>,
    protocol: Option<String>,
    min_interval: Option<DurationValue>,
    max_interval: Option<DurationValue>,
    total_capacity: Option<u32>,
    priority_roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResolver {
    nameservers: Option<Vec<String>>,
    timeout: Option<DurationValue>,
    attempts: Option<usize>,
}

/// A checked `discover:` map, waiting for the rest of its entry.
pub(super) struct DiscoverSection {
    pub(super) query: DnsQuery,
    pub(super) protocol: Protocol,
    min_interval: Duration,
    max_interval: Duration,
    total_capacity: Option<u32>,
    priority_roles: Vec<Role>,
}

/// The entry's keys besides `discover`: what every discovered backend gets.
pub(super) struct DiscoveryTemplate {
    pub(super) name: String,
    pub(super) capacity: u32,
    pub(super) role: Role,
    pub(super) enabled: bool,
    pub(super) fastcgi: Option<FastCgiConfig>,
    pub(super) health: Option<HealthConfig>,
    pub(super) terminate_protection: bool,
}

impl DiscoverSection {
    /// The whole entry (its `position` is set by the caller, who counts the backends).
    pub(super) fn entry(self, t: DiscoveryTemplate) -> DiscoveryConfig {
        DiscoveryConfig {
            name: t.name,
            position: 0,
            query: self.query,
            protocol: self.protocol,
            min_interval: self.min_interval,
            max_interval: self.max_interval,
            total_capacity: self.total_capacity,
            priority_roles: self.priority_roles,
            capacity: t.capacity,
            role: t.role,
            enabled: t.enabled,
            fastcgi: t.fastcgi,
            health: t.health,
            terminate_protection: t.terminate_protection,
        }
    }
}

/// Whether `name` may be asked of DNS: labels of letters, digits, `_` and `-`, a trailing
/// dot allowed.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// A nameserver: `IP`, `IP:PORT` or `[v6]:PORT`; port 53 when none is given.
fn nameserver(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
        .filter(|sa| sa.port() != 0)
}

impl Loader<'_> {
    /// A backend entry's `discover:` map at `path`.
    pub(super) fn discover(&mut self, value: Value, path: &str) -> Option<DiscoverSection> {
        let raw: RawDiscover = self.piece(Some(value), path, DISCOVER_KEYS, "a `discover:` map")?;
        let mut ok = true;
        let name = match raw.name {
            None => {
                self.error(key_path(path, "name"), MISSING);
                None
            }
            Some(name) if !is_dns_name(&name) => {
                self.error(key_path(path, "name"), format!("`{name}` is not a DNS name"));
                None
            }
            Some(name) => Some(name),
        };
        let record = self.choice(
            key_path(path, "type"),
            raw.record,
            DnsRecordType::A,
            RECORD_TYPES,
            "record type",
        );
        let protocol = self.choice(
            key_path(path, "protocol"),
            raw.protocol,
            Protocol::Http,
            PROTOCOLS,
            "protocol",
        );
        let is_srv = record == Some(DnsRecordType::Srv);
        match (record, raw.port) {
            (Some(DnsRecordType::Srv), Some(_)) => {
                self.error(
                    key_path(path, "port"),
                    "SRV records carry their own port; leave `port` out",
                );
                ok = false;
            }
            (Some(DnsRecordType::A | DnsRecordType::Aaaa), None) => {
                self.error(key_path(path, "port"), "required with `type: a` and `type: aaaa`");
                ok = false;
            }
            (_, Some(0)) => {
                self.error(key_path(path, "port"), "must be 1..=65535");
                ok = false;
            }
            _ => {}
        }
        let min_interval = self.positive(
            key_path(path, "min_interval"),
            raw.min_interval,
            DEFAULT_MIN_INTERVAL,
        );
        let max_interval = raw
            .max_interval
            .map_or(DEFAULT_MAX_INTERVAL.max(min_interval), |d| d.0);
        if max_interval < min_interval {
            self.error(
                key_path(path, "max_interval"),
                "must not be less than `min_interval`",
            );
            ok = false;
        }
        if raw.total_capacity.is_some() && !is_srv {
            self.error(
                key_path(path, "total_capacity"),
                "only with `type: srv` (weights share it)",
            );
            ok = false;
        }
        if raw.total_capacity == Some(0) {
            self.error(key_path(path, "total_capacity"), "must be greater than 0");
            ok = false;
        }
        let priority_roles = match raw.priority_roles {
            None => DEFAULT_PRIORITY_ROLES.to_vec(),
            Some(_) if !is_srv => {
                self.error(key_path(path, "priority_roles"), "only with `type: srv`");
                ok = false;
                Vec::new()
            }
            Some(list) if list.is_empty() => {
                self.error(key_path(path, "priority_roles"), "must name at least one role");
                ok = false;
                Vec::new()
            }
            Some(list) => {
                let at = key_path(path, "priority_roles");
                let roles: Vec<Option<Role>> = list
                    .into_iter()
                    .enumerate()
                    .map(|(i, role)| self.choice(index_path(&at, i), Some(role), Role::Active, ROLES, "role"))
                    .collect();
                roles
                    .into_iter()
                    .collect::<Option<Vec<Role>>>()
                    .unwrap_or_else(|| {
                        ok = false;
                        Vec::new()
                    })
            }
        };
        let query = DnsQuery {
            name: name?,
            record: record?,
            port: raw.port,
        };
        (ok && !min_interval.is_zero()).then_some(DiscoverSection {
            query,
            protocol: protocol?,
            min_interval,
            max_interval,
            total_capacity: raw.total_capacity,
            priority_roles,
        })
    }

    /// `resolver:` (optional).
    pub(super) fn resolver(&mut self, value: Option<Value>) -> Option<ResolverConfig> {
        let path = "resolver";
        if matches!(value, None | Some(Value::Null)) {
            return Some(ResolverConfig::default());
        }
        let raw: RawResolver = self.piece(value, path, RESOLVER_KEYS, "the resolver section")?;
        let defaults = ResolverConfig::default();
        let mut ok = true;
        let mut nameservers = Vec::new();
        for (i, text) in raw.nameservers.unwrap_or_default().iter().enumerate() {
            match nameserver(text) {
                Some(sa) => nameservers.push(sa),
                None => {
                    let message = format!("`{text}` is not an address (IP, IP:PORT or [IPv6]:PORT)");
                    self.error(index_path(&key_path(path, "nameservers"), i), message);
                    ok = false;
                }
            }
        }
        let timeout = self.positive(key_path(path, "timeout"), raw.timeout, defaults.timeout);
        let attempts = raw.attempts.unwrap_or(defaults.attempts);
        if attempts == 0 {
            self.error(key_path(path, "attempts"), "must be at least 1");
            ok = false;
        }
        (ok && !timeout.is_zero()).then_some(ResolverConfig {
            nameservers,
            timeout,
            attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_nameservers() {
        assert!(is_dns_name("app.default.svc.cluster.local"));
        assert!(is_dns_name("_http._tcp.app.example."));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("a b"));
        assert!(!is_dns_name("."));
        assert_eq!(
            nameserver("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(nameserver("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(nameserver("[::1]:5353"), Some("[::1]:5353".parse().unwrap()));
        assert_eq!(nameserver("dns.example:53"), None);
        assert_eq!(nameserver("127.0.0.1:0"), None);
    }
}
