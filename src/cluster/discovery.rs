//! Backend discovery by DNS, the pure part (control plane): what a resolved answer means —
//! which backends a `discover:` entry stands for (names, addresses, roles, capacities), how
//! they take their place in the cluster's backend list, and when the name is asked again.
//! The asking is done by [`super::discovery_actor`]; the Director actor keeps the last good
//! answer of each entry and expands its clusters with [`expand`] before applying them.
//!
//! Mapping:
//! - a discovered backend is named `<entry>-<ip>-<port>` (an IPv6 address with `_` for `:`),
//!   so an address keeps its backend — health, counters, connections — across answers,
//!   reloads and the order records come in;
//! - A/AAAA targets get the entry's `capacity` and `role`;
//! - SRV: the lowest priority present gets `priority_roles[0]`, the next `priority_roles[1]`,
//!   ... (the last role for the rest); with `total_capacity`, the targets of one priority share
//!   it by their weights (largest remainder, at least 1 each; all weights 0 share it evenly),
//!   else each gets the entry's `capacity`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::{BackendConfig, BackendUrl, ClusterConfig, DiscoveryConfig, Endpoint, Protocol, Role};

/// One address an answer names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    /// SRV priority and weight; `None` for A/AAAA.
    pub srv: Option<SrvRank>,
    pub ip: IpAddr,
    pub port: u16,
}

/// An SRV record's priority and weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SrvRank {
    pub priority: u16,
    pub weight: u16,
}

/// The deterministic name of the backend entry `entry` found at `ip`:`port`.
pub fn backend_name(entry: &str, ip: IpAddr, port: u16) -> String {
    let ip = ip.to_string().replace(':', "_");
    format!("{entry}-{ip}-{port}")
}

/// The backends `targets` stand for under `entry`, in a stable order (priority, address).
pub fn discovered_backends(entry: &DiscoveryConfig, targets: &[Target]) -> Vec<BackendConfig> {
    let mut targets = targets.to_vec();
    targets.sort();
    targets.dedup_by(|a, b| (a.ip, a.port) == (b.ip, b.port));
    let mut priorities: Vec<u16> = targets.iter().filter_map(|t| t.srv.map(|s| s.priority)).collect();
    priorities.dedup();
    let capacities = capacities(entry, &targets);
    targets
        .iter()
        .zip(capacities)
        .map(|(target, capacity)| {
            let role = match target.srv {
                None => entry.role,
                Some(rank) => {
                    let level = priorities.iter().position(|p| *p == rank.priority).unwrap_or(0);
                    let roles = &entry.priority_roles;
                    roles.get(level).or(roles.last()).copied().unwrap_or(Role::Active)
                }
            };
            BackendConfig {
                name: backend_name(&entry.name, target.ip, target.port),
                url: url_of(entry.protocol, target.ip, target.port),
                capacity,
                role,
                enabled: entry.enabled,
                fastcgi: entry.fastcgi.clone(),
                health: entry.health.clone(),
                terminate_protection: false,
                discovered_by: Some(entry.name.clone()),
                tls: None,
            }
        })
        .collect()
}

/// Each target's capacity (targets sorted by priority).
fn capacities(entry: &DiscoveryConfig, targets: &[Target]) -> Vec<u32> {
    let Some(total) = entry.total_capacity else {
        return vec![entry.capacity; targets.len()];
    };
    let mut out = Vec::with_capacity(targets.len());
    for level in targets.chunk_by(|a, b| a.srv.map(|s| s.priority) == b.srv.map(|s| s.priority)) {
        let weights: Vec<u64> = level
            .iter()
            .map(|t| t.srv.map_or(0, |s| u64::from(s.weight)))
            .collect();
        out.extend(share(total, &weights));
    }
    out
}

/// `total` shared by `weights` (largest remainder; all zero = even), at least 1 each.
fn share(total: u32, weights: &[u64]) -> Vec<u32> {
    let even;
    let weights = if weights.iter().all(|w| *w == 0) {
        even = vec![1; weights.len()];
        &even
    } else {
        weights
    };
    let sum: u64 = weights.iter().sum();
    let total = u64::from(total);
    let mut shares: Vec<u64> = weights.iter().map(|w| total * w / sum).collect();
    let mut rest = total - shares.iter().sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| (std::cmp::Reverse(total * weights[i] % sum), i));
    for &i in by_remainder.iter().cycle().take(weights.len()) {
        if rest == 0 {
            break;
        }
        shares[i] += 1;
        rest -= 1;
    }
    shares
        .into_iter()
        .map(|s| u32::try_from(s).unwrap_or(u32::MAX).max(1))
        .collect()
}

