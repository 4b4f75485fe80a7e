//! TLS termination on the client-facing listeners, with certificates made at test time: SNI
//! picks the certificate (exact names, a wildcard, the default without SNI), TLS 1.2 and 1.3,
//! certificate files that change on disk (a Kubernetes-style `..data` swap) are served to new
//! connections while open ones go on, a bad new certificate keeps the old one and shows in
//! `/api/v1/status`, and the admin listener over TLS. What TLS requests tell the backends, the
//! redirect and HSTS are in `tls_requests.rs`.

use crate::support;

use bytes::Bytes;
use director::app::StartOptions;
use director::config::ListenAddr;
use support::backend::TestBackend;
use support::tls::{self, make_cert, CertDir, TestCert};
use support::{wait_until, Director};

/// A director whose first proxy listener is TLS with `certs` (first = default) over one HTTP
/// backend, with a token-protected admin listener; certificate files are watched.
pub struct TlsSetup {
    _dir: tempfile::TempDir,
    pub certs: CertDir,
    pub backend: TestBackend,
    pub director: Director,
}

pub const TOKEN: &str = "tls-test-token-0123456789";

/// What a [`TlsSetup`] has beyond its TLS listener.
#[derive(Default)]
pub struct Extras {
    /// Goes into the TLS listener's map (e.g. `, hsts: {...}`).
    pub listener: String,
    /// More `proxy.listen` entries.
    pub listeners: Vec<String>,
    /// Lines of cluster `c`'s settings (indented by 4).
    pub cluster: String,
    /// The admin listener serves the first certificate.
    pub admin_tls: bool,
    /// The backend instead of the test backend.
    pub backend_url: Option<String>,
    /// Lines of `proxy:` (indented by 2).
    pub proxy: String,
}

impl TlsSetup {
    pub async fn start(certs: &[(&str, &TestCert)], extras: Extras) -> TlsSetup {
        let Extras {
            listener: listener_extra,
            listeners: extra_listeners,
            cluster: cluster_extra,
            admin_tls,
            backend_url,
            proxy: proxy_extra,
        } = extras;
        let dir = support::temp_dir("tls");
        let cert_dir = CertDir::new(dir.path(), certs);
        let list: Vec<String> = certs.iter().map(|(name, _)| cert_dir.yaml(name)).collect();
        let backend = TestBackend::start("b1").await;
        let mut listen = vec![format!(
            "{{ address: \"127.0.0.1:0\", tls: {{ certificates: [{}] }}{listener_extra} }}",
            list.join(", ")
        )];
        listen.extend(extra_listeners.iter().cloned());
        let admin_tls = match admin_tls {
            true => format!(", tls: {{ certificates: [{}] }}", list[0]),
            false => String::new(),
        };
        let yaml = format!(
            "proxy:\n  listen: [{}]\n  workers: 1\n{proxy_extra}\
             admin: {{ listen: \"127.0.0.1:0\", token: \"{TOKEN}\"{admin_tls} }}\n\
             routes:\n  - {{ path_prefix: \"/\", cluster: c }}\n\
             clusters:\n  c:\n{cluster_extra}    backends:\n      - {{ name: b1, url: \"{}\", capacity: 8 }}\n",
            listen.join(", "),
            backend_url.unwrap_or_else(|| backend.url())
        );
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let options = StartOptions {
            watch_config: true,
            ..StartOptions::default()
        };
        let director = support::start_file(&config, options).await;
        TlsSetup {
            _dir: dir,
            certs: cert_dir,
            backend,
            director,
        }
    }

    /// The `i`-th proxy listener's address.
    pub fn listener(&self, i: usize) -> std::net::SocketAddr {
        match &self.director.running_ref().proxy_addrs[i] {
            ListenAddr::Tcp(sa) => *sa,
            other => panic!("not TCP: {other:?}"),
        }
    }

