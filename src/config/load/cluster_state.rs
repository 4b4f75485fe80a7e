//! The `cluster_state:` section of `config.yaml` (control plane); a child of `load`.
//!
//! Rules:
//! - Absent or `null`: no shared state; runtime changes stay this replica's (the state file).
//! - A map with exactly one backend, `etcd`: `{ endpoints, prefix, lease_ttl, dial_timeout,
//!   replica_id }`.
//! - `endpoints`: a non-empty list of `http://host:port` base URLs of etcd's v3 JSON gateway
//!   (no path, no TLS: `https` is refused with a clear message).
//! - `prefix`: starts with `/`, no trailing `/`, no whitespace; replicas of one deployment
//!   share it (`/director/shop`), other deployments use another.
//! - `lease_ttl` (default 5s) between 2s and 1h: how long after its last renewal a replica that
//!   died still counts in the capacity split. `dial_timeout` (default 2s), greater than 0.
//! - `replica_id`: non-empty, no `/` or whitespace; by default `<host name>-<pid>`.
//! - Read at start-up only: a reload that changes this section keeps the one in force (the
//!   watch and lease belong to the running process) and logs that a restart applies it.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::super::duration::DurationValue;
use super::super::model::{ClusterStateConfig, EtcdConfig};
use super::{index_path, key_path, Loader};

const KEYS: &[&str] = &["etcd"];
const ETCD_KEYS: &[&str] = &["endpoints", "prefix", "lease_ttl", "dial_timeout", "replica_id"];

/// `cluster_state.etcd.lease_ttl` when not given.
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// Bounds of `lease_ttl`: etcd refuses leases under its minimum (about 1.5 s with the default
/// election timeout); an hour keeps a dead replica's share for too long already.
const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);
/// `cluster_state.etcd.dial_timeout` when not given.
const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    etcd: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEtcd {
    endpoints: Option<Vec<String>>,
    prefix: Option<String>,
    lease_ttl: Option<DurationValue>,
    dial_timeout: Option<DurationValue>,
    replica_id: Option<String>,
}

impl Loader<'_> {
    /// `cluster_state:` (optional).
    pub(super) fn cluster_state(&mut self, value: Option<Value>) -> Option<Option<ClusterStateConfig>> {
        let path = "cluster_state";
        if matches!(value, None | Some(Value::Null)) {
            return Some(None);
        }
        let raw: RawSection = self.piece(value, path, KEYS, "the cluster_state section")?;
        let etcd_path = key_path(path, "etcd");
        if matches!(raw.etcd, None | Some(Value::Null)) {
            self.error(etcd_path, "required: the etcd cluster to share the state through");
            return None;
        }
        let raw: RawEtcd = self.piece(raw.etcd, &etcd_path, ETCD_KEYS, "the etcd settings")?;
        let errors_before = self.errors.len();
        let endpoints = raw.endpoints.unwrap_or_default();
        if endpoints.is_empty() {
            self.error(
                key_path(&etcd_path, "endpoints"),
                "at least one endpoint is required",
            );
        }
        let mut checked = Vec::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            match check_endpoint(endpoint) {
                Ok(url) => checked.push(url),
                Err(message) => self.error(index_path(&key_path(&etcd_path, "endpoints"), i), message),
            }
        }
        let prefix = raw.prefix.unwrap_or_default();
        if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.chars().any(char::is_whitespace) {
            self.error(
                key_path(&etcd_path, "prefix"),
                "must start with `/`, not end with `/` and hold no spaces (e.g. /director/shop)",
            );
        }
        let lease_ttl = raw.lease_ttl.map_or(DEFAULT_LEASE_TTL, |d| d.0);
        if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&lease_ttl) {
            self.error(key_path(&etcd_path, "lease_ttl"), "must be between 2s and 1h");
        }
        let dial_timeout = self.positive(
            key_path(&etcd_path, "dial_timeout"),
            raw.dial_timeout,
            DEFAULT_DIAL_TIMEOUT,
        );
        if let Some(id) = &raw.replica_id {
            if id.is_empty() || id.contains('/') || id.chars().any(char::is_whitespace) {
                self.error(
                    key_path(&etcd_path, "replica_id"),
                    "must be non-empty, without `/` or spaces",
                );
            }
        }
        (self.errors.len() == errors_before).then_some(Some(ClusterStateConfig {
            etcd: EtcdConfig {
                endpoints: checked,
                prefix,
                lease_ttl,
                dial_timeout,
                replica_id: raw.replica_id,
            },
        }))
    }
}

/// An endpoint as `http://host:port` (no trailing `/`), or why it isn't one.
fn check_endpoint(text: &str) -> Result<String, String> {
    let rest = match text.strip_prefix("http://") {
        Some(rest) => rest.trim_end_matches('/'),
        None if text.starts_with("https://") => {
            return Err(
                "https is not supported: reach etcd's gateway over plain HTTP (a local \
                        proxy or a sidecar terminates TLS)"
                    .to_owned(),
            )
        }
        None => return Err("expected an `http://host:port` URL".to_owned()),
    };
    let valid = match rest.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    };
    if !valid {
        return Err("expected an `http://host:port` URL (with a port, without a path)".to_owned());
    }
    Ok(format!("http://{rest}"))
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    const BASE: &str = "proxy: { listen: [\"127.0.0.1:0\"] }\nclusters: {}\n";

    fn errors(section: &str) -> Vec<(String, String)> {
        match load_str(&format!("{BASE}{section}")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn a_full_section_loads_with_defaults() {
        let config = load_str(&format!(
            "{BASE}cluster_state: {{ etcd: {{ endpoints: [\"http://127.0.0.1:2379/\"], prefix: /director/shop }} }}\n"
        ))
        .expect("valid");
        let etcd = config.cluster_state.expect("set").etcd;
        assert_eq!(etcd.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(etcd.prefix, "/director/shop");
        assert_eq!(etcd.lease_ttl.as_secs(), 5);
        assert_eq!(etcd.dial_timeout.as_secs(), 2);
        assert!(load_str(BASE).expect("valid").cluster_state.is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let found = errors(
            "cluster_state: { etcd: { endpoints: [\"https://e:2379\", \"e\"], prefix: \"x/\", \
             lease_ttl: 1s, replica_id: \"a b\", colour: red } }\n",
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        for wanted in [
            "cluster_state.etcd.colour",
            "cluster_state.etcd.endpoints[0]",
            "cluster_state.etcd.endpoints[1]",
            "cluster_state.etcd.prefix",
            "cluster_state.etcd.lease_ttl",
            "cluster_state.etcd.replica_id",
        ] {
            assert!(paths.contains(&wanted), "{wanted} missing in {found:?}");
        }
        let missing = errors("cluster_state: {}\n");
        assert_eq!(missing[0].0, "cluster_state.etcd");
        let none = errors("cluster_state: { etcd: { prefix: /d } }\n");
        assert_eq!(none[0].0, "cluster_state.etcd.endpoints");
    }
}
