//! `director --demo` end to end, and `--health-check`: the real binary on a copy of the shipped
//! `config.yaml` whose ports and socket directory are moved to free ones (so a demo or anything
//! else already on 8080, 8081, 9101 or 9102 doesn't matter). The demo starts its sample
//! backends at whatever addresses the config names, so the copy gets its own.

use crate::support;

use std::net::{SocketAddr, TcpListener};
use std::process::ExitStatus;

use bytes::Bytes;
use support::binary::{command, Binary, Stream};
use support::{free_port, temp_dir, wait_until, Reply, Target};

/// A `director --demo` process and where it listens.
struct DemoProcess {
    binary: Binary,
    dir: tempfile::TempDir,
    proxy: SocketAddr,
    admin: SocketAddr,
    /// What it printed up to the end of its banner.
    banner: String,
}

/// Replaces `from` by `to` in `text`, insisting that `from` is there: if the shipped config
/// changes, this test must follow rather than quietly use the real ports.
fn moved(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the shipped config.yaml no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// Starts `director --demo` on the shipped config with free ports and a private socket
/// directory; the admin listener on `admin_host`. Returns once the banner is printed.
async fn start_demo(tag: &str, admin_host: &str) -> DemoProcess {
    let dir = temp_dir(&format!("demo-{tag}"));
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).expect("config");
    let (proxy_port, admin_port) = (free_port(), free_port());
    let mut yaml = moved(&shipped, "0.0.0.0:8080", &format!("127.0.0.1:{proxy_port}"));
    for sample in ["127.0.0.1:9101", "127.0.0.1:9102"] {
        yaml = moved(&yaml, sample, &format!("127.0.0.1:{}", free_port()));
    }
    yaml = moved(
        &yaml,
        "/tmp/director-demo/",
        &format!("{}/", dir.path().join("sockets").display()),
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).expect("write config");

    let binary = Binary::spawn(|c| {
        c.arg("--demo")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("DIRECTOR_ADMIN_LISTEN", format!("{admin_host}:{admin_port}"))
            .env_remove("DIRECTOR_ADMIN_TOKEN")
            .env("RUST_LOG", "warn");
    });
    binary
        .line("the end of the banner", Stream::Stdout, |l| {
            l.contains("traffic:").then_some(())
        })
        .await;
    let banner = binary.output(Stream::Stdout);
    DemoProcess {
        binary,
        dir,
        proxy: SocketAddr::from(([127, 0, 0, 1], proxy_port)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        banner,
    }
}

impl DemoProcess {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        support::request(&Target::Tcp(self.proxy), "GET", path, headers, Bytes::new()).await
    }

    async fn admin(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let host = self.admin.to_string();
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        headers.push(("host", &host));
        support::request(&Target::Tcp(self.admin), "GET", path, &headers, Bytes::new()).await
    }

    /// SIGTERM, then the exit status (within 10 s) and the directory it ran in.
    async fn terminate(mut self) -> (ExitStatus, tempfile::TempDir) {
        self.binary.signal("-TERM");
        let status = self.binary.exited().await;
        (status, self.dir)
    }
}

/// Runs `director --health-check url`, with `token` in DIRECTOR_ADMIN_TOKEN; its exit code.
fn health_check(url: &str, token: Option<&str>) -> Option<i32> {
    let mut command = command();
    command
        .args(["--health-check", url])
        .env_remove("DIRECTOR_ADMIN_TOKEN");
    if let Some(token) = token {
        command.env("DIRECTOR_ADMIN_TOKEN", token);
    }
    command.output().expect("run --health-check").status.code()
}

/// Every backend name in a `GET /api/v1/clusters` answer.
fn backend_names(reply: &Reply) -> Vec<String> {
    let clusters: serde_json::Value = serde_json::from_slice(&reply.body).expect("clusters JSON");
    let clusters = clusters.as_array().expect("a list of clusters");
    clusters
        .iter()
        .flat_map(|c| c["backends"].as_array().into_iter().flatten())
        .filter_map(|b| b["name"].as_str().map(str::to_owned))
        .collect()
}