    /// `/api/v1/status` over the admin listener (plain).
    pub async fn status(&self) -> serde_json::Value {
        let (status, body) = support::admin(&self.director, "GET", "/api/v1/status", None, Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// The certificate a new connection with SNI `sni` is given.
async fn presented(addr: std::net::SocketAddr, sni: Option<&str>) -> Vec<u8> {
    let stream = tls::connect(addr, sni, &[]).await.expect("tls connect");
    tls::peer_cert(&stream)
}

#[tokio::test]
async fn sni_picks_exact_names_a_wildcard_and_the_default() {
    let default = make_cert(&["default.test"]);
    let a = make_cert(&["a.test", "www.a.test"]);
    let b = make_cert(&["b.test"]);
    let wild = make_cert(&["*.wild.test"]);
    let certs = [("default", &default), ("a", &a), ("b", &b), ("wild", &wild)];
    let setup = TlsSetup::start(&certs, Extras::default()).await;
    let addr = setup.listener(0);
    let cases: [(Option<&str>, &TestCert, &str); 8] = [
        (Some("a.test"), &a, "exact"),
        (Some("www.a.test"), &a, "second SAN"),
        (Some("B.Test"), &b, "case-insensitive"),
        (Some("x.wild.test"), &wild, "wildcard"),
        (Some("x.y.wild.test"), &default, "a wildcard covers one label"),
        (Some("wild.test"), &default, "nor the parent"),
        (Some("unknown.test"), &default, "unknown name"),
        (None, &default, "no SNI"),
    ];
    for (sni, expected, why) in cases {
        assert!(presented(addr, sni).await == expected.der, "{sni:?}: {why}");
    }
    // And the connection serves HTTP: ALPN chose http/1.1, the backend answers.
    let stream = tls::connect(addr, Some("a.test"), &[]).await.expect("connect");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let reply = tls::send(&mut tls::http(stream).await, "GET", "/", &[], Bytes::new()).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "b1"));
    setup.director.stop().await;
}

#[tokio::test]
async fn tls_1_2_and_1_3_both_handshake() {
    let cert = make_cert(&["v.test"]);
    let setup = TlsSetup::start(&[("v", &cert)], Extras::default()).await;
    let addr = setup.listener(0);
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let stream = tls::connect(addr, Some("v.test"), &[version])
            .await
            .expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        let reply = tls::send(&mut tls::http(stream).await, "GET", "/", &[], Bytes::new()).await;
        assert_eq!(reply.status, 200, "{expected:?}");
    }
    setup.director.stop().await;
}

