//! The demo's traffic generator: a few requests a second to the proxy listener itself, spread
//! over the routes of the configuration, and now and then a burst, so that the dashboard's live
//! charts move and a burst fills a cluster up to its standby backend.
//!
//! Bounded on purpose: at most [`MAX_IN_FLIGHT`] requests at a time (a steady-pace request that
//! would exceed it is skipped, not queued; a burst waits for free slots), each with a deadline,
//! one fresh connection per request (`Connection: close`). Requests go through awc
//! (`transport::http_client`), so the generator runs as local tasks of the demo's thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::random::Rng;
use crate::config::{BucketConfig, ClientRouting, Config, Endpoint, ListenAddr, Protocol, Role, RouteTarget};
use crate::transport::http_client::EndpointClient;

/// Most generated requests in flight at once: above the steady pace's needs, below what would
/// swamp the sample backends (the shipped `shop` cluster holds 20).
const MAX_IN_FLIGHT: usize = 24;

/// Longest a generated request may take, connect to last byte.
const DEADLINE: Duration = Duration::from_secs(15);

/// One kind of request the generator sends, with its share of the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Visit {
    pub(super) path: String,
    pub(super) host: Option<String>,
    /// An extra request header, e.g. the client-routing cookie naming a standby backend.
    pub(super) header: Option<(String, String)>,
    pub(super) weight: u64,
}

/// The visits for `config`: each route's prefix; for a cluster route also the path prefixes of
/// its buckets, a few pages of a FastCGI application (including a 404), a few `/static/`
/// files when the cluster caches, and, when
/// the cluster has client-side routing, requests pinned to its standby and backup backends.
pub(super) fn visits(config: &Config) -> Vec<Visit> {
    let mut visits = Vec::new();
    for route in &config.routes {
        let visit = |path: String, weight, header| Visit {
            path,
            host: route.host.clone(),
            header,
            weight,
        };
        let prefix = route.path_prefix.as_str();
        let cluster = match &route.target {
            RouteTarget::Backend(_) => {
                visits.push(visit(prefix.to_owned(), 2, None));
                continue;
            }
            RouteTarget::Cluster(name) => match config.clusters.get(name) {
                Some(cluster) => cluster,
                None => continue,
            },
        };
        let fastcgi = cluster
            .backends
            .iter()
            .any(|b| b.url.protocol == Protocol::FastCgi);
        if fastcgi {
            let page = |name: &str| format!("{}/{name}", prefix.trim_end_matches('/'));
            // Not `broken` (a 500 with a line on STDERR): it would fill the log.
            visits.push(visit(prefix.to_owned(), 6, None));
            visits.push(visit(page("hello?who=demo"), 4, None));
            visits.push(visit(page("missing"), 1, None));
        } else {
            visits.push(visit(prefix.to_owned(), 16, None));
        }
        if cluster.cache.enabled && !fastcgi {
            // The HTTP samples let `/static/` be cached: the dashboard shows hits at once.
            let base = prefix.trim_end_matches('/');
            for asset in ["static/app.css", "static/app.js", "static/logo.svg"] {
                visits.push(visit(format!("{base}/{asset}"), 4, None));
            }
        }
        for bucket_prefix in bucket_prefixes(&cluster.buckets) {
            if bucket_prefix.starts_with(prefix) {
                visits.push(visit(bucket_prefix, 6, None));
            }
        }
        let spare = cluster.backends.iter().filter(|b| b.role != Role::Active);
        for backend in spare {
            let header = match &cluster.client_routing {
                Some(ClientRouting::Cookie(cookie)) => {
                    ("cookie".to_owned(), format!("{cookie}={}", backend.name))
                }
                Some(ClientRouting::Header(name)) => (name.clone(), backend.name.clone()),
                None => break,
            };
            visits.push(visit(prefix.to_owned(), 2, Some(header)));
        }
    }
    visits
}

/// The path prefixes of bucket rules that need nothing but a GET to match, depth first.
fn bucket_prefixes(buckets: &[BucketConfig]) -> Vec<String> {
    let mut prefixes = Vec::new();
    for bucket in buckets {
        if let Some(rule) = &bucket.rule {
            let plain_get = rule.header.is_none() && rule.method.as_deref().is_none_or(|m| m == "GET");
            if let (Some(prefix), true, None) = (&rule.path_prefix, plain_get, &rule.host) {
                prefixes.push(prefix.clone());
            }
        }
        prefixes.extend(bucket_prefixes(&bucket.children));
    }
    prefixes
}

/// Where generated requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    /// The address that reaches the listener `addr` from this host (a wildcard address is
    /// reached over loopback).
    pub(super) fn reaching(addr: &ListenAddr) -> Target {
        match addr {
            ListenAddr::Tcp(sa) => {
                let ip = match sa.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                Target::Tcp(SocketAddr::new(ip, sa.port()))
            }
            ListenAddr::Unix(path) => Target::Unix(path.clone()),
        }
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            Target::Tcp(addr) => Endpoint::Tcp {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
            Target::Unix(path) => Endpoint::Unix(path.clone()),
        }
    }

    /// The `Host` of a request that names none.
    fn default_host(&self) -> String {
        match self {
            Target::Tcp(addr) => addr.to_string(),
            Target::Unix(_) => "localhost".to_owned(),
        }
    }
}

