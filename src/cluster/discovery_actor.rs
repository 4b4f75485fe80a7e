//! The Discovery actor: asks DNS for one `discover:` entry's records, again and again, and
//! reports every outcome to the Director actor.
//!
//! Control plane; runs on a worker arbiter, off the request path: the resolver
//! (hickory-resolver on the arbiter's tokio runtime) only awaits sockets, and the one piece
//! of blocking work — reading `/etc/resolv.conf` and `/etc/hosts` when no `nameservers` are
//! configured — runs on the blocking pool, once. After an answer the name is asked again when
//! its records' TTL has passed, clamped to the entry's `min_interval`..`max_interval`; after
//! a failure, `min_interval` doubled per failure in a row, at most `max_interval`. The
//! resolver's own cache is cleared before each round, so each round asks the nameserver.
//!
//! It never changes backends itself: the Director keeps the last good answer, expands the
//! cluster with it and applies the cluster as it does for any other change.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, Record};
use hickory_resolver::TokioResolver;

use super::arbiters::Arbiters;
use super::discovery::{next_interval, retry_interval, SrvRank, Target};
use crate::config::{DiscoveryConfig, DnsQuery, DnsRecordType, ResolverConfig};

/// Event: one round of asking DNS for an entry is over.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Resolved {
    /// Which actor asked (the Director ignores a replaced actor's last word).
    pub id: u64,
    pub cluster: String,
    pub entry: String,
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub outcome: Result<Answer, String>,
    /// When the next round starts.
    pub next_in: Duration,
}

/// A good answer: at least one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub targets: Vec<Target>,
    /// The records as read, for the status (`10.0.0.1`, `10 5 8080 app-0.example. 10.0.0.1`).
    pub records: Vec<String>,
    /// The smallest TTL among them.
    pub ttl: Duration,
}

/// Command: stop asking (the entry left the configuration or changed its query).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopDiscovery;

/// The actor asking DNS for one entry.
pub struct DiscoveryActor {
    id: u64,
    cluster: String,
    entry: DiscoveryConfig,
    resolver_config: ResolverConfig,
    /// Built on the first round.
    resolver: Option<TokioResolver>,
    report: Recipient<Resolved>,
    failures: u32,
}

impl DiscoveryActor {
    /// Starts the actor for `entry` of `cluster` on the next arbiter; it asks at once.
    pub fn start(
        id: u64,
        cluster: &str,
        entry: &DiscoveryConfig,
        resolver: &ResolverConfig,
        report: Recipient<Resolved>,
        arbiters: &Arbiters,
    ) -> Addr<DiscoveryActor> {
        let actor = DiscoveryActor {
            id,
            cluster: cluster.to_owned(),
            entry: entry.clone(),
            resolver_config: resolver.clone(),
            resolver: None,
            report,
            failures: 0,
        };
        DiscoveryActor::start_in_arbiter(&arbiters.next(), move |_| actor)
    }

    /// One round: build the resolver if needed, ask, report, and schedule the next round.
    fn ask(&mut self, ctx: &mut Context<Self>) {
        let resolver = self.resolver.clone();
        let config = self.resolver_config.clone();
        let query = self.entry.query.clone();
        let round = async move {
            let resolver = match resolver {
                Some(resolver) => resolver,
                None => match tokio::task::spawn_blocking(move || build_resolver(&config)).await {
                    Ok(Ok(resolver)) => resolver,
                    Ok(Err(e)) => return (None, Err(e)),
                    Err(e) => return (None, Err(format!("building the resolver was interrupted: {e}"))),
                },
            };
            let outcome = resolve(&resolver, &query).await;
            (Some(resolver), outcome)
        };
        ctx.spawn(round.into_actor(self).map(|(resolver, outcome), act, ctx| {
            if resolver.is_some() {
                act.resolver = resolver;
            }
            let next_in = match &outcome {
                Ok(answer) => {
                    act.failures = 0;
                    next_interval(&act.entry, answer.ttl)
                }
                Err(e) => {
                    act.failures += 1;
                    log::warn!(
                        "cluster '{}': discovery '{}' ({} {}): {e}; the last good answer stays",
                        act.cluster,
                        act.entry.name,
                        act.entry.query.record.as_str(),
                        act.entry.query.name
                    );
                    retry_interval(&act.entry, act.failures)
                }
            };
            act.report.do_send(Resolved {
                id: act.id,
                cluster: act.cluster.clone(),
                entry: act.entry.name.clone(),
                at: unix_now(),
                outcome,
                next_in,
            });
            ctx.run_later(next_in, |act, ctx| act.ask(ctx));
        }));
    }
}

