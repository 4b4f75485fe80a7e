//! `https://` backends: requests and health probes over TLS with a configured CA, connection
//! reuse, certificate and name verification, SNI from `server_name`, mutual TLS, a backend that
//! closes an idle TLS connection, and bad TLS settings refused by the API. Certificates are made
//! at test time (`support::tls_backend::Pki`).

use crate::support;

use bytes::Bytes;
use director::cluster::health::Health;
use serde_json::json;
use support::backend::silent_backend;
use support::tls_backend::{server_config, Pki, TlsBackend};
use support::{admin, get, request, start, wait_until, Director};

/// One worker (so that sequential requests meet the same pool), a loopback admin listener and
/// one cluster `c` with `settings` (YAML lines, indented by 4) and `backends` (flow-style maps).
fn config(settings: &str, backends: &[String]) -> String {
    let mut yaml = String::from(
        "proxy: { listen: [\"127.0.0.1:0\"], workers: 1 }\nadmin: { listen: \"127.0.0.1:0\" }\n\
         routes: [{ path_prefix: \"/\", cluster: c }]\nclusters:\n  c:\n",
    );
    for line in settings.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str(&format!("    {}\n", line.trim()));
    }
    yaml.push_str("    backends:\n");
    for backend in backends {
        yaml.push_str(&format!("      - {backend}\n"));
    }
    yaml
}

/// `{ name, url, tls: { tls } }` of a backend.
fn backend(name: &str, url: &str, tls: &str) -> String {
    format!("{{ name: {name}, url: \"{url}\", tls: {{ {tls} }} }}")
}

fn ca(pki: &Pki) -> String {
    format!("ca: \"{}\"", pki.ca_path.display())
}