fn url_of(protocol: Protocol, ip: IpAddr, port: u16) -> BackendUrl {
    let scheme = match protocol {
        Protocol::Http => "http",
        Protocol::FastCgi => "fastcgi",
    };
    let text = match ip {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}"),
    };
    BackendUrl {
        protocol,
        endpoint: Endpoint::Tcp {
            host: ip.to_string(),
            port,
        },
        text,
        tls: false,
    }
}

/// A discovered backend that could not join its cluster: its name is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTaken {
    pub entry: String,
    pub backend: String,
}

/// `cluster` with its discovery entries expanded: each entry's backends (from `found`, its
/// last good answer; none before the first) at the entry's place among the fixed backends.
/// A discovered name that is already taken (by a fixed backend or another entry's) is left
/// out and returned.
pub fn expand<'a>(
    cluster: &ClusterConfig,
    found: impl Fn(&str) -> Option<&'a [Target]>,
) -> (ClusterConfig, Vec<NameTaken>) {
    let mut expanded = cluster.clone();
    if cluster.discover.is_empty() {
        return (expanded, Vec::new());
    }
    let mut taken = Vec::new();
    let mut names: std::collections::HashSet<String> =
        cluster.backends.iter().map(|b| b.name.clone()).collect();
    let mut backends = Vec::with_capacity(cluster.backends.len());
    let mut fixed = cluster.backends.iter();
    let mut placed = 0;
    for entry in &cluster.discover {
        while placed < entry.position {
            match fixed.next() {
                Some(b) => backends.push(b.clone()),
                None => break,
            }
            placed += 1;
        }
        for backend in discovered_backends(entry, found(&entry.name).unwrap_or_default()) {
            if names.insert(backend.name.clone()) {
                backends.push(backend);
            } else {
                taken.push(NameTaken {
                    entry: entry.name.clone(),
                    backend: backend.name,
                });
            }
        }
    }
    backends.extend(fixed.cloned());
    expanded.backends = backends;
    (expanded, taken)
}

/// How one `discover:` entry is doing, for `/api/v1/status` and the cluster's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryStatus {
    pub cluster: String,
    /// The backend entry's name.
    pub entry: String,
    /// The DNS name asked.
    pub name: String,
    /// `a`, `aaaa` or `srv`.
    #[serde(rename = "type")]
    pub record: &'static str,
    /// When the last round ended (seconds since the Unix epoch); `null` before the first.
    pub last_resolution: Option<f64>,
    /// When the last good answer came.
    pub last_success: Option<f64>,
    /// Why the last round failed; `null` after a good answer. The backends of the last good
    /// answer stay meanwhile.
    pub error: Option<String>,
    /// The records of the last good answer, as read.
    pub records: Vec<String>,
    /// Their smallest TTL, in seconds.
    pub ttl: Option<u64>,
    /// When the next round starts, in milliseconds from the last one's end.
    pub next_in_ms: Option<u64>,
    /// The backends the last good answer stands for.
    pub backends: Vec<String>,
    /// Discovered names already taken by another backend: those addresses are left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names_taken: Vec<String>,
}

impl DiscoveryStatus {
    /// The status of `entry` of `cluster` before its first answer.
    pub fn new(cluster: &str, entry: &DiscoveryConfig) -> DiscoveryStatus {
        DiscoveryStatus {
            cluster: cluster.to_owned(),
            entry: entry.name.clone(),
            name: entry.query.name.clone(),
            record: entry.query.record.as_str(),
            last_resolution: None,
            last_success: None,
            error: None,
            records: Vec::new(),
            ttl: None,
            next_in_ms: None,
            backends: Vec::new(),
            names_taken: Vec::new(),
        }
    }
}

/// When to ask again after an answer whose records live `ttl` (their smallest TTL): the TTL
/// within the entry's bounds.
pub fn next_interval(entry: &DiscoveryConfig, ttl: Duration) -> Duration {
    ttl.clamp(entry.min_interval, entry.max_interval)
}