impl Actor for DiscoveryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.ask(ctx);
    }
}

impl Handler<StopDiscovery> for DiscoveryActor {
    type Result = ();

    fn handle(&mut self, _: StopDiscovery, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// A resolver for `config`: its nameservers, else the system's (blocking file reads: call it
/// off the worker).
fn build_resolver(config: &ResolverConfig) -> Result<TokioResolver, String> {
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("reading the system's resolver configuration: {e}"))?
    } else {
        let mut servers = HickoryConfig::default();
        for address in &config.nameservers {
            let mut server = NameServerConfig::udp_and_tcp(address.ip());
            for connection in &mut server.connections {
                connection.port = address.port();
            }
            servers.name_servers.push(server);
        }
        let mut builder = TokioResolver::builder_with_config(servers, TokioRuntimeProvider::default());
        // Asked of the given nameservers only, as configured.
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        builder
    };
    let options = builder.options_mut();
    options.timeout = config.timeout;
    options.attempts = config.attempts;
    options.try_tcp_on_error = true;
    builder.build().map_err(|e| format!("building the resolver: {e}"))
}

/// Asks for `query`'s records (and, for SRV, each target's addresses).
async fn resolve(resolver: &TokioResolver, query: &DnsQuery) -> Result<Answer, String> {
    resolver.clear_cache();
    let name = query.name.as_str();
    let failed = |e: NetError| describe(name, query.record, &e);
    let mut answer = Answer {
        targets: Vec::new(),
        records: Vec::new(),
        ttl: Duration::MAX,
    };
    match query.record {
        DnsRecordType::A | DnsRecordType::Aaaa => {
            let lookup = match query.record {
                DnsRecordType::A => resolver.ipv4_lookup(name).await,
                _ => resolver.ipv6_lookup(name).await,
            }
            .map_err(failed)?;
            let port = query.port.unwrap_or(80);
            for record in lookup.answers() {
                if let Some(ip) = address_of(record) {
                    answer.add(Target { srv: None, ip, port }, ip.to_string(), record.ttl);
                }
            }
        }
        DnsRecordType::Srv => {
            let lookup = resolver.srv_lookup(name).await.map_err(failed)?;
            for record in lookup.answers() {
                let RData::SRV(srv) = &record.data else { continue };
                let rank = SrvRank {
                    priority: srv.priority,
                    weight: srv.weight,
                };
                let target = srv.target.to_string();
                // The addresses the answer carries along, else a lookup of the target's own.
                let mut given: Vec<(IpAddr, u32)> = lookup
                    .additionals()
                    .iter()
                    .filter(|r| r.name == srv.target)
                    .filter_map(|r| address_of(r).map(|ip| (ip, r.ttl)))
                    .collect();
                if given.is_empty() {
                    let ips = resolver.lookup_ip(srv.target.clone()).await.map_err(|e| {
                        format!("SRV target {target}: {}", describe(&target, DnsRecordType::A, &e))
                    })?;
                    let ttl = ips
                        .valid_until()
                        .saturating_duration_since(Instant::now())
                        .as_secs();
                    given = ips
                        .iter()
                        .map(|ip| (ip, u32::try_from(ttl).unwrap_or(u32::MAX)))
                        .collect();
                }
                for (ip, ttl) in given {
                    let text = format!("{} {} {} {target} {ip}", srv.priority, srv.weight, srv.port);
                    let found = Target {
                        srv: Some(rank),
                        ip,
                        port: srv.port,
                    };
                    answer.add(found, text, record.ttl.min(ttl));
                }
            }
        }
    }
    if answer.targets.is_empty() {
        return Err(format!(
            "no {} records for {name}",
            query.record.as_str().to_uppercase()
        ));
    }
    Ok(answer)
}

impl Answer {
    fn add(&mut self, target: Target, text: String, ttl: u32) {
        self.targets.push(target);
        self.records.push(text);
        self.ttl = self.ttl.min(Duration::from_secs(u64::from(ttl)));
    }
}

fn address_of(record: &Record) -> Option<IpAddr> {
    match &record.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

/// A failed lookup in words; "no records" is told apart from the resolver failing.
fn describe(name: &str, record: DnsRecordType, e: &NetError) -> String {
    if e.is_no_records_found() {
        format!("no {} records for {name}", record.as_str().to_uppercase())
    } else {
        format!("resolving {name} failed: {e}")
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