/// Sends traffic to `target` for as long as the runtime runs: one request every 60–440 ms
/// (about four a second), and every 20–45 s (the first after 5–10 s) a burst of 30–45. Runs,
/// and spawns its requests, as local tasks (awc's client is not `Send`).
pub(super) async fn run(target: Target, visits: Arc<Vec<Visit>>, rng: Arc<Rng>) {
    let client = Rc::new(Client::reaching(&target));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let total_weight: u64 = visits.iter().map(|v| v.weight).sum();
    if total_weight == 0 {
        return;
    }
    let pick = |rng: &Rng| {
        let mut ticket = rng.between(0, total_weight - 1);
        visits
            .iter()
            .find(|v| {
                let hit = ticket < v.weight;
                ticket = ticket.saturating_sub(v.weight);
                hit
            })
            .cloned()
    };
    let mut next_burst = Instant::now() + Duration::from_secs(rng.between(5, 10));
    loop {
        tokio::time::sleep(Duration::from_millis(rng.between(60, 440))).await;
        if Instant::now() >= next_burst {
            next_burst = Instant::now() + Duration::from_secs(rng.between(20, 45));
            let size = rng.between(30, 45);
            log::debug!("demo traffic: a burst of {size} requests");
            for _ in 0..size {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                if let Some(visit) = pick(&rng) {
                    spawn_visit(client.clone(), visit, slot);
                }
            }
        } else if let Ok(slot) = slots.clone().try_acquire_owned() {
            if let Some(visit) = pick(&rng) {
                spawn_visit(client.clone(), visit, slot);
            }
        }
    }
}

/// The generator's client and the `Host` of a visit that names none.
struct Client {
    http: EndpointClient,
    default_host: String,
}

impl Client {
    fn reaching(target: &Target) -> Client {
        Client {
            http: EndpointClient::new(&target.endpoint(), None, DEADLINE),
            default_host: target.default_host(),
        }
    }
}

fn spawn_visit(client: Rc<Client>, visit: Visit, slot: tokio::sync::OwnedSemaphorePermit) {
    tokio::task::spawn_local(async move {
        match tokio::time::timeout(DEADLINE, send(&client, &visit)).await {
            Ok(Ok(status)) => log::trace!("demo traffic: {} -> {status}", visit.path),
            Ok(Err(e)) => log::debug!("demo traffic: {}: {e}", visit.path),
            Err(_) => log::debug!("demo traffic: {}: no answer within {DEADLINE:?}", visit.path),
        }
        drop(slot);
    });
}

/// Sends one GET for `visit` and reads the answer to its end; returns its status code.
async fn send(client: &Client, visit: &Visit) -> Result<u16, String> {
    let host = visit.host.as_deref().unwrap_or(&client.default_host);
    let mut request = client.http.get(&visit.path, host, "director-demo-traffic");
    if let Some((name, value)) = &visit.header {
        request = request.header(name, value);
    }
    let mut response = request.send().await.map_err(|e| e.to_string())?;
    while let Some(piece) = response.next().await {
        piece.map_err(|e| e.to_string())?;
    }
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_gets_visits_for_every_route_bucket_and_spare_backend() {
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"))
            .expect("config.yaml");
        let config = crate::config::load_str(&yaml).expect("the shipped config is valid");
        let visits = visits(&config);
        let paths: Vec<&str> = visits.iter().map(|v| v.path.as_str()).collect();
        for expected in ["/", "/checkout", "/php/", "/php/missing", "/legacy/"] {
            assert!(paths.contains(&expected), "no visit to {expected} in {paths:?}");
        }
        let pinned = visits
            .iter()
            .filter_map(|v| v.header.as_ref())
            .collect::<Vec<_>>();
        assert!(
            pinned
                .iter()
                .any(|(name, value)| name == "cookie" && value.ends_with("=app03")),
            "{pinned:?}"
        );
    }

    #[actix_web::test]
    async fn send_reads_the_status_and_the_whole_answer_with_the_visits_headers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = Target::Tcp(listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                assert_eq!(stream.read(&mut byte).await.expect("read"), 1);
                head.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 300\r\n\r\n")
                .await
                .expect("write head");
            stream.write_all(&[b'x'; 300]).await.expect("write body");
            String::from_utf8(head).expect("utf-8").to_ascii_lowercase()
        });
        let client = Client::reaching(&target);
        let visit = Visit {
            path: "/shop/".into(),
            host: None,
            header: Some(("cookie".into(), "backend=app03".into())),
            weight: 1,
        };
        assert_eq!(send(&client, &visit).await, Ok(503));
        let head = server.await.expect("join");
        assert!(head.starts_with("get /shop/ http/1.1\r\n"), "{head}");
        for line in [
            format!("host: {}", target.default_host()),
            "cookie: backend=app03".to_owned(),
            "user-agent: director-demo-traffic".to_owned(),
            "connection: close".to_owned(),
        ] {
            assert!(head.contains(&format!("{line}\r\n")), "no {line} in {head}");
        }
    }
}