/// The health state and reason the cluster last published for `name`.
fn health_of(d: &Director, name: &str) -> Option<(Health, String)> {
    let statuses = d.cluster("c").statuses.load();
    let status = statuses.iter().find(|s| s.name == name)?;
    Some((status.health, status.health_reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_over_tls_with_a_configured_ca_and_reuse_their_connections() {
    let pki = Pki::new("btls-reuse");
    let b = TlsBackend::start("tls1", &pki.server("b", &["127.0.0.1"]), None).await;
    let d = start(&config("", &[backend("b", &b.url(), &ca(&pki))])).await;
    const N: u64 = 10;
    for i in 0..N {
        let reply = get(&d.target(), &format!("/r{i}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("tls1 GET /r{i} host=test.local"));
    }
    assert_eq!(b.requests(), N);
    assert_eq!(
        b.handshakes(),
        1,
        "one worker: one TLS connection, reused for all {N} requests"
    );
    assert_eq!(b.accepts(), 1);
    assert_eq!(b.sni(), [None], "an IP-literal URL sends no SNI");
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_server_name_is_sent_as_sni_and_checked() {
    let pki = Pki::new("btls-sni");
    let b = TlsBackend::start("named", &pki.server("b", &["backend.internal"]), None).await;
    let tls = format!("{}, server_name: backend.internal", ca(&pki));
    let d = start(&config("", &[backend("b", &b.url(), &tls)])).await;
    let reply = get(&d.target(), "/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(b.sni(), [Some("backend.internal".to_owned())]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_verify_fails_the_request_and_the_health_check() {
    let trusted = Pki::new("btls-trusted");
    let stranger = Pki::new("btls-stranger");
    // Issued by a CA director does not trust.
    let unknown_ca = TlsBackend::start("u", &stranger.server("u", &["127.0.0.1"]), None).await;
    // Issued by the trusted CA, for another name.
    let wrong_name = TlsBackend::start("w", &trusted.server("w", &["other.example"]), None).await;
    let backends = [
        backend("unknown_ca", &unknown_ca.url(), &ca(&trusted)),
        backend("wrong_name", &wrong_name.url(), &ca(&trusted)),
    ];

    let d = start(&config("passive_health: { max_fails: 0 }", &backends)).await;
    let reply = get(&d.target(), "/").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(unknown_ca.requests() + wrong_name.requests(), 0);
    assert!(
        unknown_ca.accepts() >= 1 && wrong_name.accepts() >= 1,
        "both were tried"
    );
    assert_eq!(unknown_ca.handshakes() + wrong_name.handshakes(), 0);
    d.stop().await;

    let health = "health: { interval: 50ms, timeout: 1s, fall: 1, path: /health }";
    let d = start(&config(health, &backends)).await;
    for (name, says) in [
        ("unknown_ca", "invalid peer certificate: UnknownIssuer"),
        ("wrong_name", "not valid for name"),
    ] {
        let (_, reason) = wait_until(format!("{name} reported down"), async || {
            health_of(&d, name).filter(|(h, _)| *h == Health::Offline)
        })
        .await;
        assert!(
            reason.starts_with("TLS handshake failed: ") && reason.contains(says),
            "{name}: {reason}"
        );
    }
    assert_eq!(unknown_ca.requests() + wrong_name.requests(), 0);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_requires_a_client_certificate_accepts_directors() {
    let pki = Pki::new("btls-mtls");
    let clients = Pki::new("btls-clients");
    let b = TlsBackend::start("m", &pki.server("b", &["127.0.0.1"]), Some(&clients)).await;
    let client = clients.client("director");
    let tls = format!(
        "{}, client_cert: \"{}\", client_key: \"{}\"",
        ca(&pki),
        client.cert_path.display(),
        client.key_path.display()
    );
    let d = start(&config("", &[backend("b", &b.url(), &tls)])).await;
    let reply = get(&d.target(), "/mtls").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(b.client_certs(), [true]);
    d.stop().await;

    // Without one, the backend refuses the connection: the certificate is what got it in.
    let d = start(&config(
        "passive_health: { max_fails: 0 }",
        &[backend("b", &b.url(), &ca(&pki))],
    ))
    .await;
    assert_eq!(get(&d.target(), "/mtls").await.status, 502);
    assert_eq!(
        b.requests(),
        1,
        "only the request with a client certificate was served"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_over_tls_mark_the_backend_up() {
    let pki = Pki::new("btls-health");
    let b = TlsBackend::start("h", &pki.server("b", &["127.0.0.1"]), None).await;
    let health = "health: { interval: 50ms, timeout: 1s, rise: 2, fall: 1, path: /health, initial: offline }";
    let d = start(&config(health, &[backend("b", &b.url(), &ca(&pki))])).await;
    let (_, reason) = wait_until("the backend is up", async || {
        health_of(&d, "b").filter(|(h, _)| *h == Health::Online)
    })
    .await;
    assert_eq!(reason, "status 200");
    assert!(b.requests() >= 2, "rise: 2 probes answered over TLS");
    assert_eq!(get(&d.target(), "/").await.status, 200);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_the_backend_closed_while_idle_is_not_reused() {
    let pki = Pki::new("btls-idle");
    let b = TlsBackend::start("i", &pki.server("b", &["127.0.0.1"]), None).await;
    let d = start(&config("", &[backend("b", &b.url(), &ca(&pki))])).await;
    assert_eq!(get(&d.target(), "/first").await.status, 200);
    assert_eq!(b.open(), 1, "director keeps the connection");

    b.close_idle_connections();
    support::eventually("the backend closed its idle connection", || b.open() == 0).await;
    // A POST is not retried on a fresh connection: written on the closed one, it would fail.
    let reply = request(&d.target(), "POST", "/second", &[], Bytes::from_static(b"body")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "i POST /second host=test.local");
    assert_eq!(b.handshakes(), 2, "a new connection for the second request");
    // A close_notify is a close, not bytes nobody asked for: the backend's connections are
    // still reused.
    for _ in 0..2 {
        assert_eq!(get(&d.target(), "/again").await.status, 200);
    }
    assert_eq!(b.handshakes(), 2, "the new connection is reused");
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_false_accepts_any_certificate() {
    let stranger = Pki::new("btls-noverify");
    let b = TlsBackend::start("n", &stranger.server("b", &["other.example"]), None).await;
    let d = start(&config("", &[backend("b", &b.url(), "verify: false")])).await;
    assert_eq!(get(&d.target(), "/").await.status, 200);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_backend_tls_is_the_default_its_backends_override_key_by_key() {
    let pki = Pki::new("btls-defaults");
    let plain = TlsBackend::start("p", &pki.server("p", &["127.0.0.1"]), None).await;
    let named = TlsBackend::start("n", &pki.server("n", &["named.internal"]), None).await;
    let settings = format!("backend_tls: {{ {} }}", ca(&pki));
    let backends = [
        format!("{{ name: p, url: \"{}\", capacity: 1 }}", plain.url()),
        backend("n", &named.url(), "server_name: named.internal"),
    ];
    let d = start(&config(&settings, &backends)).await;
    for _ in 0..4 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    assert!(plain.requests() >= 1 && named.requests() >= 1, "both reached");
    assert_eq!(named.sni(), [Some("named.internal".to_owned())]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_tls_settings_with_their_path() {
    let pki = Pki::new("btls-api");
    let b = TlsBackend::start("a", &pki.server("b", &["127.0.0.1"]), None).await;
    let d = start(&config("", &[backend("b", &b.url(), &ca(&pki))])).await;
    let not_pem = pki.path("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let missing = pki.path("missing.pem");
    let url = b.url();
    let cases = [
        (
            json!({ "name": "x", "url": url, "tls": { "ca": missing } }),
            "tls.ca",
            "cannot read",
        ),
        (
            json!({ "name": "x", "url": url, "tls": { "ca": not_pem } }),
            "tls.ca",
            "no PEM certificate",
        ),
        (
            json!({ "name": "x", "url": url, "tls": { "ca": "relative.pem" } }),
            "tls.ca",
            "absolute",
        ),
        (
            json!({ "name": "x", "url": url, "tls": { "vrfy": false } }),
            "tls.vrfy",
            "unknown",
        ),
        (
            json!({ "name": "x", "url": url, "tls": { "client_cert": pki.ca_path } }),
            "tls",
            "needs a `client_key`",
        ),
        (
            json!({ "name": "x", "url": "http://127.0.0.1:1", "tls": {} }),
            "tls",
            "https:// URL only",
        ),
    ];
    for (body, at, says) in cases {
        let (status, answer) = admin(
            &d,
            "POST",
            "/api/v1/clusters/c/backends",
            Some(body.clone()),
            None,
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
        let detail = answer["detail"].to_string();
        assert!(detail.contains(at) && detail.contains(says), "{body}: {answer}");
    }
    assert_eq!(d.cluster("c").backends.load().len(), 1, "nothing was added");
    // A good one is taken, and works.
    let body = json!({ "name": "x", "url": url, "tls": { "ca": pki.ca_path } });
    let (status, answer) = admin(&d, "POST", "/api/v1/clusters/c/backends", Some(body), None).await;
    assert!(status < 300, "{answer}");
    eventually_get(&d, "x").await;
    // A change to a bad CA is refused the same way, and the backend keeps its last good one.
    let patch = json!({ "tls": { "ca": missing } });
    let (status, answer) = admin(&d, "PATCH", "/api/v1/clusters/c/backends/x", Some(patch), None).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["detail"].to_string().contains("tls.ca"), "{answer}");
    let x = d.backend("c", "x");
    assert_eq!(
        x.tls.as_ref().and_then(|t| t.settings.ca.clone()),
        Some(pki.ca_path.clone())
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_road_warrior_route_reaches_an_https_address_with_its_own_tls() {
    let pki = Pki::new("btls-route");
    let b = TlsBackend::start("r", &pki.server("b", &["route.internal"]), None).await;
    let yaml = format!(
        "proxy: {{ listen: [\"127.0.0.1:0\"], workers: 1 }}\nroutes:\n  - {{ path_prefix: \"/\", backend: \"{}\", \
         tls: {{ {}, server_name: route.internal }} }}\n",
        b.url(),
        ca(&pki)
    );
    let d = start(&yaml).await;
    for _ in 0..3 {
        let reply = get(&d.target(), "/rw").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "r GET /rw host=test.local");
    }
    assert_eq!(
        b.sni(),
        [Some("route.internal".to_owned())],
        "one connection, reused"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_timeout_covers_the_handshake() {
    let pki = Pki::new("btls-timeout");
    // Accepts the TCP connection and never answers the ClientHello.
    let silent = silent_backend().await;
    let url = silent.url().replacen("http://", "https://", 1);
    let settings = "connect_timeout: 200ms\nread_timeout: 60s\nmax_retry_count: 0";
    let d = start(&config(settings, &[backend("s", &url, &ca(&pki))])).await;
    let started = std::time::Instant::now();
    let reply = tokio::time::timeout(support::WAIT, get(&d.target(), "/"))
        .await
        .expect("the handshake is bounded by connect_timeout, not left hanging");
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(silent.accepted(), 1, "the TCP connect itself succeeded");
    d.settled("c").await;
    d.stop().await;
}

/// Waits until backend `name` of cluster `c` is published.
async fn eventually_get(d: &Director, name: &str) {
    support::eventually(&format!("backend {name} published"), || {
        d.cluster("c").backend(name).is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_timeout_applies_over_tls() {
    let pki = Pki::new("btls-write");
    // Completes the handshake, then reads nothing: a large upload stalls.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&pki.server("s", &["127.0.0.1"]), None));
    let holder = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let tls = acceptor.accept(tcp).await.expect("handshake");
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(tls);
    });
    let settings = "write_timeout: 300ms\nread_timeout: 20s\nmax_retry_count: 0";
    let d = start(&config(settings, &[backend("s", &url, &ca(&pki))])).await;
    let body = Bytes::from(vec![b'x'; 32 * 1024 * 1024]);
    let started = std::time::Instant::now();
    let reply = request(&d.target(), "POST", "/upload", &[], body).await;
    assert_eq!(reply.status, 504, "write timed out: {}", reply.text());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    d.settled("c").await;
    holder.abort();
    d.stop().await;
}
