//! Typed configuration of backend discovery by DNS (control plane, pure): the global
//! `resolver:` section and a backend entry's `discover:` (see the README's "Discovering
//! backends by DNS"). Produced by the loader (`load/discovery.rs`); the Director actor runs
//! one discovery actor per entry and turns its answers into backends.

use std::net::SocketAddr;
use std::time::Duration;

use super::backend_kinds::{FastCgiConfig, HealthConfig, Protocol, Role};

/// `resolver:` — where discovery queries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// `nameservers`: `IP` or `IP:PORT` (port 53 by default), asked in order over UDP (TCP
    /// for truncated answers); empty (the default) = the system's `/etc/resolv.conf`, its
    /// search domains and options included.
    pub nameservers: Vec<SocketAddr>,
    /// `timeout` of one query (default 2s).
    pub timeout: Duration,
    /// `attempts` per query and nameserver (default 2).
    pub attempts: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }
}

/// The record type a `discover:` entry asks for (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsRecordType {
    /// `a`: IPv4 addresses, each with the entry's `port`.
    A,
    /// `aaaa`: IPv6 addresses, each with the entry's `port`.
    Aaaa,
    /// `srv`: targets with their own ports; priority gives the role, weight may give the
    /// capacity.
    Srv,
}

impl DnsRecordType {
    /// As written in `config.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::A => "a",
            DnsRecordType::Aaaa => "aaaa",
            DnsRecordType::Srv => "srv",
        }
    }
}

/// What is asked of DNS: the part of an entry that decides its answer. Two entries (or one
/// before and after a reload) with equal queries get the same records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsQuery {
    /// `name`: the DNS name (a trailing dot makes it absolute: no search domains).
    pub name: String,
    /// `type` (default `a`).
    pub record: DnsRecordType,
    /// `port` of A/AAAA targets (required there; SRV records carry their own).
    pub port: Option<u16>,
}

/// A backend entry with `discover:` instead of `url:` — a template for every backend its
/// records name.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryConfig {
    /// The entry's `name`; a discovered backend is named `<name>-<ip>-<port>`.
    pub name: String,
    /// How many fixed backends come before the entry in `backends:`: its discovered
    /// backends take that place in the list (which the `chance` scheduler goes by).
    pub position: usize,
    pub query: DnsQuery,
    /// `protocol` of the discovered backends (default `http`).
    pub protocol: Protocol,
    /// `min_interval` (default 1s): the soonest a name is asked again, whatever its TTL
    /// (dnsmasq and others answer local names with TTL 0).
    pub min_interval: Duration,
    /// `max_interval` (default 30s): the latest a name is asked again, whatever its TTL, so
    /// that a long TTL does not keep a vanished address in rotation for long.
    pub max_interval: Duration,
    /// `total_capacity` (SRV only): shared among the targets of one priority by their weights
    /// (at least 1 each); without it every target gets the entry's `capacity`.
    pub total_capacity: Option<u32>,
    /// `priority_roles` (SRV only, default `[active, backup]`): the role of the targets of the
    /// lowest priority, the next one, ...; priorities past the list take its last role.
    pub priority_roles: Vec<Role>,
    /// `capacity` of each discovered backend (default 0 = unlimited).
    pub capacity: u32,
    /// `role` of each discovered backend (A/AAAA; SRV takes `priority_roles`).
    pub role: Role,
    /// `enabled` of each discovered backend (default true).
    pub enabled: bool,
    /// `fastcgi`: the discovered FastCGI backends' own script mapping.
    pub fastcgi: Option<FastCgiConfig>,
    /// `health`: the discovered backends' own health checks, over the cluster's.
    pub health: Option<HealthConfig>,
    /// `terminate_protection` of the entry (the API refuses to delete it).
    pub terminate_protection: bool,
}

/// The default `min_interval`.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The default `max_interval`.
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(30);
/// The default `priority_roles`: RFC 2782 — a higher priority is tried only when no target
/// of a lower one can be reached, which is director's `backup`.
pub const DEFAULT_PRIORITY_ROLES: [Role; 2] = [Role::Active, Role::Backup];