/// Requests served by the cluster `name`, per the API.
fn served(reply: &Reply, name: &str) -> u64 {
    let clusters: serde_json::Value = serde_json::from_slice(&reply.body).expect("clusters JSON");
    let cluster = clusters
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no cluster {name}"));
    cluster["stats"]["in_flight"]["total"]
        .as_u64()
        .expect("in_flight.total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_http_over_tcp_and_unix_and_fastcgi_and_lists_them() {
    let demo = start_demo("kinds", "127.0.0.1").await;
    let banner = demo.banner.clone();
    assert!(
        banner.contains(&format!("proxy        http://{}/", demo.proxy)),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("dashboard    http://{}/", demo.admin)),
        "{banner}"
    );
    assert!(!banner.contains("admin token"), "no token on loopback:\n{banner}");
    for sample in ["app01", "app02", "app03", "php01"] {
        assert!(
            banner.contains(sample),
            "{sample} missing from the banner:\n{banner}"
        );
    }

    // HTTP over TCP: least-load takes turns between the two active backends.
    let mut seen = Vec::new();
    for _ in 0..50 {
        let reply = demo.get("/", &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let name = reply
            .text()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !seen.contains(&name) {
            seen.push(name);
        }
        if seen.len() >= 2 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["app01", "app02"]);
    // HTTP over a UNIX socket: the standby app03, reached through client-side routing.
    let reply = demo.get("/checkout", &[("cookie", "X-Backend=app03")]).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.text().starts_with("app03 answered GET /checkout"),
        "{}",
        reply.text()
    );
    // FastCGI over a UNIX socket: the built-in responder echoes the request.
    let reply = demo.get("/php/hello?who=test", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-demo-backend"), Some("php01"));
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    let page = reply.text();
    for expected in [
        "<h1>php01: 200 OK</h1>",
        "/php/hello?who=test",
        "/index.php",
        "/srv/php/index.php",
    ] {
        assert!(page.contains(expected), "{expected} not in:\n{page}");
    }
    assert_eq!(demo.get("/php/missing", &[]).await.status, 404);
    // The road-warrior route reaches app02's address directly.
    let reply = demo.get("/legacy/x", &[]).await;
    assert!(
        reply.text().starts_with("app02 answered GET /legacy/x"),
        "{}",
        reply.text()
    );

    // The API lists every backend, open on loopback without a token.
    let reply = demo.admin("/api/v1/clusters", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let names = backend_names(&reply);
    for backend in ["app01", "app02", "app03", "php01"] {
        assert!(names.iter().any(|n| n == backend), "{backend} not in {names:?}");
    }
    // The traffic generator keeps both clusters busy without the test's help.
    let before = (served(&reply, "shop"), served(&reply, "php"));
    wait_until("generated traffic on both clusters", async || {
        let reply = demo.admin("/api/v1/clusters", None).await;
        let now = (served(&reply, "shop"), served(&reply, "php"));
        if now.0 >= before.0 + 5 && now.1 >= before.1 + 2 {
            Ok(())
        } else {
            Err(format!("{before:?} -> {now:?}"))
        }
    })
    .await;
    // The dashboard answers, and names every backend.
    let page = demo.admin("/", None).await;
    assert_eq!(page.status, 200, "the dashboard: {}", page.text());
    let content_type = page.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text();
    for backend in ["app01", "app02", "app03", "php01"] {
        assert!(html.contains(backend), "the dashboard does not name {backend}");
    }

    let monitor = format!("http://{}/haproxy/monitor", demo.admin);
    assert_eq!(health_check(&monitor, None), Some(0));
    let sockets = demo.dir.path().join("sockets");
    assert!(sockets.join("php.sock").exists() && sockets.join("app03.sock").exists());
    let (status, dir) = demo.terminate().await;
    assert!(status.success(), "SIGTERM ends the demo with {status:?}");
    assert!(
        !dir.path().join("sockets/php.sock").exists(),
        "the demo removes its sockets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_makes_up_an_admin_token_when_the_admin_listener_is_reachable_from_other_hosts() {
    let demo = start_demo("token", "0.0.0.0").await;
    let token = demo
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("admin token"))
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|| panic!("no generated token in:\n{}", demo.banner));
    assert_eq!(token.len(), 32, "{token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");

    assert_eq!(demo.admin("/api/v1/clusters", None).await.status, 401);
    let reply = demo.admin("/api/v1/clusters", Some(token.as_str())).await;
    assert_eq!(reply.status, 200);
    assert!(backend_names(&reply).contains(&"php01".to_owned()));

    let monitor = format!("http://{}/haproxy/monitor", demo.admin);
    assert_eq!(
        health_check(&monitor, Some(token.as_str())),
        Some(0),
        "with the token"
    );
    assert_eq!(health_check(&monitor, None), Some(1), "401 without it");
    let (status, _dir) = demo.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[test]
fn health_check_fails_on_refused_connections_and_bad_urls() {
    let closed = format!("http://127.0.0.1:{}/haproxy/monitor", free_port());
    assert_eq!(health_check(&closed, None), Some(1));
    assert_eq!(health_check("ftp://127.0.0.1/", None), Some(1));
    let out = command().arg("--health-check").output().expect("run");
    assert_eq!(out.status.code(), Some(2), "a URL is required");
}

#[test]
fn demo_refuses_a_busy_sample_address() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let dir = temp_dir("demo-busy");
    let config = dir.path().join("config.yaml");
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\nroutes:\n  - {{ cluster: c }}\nclusters:\n  c:\n    backends:\n      - {{ name: a, url: \"http://127.0.0.1:{port}\" }}\n"
    );
    std::fs::write(&config, yaml).expect("write");
    let out = command()
        .args(["--demo", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("demo backend a at http://127.0.0.1:"), "{err}");
    drop(busy);
}