/// When to ask again after `failures` failed attempts in a row (>= 1): `min_interval`,
/// doubled on each further failure, at most `max_interval`.
pub fn retry_interval(entry: &DiscoveryConfig, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    entry.min_interval.saturating_mul(factor).min(entry.max_interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::discovery::{DnsQuery, DnsRecordType};

    fn entry(record: DnsRecordType) -> DiscoveryConfig {
        DiscoveryConfig {
            name: "app".into(),
            position: 0,
            query: DnsQuery {
                name: "app.test".into(),
                record,
                port: (record != DnsRecordType::Srv).then_some(8080),
            },
            protocol: Protocol::Http,
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            total_capacity: None,
            priority_roles: vec![Role::Active, Role::Backup],
            capacity: 4,
            role: Role::Standby,
            enabled: true,
            fastcgi: None,
            health: None,
            terminate_protection: false,
        }
    }

    fn a(ip: &str) -> Target {
        Target {
            srv: None,
            ip: ip.parse().unwrap(),
            port: 8080,
        }
    }

    fn srv(priority: u16, weight: u16, ip: &str, port: u16) -> Target {
        Target {
            srv: Some(SrvRank { priority, weight }),
            ip: ip.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn a_records_take_the_template_and_stable_names() {
        let e = entry(DnsRecordType::A);
        let found = discovered_backends(&e, &[a("10.0.0.2"), a("10.0.0.1"), a("10.0.0.2")]);
        let names: Vec<&str> = found.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["app-10.0.0.1-8080", "app-10.0.0.2-8080"]);
        assert!(found.iter().all(|b| b.capacity == 4
            && b.role == Role::Standby
            && b.discovered_by.as_deref() == Some("app")));
        assert_eq!(found[0].url.text, "http://10.0.0.1:8080");
        let v6 = discovered_backends(&entry(DnsRecordType::Aaaa), &[a("fd00::1")]);
        assert_eq!(v6[0].name, "app-fd00__1-8080");
        assert_eq!(v6[0].url.text, "http://[fd00::1]:8080");
    }

    #[test]
    fn srv_priorities_become_roles() {
        let mut e = entry(DnsRecordType::Srv);
        let targets = [
            srv(30, 0, "10.0.0.4", 1),
            srv(10, 0, "10.0.0.1", 1),
            srv(20, 0, "10.0.0.3", 1),
            srv(10, 0, "10.0.0.2", 1),
        ];
        let roles = |e: &DiscoveryConfig| -> Vec<Role> {
            discovered_backends(e, &targets).iter().map(|b| b.role).collect()
        };
        use Role::*;
        assert_eq!(roles(&e), [Active, Active, Backup, Backup]);
        e.priority_roles = vec![Active, Standby, Backup];
        assert_eq!(roles(&e), [Active, Active, Standby, Backup]);
    }

    #[test]
    fn srv_weights_share_the_total_capacity() {
        let mut e = entry(DnsRecordType::Srv);
        let targets = [
            srv(10, 1, "10.0.0.1", 1),
            srv(10, 2, "10.0.0.2", 1),
            srv(20, 0, "10.0.0.3", 1),
            srv(20, 0, "10.0.0.4", 1),
        ];
        let caps = |e: &DiscoveryConfig| -> Vec<u32> {
            discovered_backends(e, &targets)
                .iter()
                .map(|b| b.capacity)
                .collect()
        };
        assert_eq!(caps(&e), [4, 4, 4, 4]);
        e.total_capacity = Some(10);
        assert_eq!(caps(&e), [3, 7, 5, 5]);
        assert_eq!(share(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(share(2, &[100, 1, 1]), [2, 1, 1], "at least 1 each");
    }

    #[test]
    fn expansion_keeps_the_entry_place_and_refuses_taken_names() {
        let mut e = entry(DnsRecordType::A);
        e.position = 1;
        let fixed = |name: &str| BackendConfig {
            name: name.into(),
            url: url_of(Protocol::Http, "10.9.9.9".parse().unwrap(), 80),
            capacity: 1,
            role: Role::Active,
            enabled: true,
            fastcgi: None,
            health: None,
            terminate_protection: false,
            discovered_by: None,
            tls: None,
        };
        let mut cluster =
            crate::config::load_str("proxy: { listen: [\"127.0.0.1:0\"] }\nclusters: { c: {} }\n")
                .unwrap()
                .clusters
                .remove("c")
                .unwrap();
        cluster.backends = vec![fixed("first"), fixed("app-10.0.0.2-8080"), fixed("last")];
        cluster.discover = vec![e];
        let targets = [a("10.0.0.1"), a("10.0.0.2")];
        let (expanded, taken) = expand(&cluster, |_| Some(&targets[..]));
        let names: Vec<&str> = expanded.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["first", "app-10.0.0.1-8080", "app-10.0.0.2-8080", "last"]);
        assert_eq!(expanded.backends[2].discovered_by, None, "the fixed one stays");
        assert_eq!(
            taken,
            [NameTaken {
                entry: "app".into(),
                backend: "app-10.0.0.2-8080".into()
            }]
        );
        let (before_first_answer, _) = expand(&cluster, |_| None);
        assert_eq!(before_first_answer.backends, cluster.backends);
    }

    #[test]
    fn intervals_follow_the_ttl_within_bounds() {
        let e = entry(DnsRecordType::A);
        assert_eq!(next_interval(&e, Duration::ZERO), Duration::from_secs(1));
        assert_eq!(next_interval(&e, Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(
            next_interval(&e, Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(retry_interval(&e, 1), Duration::from_secs(1));
        assert_eq!(retry_interval(&e, 3), Duration::from_secs(4));
        assert_eq!(retry_interval(&e, 40), Duration::from_secs(30));
    }
}