/// The server's order of cipher suites wins: a client that puts AES-256-GCM first, as
/// OpenSSL's do, gets AES-128-GCM (SHA-256) on TLS 1.3 and 1.2; a client offering only
/// ChaCha20-Poly1305 still gets it.
#[tokio::test]
async fn the_server_prefers_aes_128_gcm_and_every_suite_stays_on_offer() {
    use rustls::crypto::ring::cipher_suite as suite;
    use rustls::version::{TLS12, TLS13};
    use rustls::CipherSuite as S;
    let cert = make_cert(&["s.test"]);
    let setup = TlsSetup::start(&[("s", &cert)], Extras::default()).await;
    let addr = setup.listener(0);
    let openssl_order_13 = [
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
        suite::TLS13_AES_128_GCM_SHA256,
    ];
    let openssl_order_12 = [
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ];
    let chacha_only = [suite::TLS13_CHACHA20_POLY1305_SHA256];
    for (version, offered, expected) in [
        (&TLS13, &openssl_order_13[..], S::TLS13_AES_128_GCM_SHA256),
        (
            &TLS12,
            &openssl_order_12[..],
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (&TLS13, &chacha_only[..], S::TLS13_CHACHA20_POLY1305_SHA256),
    ] {
        let stream = tls::connect_suites(addr, &[version], offered)
            .await
            .expect("handshake");
        let negotiated = stream.get_ref().1.negotiated_cipher_suite().map(|s| s.suite());
        assert_eq!(negotiated, Some(expected), "offered {offered:?}");
        let reply = tls::send(&mut tls::http(stream).await, "GET", "/", &[], Bytes::new()).await;
        assert_eq!(reply.status, 200);
    }
    setup.director.stop().await;
}

#[tokio::test]
async fn a_changed_certificate_reaches_new_connections_and_open_ones_go_on() {
    let first = make_cert(&["r.test"]);
    let mut setup = TlsSetup::start(&[("r", &first)], Extras::default()).await;
    let addr = setup.listener(0);
    let open = tls::connect(addr, Some("r.test"), &[]).await.expect("connect");
    assert!(tls::peer_cert(&open) == first.der);
    let mut open = tls::http(open).await;
    assert_eq!(
        tls::send(&mut open, "GET", "/", &[], Bytes::new()).await.status,
        200
    );

    let second = make_cert(&["r.test"]);
    setup.certs.swap(&[("r", &second)]);
    wait_until("new connections get the new certificate", async || {
        presented(addr, Some("r.test")).await == second.der
    })
    .await;
    // The connection opened before the swap still serves requests.
    assert_eq!(
        tls::send(&mut open, "GET", "/", &[], Bytes::new()).await.status,
        200
    );
    let status = setup.status().await;
    assert_eq!(status["tls"][0]["last_reload"]["ok"], true, "{status:#}");
    setup.director.stop().await;
}

#[tokio::test]
async fn a_bad_new_certificate_keeps_the_old_one_and_shows_in_the_status() {
    let good = make_cert(&["k.test"]);
    let mut setup = TlsSetup::start(&[("k", &good)], Extras::default()).await;
    let addr = setup.listener(0);
    let status = setup.status().await;
    let listed = &status["tls"][0];
    assert_eq!(listed["listener"], addr.to_string(), "{status:#}");
    assert_eq!(listed["certificates"][0]["names"], serde_json::json!(["k.test"]));
    assert!(listed["certificates"][0]["not_after"].as_u64().unwrap() > 0);

    // A key that belongs to another certificate.
    let other = make_cert(&["k.test"]);
    let mismatched = TestCert {
        key_pem: other.key_pem.clone(),
        ..good.clone()
    };
    setup.certs.swap(&[("k", &mismatched)]);
    let error = wait_until("the failed reload in the status", async || {
        let status = setup.status().await;
        let reload = &status["tls"][0]["last_reload"];
        match reload["ok"] {
            serde_json::Value::Bool(false) => Ok(reload["error"].as_str().unwrap_or_default().to_owned()),
            _ => Err(format!("{status}")),
        }
    })
    .await;
    assert!(error.contains("does not belong"), "{error}");
    assert!(
        presented(addr, Some("k.test")).await == good.der,
        "the old one stays"
    );

    // Garbage, then a good new certificate: that one is taken.
    let garbage = TestCert {
        cert_pem: "not a certificate".to_owned(),
        ..good.clone()
    };
    setup.certs.swap(&[("k", &garbage)]);
    let fixed = make_cert(&["k.test"]);
    setup.certs.swap(&[("k", &fixed)]);
    wait_until("the fixed certificate is served", async || {
        presented(addr, Some("k.test")).await == fixed.der
    })
    .await;
    let status = setup.status().await;
    assert_eq!(status["tls"][0]["last_reload"]["ok"], true, "{status:#}");
    setup.director.stop().await;
}

#[tokio::test]
async fn the_admin_listener_over_tls_sets_a_secure_session_cookie() {
    let cert = make_cert(&["admin.test"]);
    let setup = TlsSetup::start(
        &[("a", &cert)],
        Extras {
            admin_tls: true,
            ..Extras::default()
        },
    )
    .await;
    let admin = setup.director.admin_addr();
    let stream = tls::connect(admin, Some("admin.test"), &[])
        .await
        .expect("tls to admin");
    assert!(tls::peer_cert(&stream) == cert.der);
    let body = format!("token={TOKEN}");
    let host = admin.to_string();
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let reply = tls::send(
        &mut tls::http(stream).await,
        "POST",
        "/login",
        &headers,
        Bytes::from(body),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    let cookie = reply.header("set-cookie").unwrap_or_default();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // The API answers over TLS too.
    let bearer = format!("Bearer {TOKEN}");
    let stream = tls::connect(admin, None, &[]).await.expect("tls to admin");
    let headers = [("host", host.as_str()), ("authorization", bearer.as_str())];
    let reply = tls::send(
        &mut tls::http(stream).await,
        "GET",
        "/api/v1/status",
        &headers,
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    setup.director.stop().await;
}
