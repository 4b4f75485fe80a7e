//! Tests of the loader: whole documents in, `Config` or `(path, message)` errors out. The bucket
//! tree's tests are in the child module `buckets`, those of the `admin` section in
//! `admin_section`, those of health checks and client routing in `health`, those of `fastcgi`
//! and `x_sendfile` in `fastcgi`, those of `tls` and `backend_tls` in `backend_tls`, those of
//! `discover:` and `resolver` in `discovery`, listener maps and `tls` in `tls_section` (each in
//! `tests/`).

use std::path::{Path, PathBuf};

use super::MISSING;
use super::*;
use crate::config::model::*;

mod admin_section;
mod backend_tls;
mod buckets;
mod client_facing;
mod discovery;
mod fastcgi;
mod haproxy_compat_section;
mod health;
mod tls_section;

/// The environment seen by the tests.
fn test_env(name: &str) -> Result<String, VarError> {
    match name {
        "APP_HOST" => Ok("10.0.0.9".to_owned()),
        "APP_PORT" => Ok("8081".to_owned()),
        "LOG_DIR" => Ok("/var/log/director".to_owned()),
        _ => Err(VarError::NotPresent),
    }
}

fn load(yaml: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(yaml, &test_env)
}

fn ok(yaml: &str) -> Config {
    load(yaml).unwrap_or_else(|e| panic!("config should be valid:\n{e}"))
}

/// The errors as `(path, message)` pairs.
fn errors(yaml: &str) -> Vec<(String, String)> {
    match load(yaml) {
        Ok(c) => panic!("config should be invalid: {c:?}"),
        Err(ConfigErrors(list)) => list.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

/// The only error: its path and message.
fn one_error(yaml: &str) -> (String, String) {
    let list = errors(yaml);
    assert_eq!(list.len(), 1, "expected exactly one error, got {list:#?}");
    list.into_iter().next().unwrap_or_default()
}

fn paths(yaml: &str) -> Vec<String> {
    errors(yaml).into_iter().map(|(p, _)| p).collect()
}

const MINIMAL: &str = "proxy: { listen: \"127.0.0.1:0\" }\n";

fn tcp(host: &str, port: u16, text: &str) -> BackendUrl {
    BackendUrl {
        protocol: Protocol::Http,
        endpoint: Endpoint::Tcp {
            host: host.to_owned(),
            port,
        },
        tls: false,
        text: text.to_owned(),
    }
}

#[test]
fn full_config() {
    let c = ok(r#"
proxy:
  listen: ["0.0.0.0:8080", "[::]:8080", "unix:/run/director.sock"]
  workers: 4
  keep_alive: 20s
  client_timeout: 1500ms
  send_timeout: 30s
  max_request_line: 4096
  max_header_size: 16384
  max_connections: 10000
access_log: { enabled: true, format: json, path: /var/log/director/access.log }
routes:
  - { host: "shop.example.com", path_prefix: "/", cluster: shop }
  - { path_prefix: "/legacy/", backend: "http://127.0.0.1:9100" }
clusters:
  shop:
    scheduler: least-load
    queue_limit: 64
    queue_timeout: 5s
    retry_after: 0
    max_retry_count: 1
    enqueue_on_unavailable: true
    connect_timeout: 1s
    read_timeout: 2m
    write_timeout: 1h
    backends:
      - { name: app01, url: "http://10.0.0.1:8080", capacity: 8, role: active, enabled: true }
      - { name: app02, url: "http+unix:///run/app02.sock", capacity: 8, role: standby }
      - { name: app03, url: "http://[::1]:8080", role: backup, enabled: false }
"#);
    assert_eq!(
        c.proxy,
        ProxyConfig {
            listen: vec![
                ListenAddr::Tcp("0.0.0.0:8080".parse().expect("addr")),
                ListenAddr::Tcp("[::]:8080".parse().expect("addr")),
                ListenAddr::Unix(PathBuf::from("/run/director.sock")),
            ]
            .into_iter()
            .map(ListenerConfig::plain)
            .collect(),
            workers: 4,
            keep_alive: Duration::from_secs(20),
            client_timeout: Duration::from_millis(1500),
            send_timeout: Duration::from_secs(30),
            max_request_line: 4096,
            max_header_size: 16384,
            max_connections: Some(10000),
            request_id: None,
            traceparent: None,
            http2: true,
            h2c: false,
            http2_max_concurrent_streams: 128,
        }
    );
    assert_eq!(
        c.access_log,
        AccessLogConfig {
            enabled: true,
            format: AccessLogFormat::Json,
            path: Some(PathBuf::from("/var/log/director/access.log")),
        }
    );
    assert_eq!(
        c.routes,
        vec![
            RouteConfig {
                host: Some("shop.example.com".to_owned()),
                path_prefix: "/".to_owned(),
                target: RouteTarget::Cluster("shop".to_owned()),
                cache: CacheConfig::default(),
                fastcgi: None,
                timeouts: RouteTimeouts::default(),
                tls: None,
            },
            RouteConfig {
                host: None,
                path_prefix: "/legacy/".to_owned(),
                target: RouteTarget::Backend(tcp("127.0.0.1", 9100, "http://127.0.0.1:9100")),
                cache: CacheConfig::default(),
                fastcgi: None,
                timeouts: RouteTimeouts::default(),
                tls: None,
            },
        ]
    );
    let shop = &c.clusters["shop"];
    assert_eq!(shop.scheduler, SchedulerKind::LeastLoad);
    assert_eq!(shop.queue_limit, 64);
    assert_eq!(shop.queue_timeout, Duration::from_secs(5));
    assert_eq!(shop.retry_after, 0);
    assert_eq!(shop.max_retry_count, 1);
    assert!(shop.enqueue_on_unavailable);
    assert_eq!(shop.connect_timeout, Duration::from_secs(1));
    assert_eq!(shop.read_timeout, Duration::from_secs(120));
    assert_eq!(shop.write_timeout, Duration::from_secs(3600));
    assert_eq!(
        shop.backends,
        vec![
            BackendConfig {
                name: "app01".to_owned(),
                url: tcp("10.0.0.1", 8080, "http://10.0.0.1:8080"),
                capacity: 8,
                role: Role::Active,
                enabled: true,
                fastcgi: None,
                health: None,
                terminate_protection: false,
                tls: None,
                discovered_by: None,
            },
            BackendConfig {
                name: "app02".to_owned(),
                url: BackendUrl {
                    protocol: Protocol::Http,
                    endpoint: Endpoint::Unix(PathBuf::from("/run/app02.sock")),
                    tls: false,
                    text: "http+unix:///run/app02.sock".to_owned(),
                },
                capacity: 8,
                role: Role::Standby,
                enabled: true,
                fastcgi: None,
                health: None,
                terminate_protection: false,
                tls: None,
                discovered_by: None,
            },
            BackendConfig {
                name: "app03".to_owned(),
                url: tcp("::1", 8080, "http://[::1]:8080"),
                capacity: 0,
                role: Role::Backup,
                enabled: false,
                fastcgi: None,
                health: None,
                terminate_protection: false,
                tls: None,
                discovered_by: None,
            },
        ]
    );
}

#[test]
fn defaults() {
    let c = ok(&format!(
        "{MINIMAL}routes: [{{ cluster: shop }}]\nclusters:\n  shop:\n    backends: [{{ name: a, url: \"http://h\" }}]\n  empty:\n"
    ));
    assert!(c.proxy.workers >= 1, "workers 0 resolves to the CPU count");
    assert_eq!(c.proxy.keep_alive, Duration::from_secs(15));
    assert_eq!(c.proxy.client_timeout, Duration::from_secs(10));
    assert_eq!(c.proxy.send_timeout, Duration::from_secs(60));
    assert_eq!(
        (
            c.proxy.max_request_line,
            c.proxy.max_header_size,
            c.proxy.max_connections
        ),
        (8192, 32768, None)
    );
    assert_eq!(
        c.access_log,
        AccessLogConfig {
            enabled: false,
            format: AccessLogFormat::Combined,
            path: None
        }
    );
    assert_eq!(c.routes[0].host, None);
    assert_eq!(c.routes[0].path_prefix, "/");
    let shop = &c.clusters["shop"];
    let expected = ClusterConfig {
        enabled: true,
        scheduler: SchedulerKind::RoundRobin,
        queue_limit: 128,
        queue_timeout: Duration::from_secs(10),
        retry_after: 10,
        max_retry_count: 3,
        enqueue_on_unavailable: false,
        connect_timeout: Duration::from_secs(4),
        read_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(8),
        backends: shop.backends.clone(),
        discover: Vec::new(),
        buckets: vec![],
        default_bucket: None,
        debug_headers: false,
        health: None,
        sticky_offline: false,
        client_routing: None,
        fastcgi: None,
        x_sendfile: XSendfileConfig::default(),
        passive_health: PassiveHealthConfig {
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
        },
        forwarded_for: ForwardedFor::Append,
        via: "director".to_owned(),
        client_body_timeout: Duration::from_secs(60),
        backend_keep_alive: Duration::from_secs(4),
        cache: CacheConfig::default(),
        on_client_abort: OnClientAbort::Close,
        upgrades: Default::default(),
    };
    assert_eq!(*shop, expected);
    let backend = &shop.backends[0];
    assert_eq!(backend.url, tcp("h", 80, "http://h"));
    assert_eq!(
        (backend.capacity, backend.role, backend.enabled),
        (0, Role::Active, true)
    );
    assert_eq!(
        c.clusters["empty"],
        ClusterConfig {
            backends: vec![],
            ..expected
        }
    );
}

#[test]
fn minimal_and_null_sections() {
    let c = ok(&format!("{MINIMAL}access_log:\nroutes:\nclusters:\n"));
    assert!(c.routes.is_empty() && c.clusters.is_empty());
    assert_eq!(c.access_log.path, None);
    let c = ok("proxy: { listen: \"[::1]:80\", workers: 3, keep_alive: }\nroutes: []\nclusters: {}\n");
    assert_eq!(c.proxy.workers, 3);
    assert_eq!(c.proxy.keep_alive, Duration::from_secs(15));
    let c = ok("proxy: { listen: \"127.0.0.1:0\", keep_alive: 0s }\n");
    assert_eq!(c.proxy.keep_alive, Duration::ZERO);
}

#[test]
fn listen_errors() {
    assert_eq!(one_error("proxy: {}\n"), ("proxy.listen".into(), MISSING.into()));
    assert_eq!(one_error("proxy:\n").0, "proxy.listen");
    assert_eq!(
        one_error("routes: []\n"),
        ("proxy".into(), "required section is missing".into())
    );
    assert_eq!(
        one_error("proxy: { listen: [] }\n").1,
        "must list at least one address"
    );
    let e =
        errors("proxy: { listen: [\"0.0.0.0:80\", 8080, \"localhost:80\", \"0.0.0.0:80\", \"unix:\"] }\n");
    let got: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "proxy.listen[1]",
            "proxy.listen[2]",
            "proxy.listen[3]",
            "proxy.listen[4]"
        ]
    );
    assert!(e[0].1.contains("expected an address string"), "{e:?}");
    assert!(e[1].1.contains("not a listen address"), "{e:?}");
    assert_eq!(e[2].1, "duplicate listen address (also at proxy.listen[0])");
    assert_eq!(one_error("proxy: { listen: { a: 1 } }\n").0, "proxy.listen");
}

#[test]
fn unknown_keys() {
    let yaml = format!(
        "{MINIMAL}Proxy: {{}}\n\
         access_log: {{ rotate: true }}\nroutes: [{{ cluster: c, weight: 1 }}]\n\
         clusters:\n  c:\n    proxy_cache: {{ enabled: false }}\n    backends: [{{ name: a, url: \"http://h\", weight: 2 }}]\n"
    );
    assert_eq!(
        paths(&yaml),
        [
            "Proxy",
            "access_log.rotate",
            "routes[0].weight",
            "clusters.c.proxy_cache",
            "clusters.c.backends[0].weight",
        ]
    );
    let (_, message) = one_error(&format!("{MINIMAL}cache: {{}}\n"));
    assert_eq!(
        message,
        "unknown key (expected one of: proxy, admin, state_file, access_log, routes, clusters, haproxy_compat, cluster_state, resolver)"
    );
    assert_eq!(
        one_error("proxy: { listen: \"127.0.0.1:0\", threads: 2 }\n").0,
        "proxy.threads"
    );
}

#[test]
fn three_mistakes_three_errors() {
    let e = errors(&format!(
        "{MINIMAL}routes:\n  - {{ cluster: shopp }}\nclusters:\n  shop:\n    scheduler: random\n    backends:\n      - {{ name: a, url: \"http://h:1\" }}\n      - {{ name: b, url: \"ftp://h:2\" }}\n"
    ));
    assert_eq!(
        e,
        [
            (
                "routes[0].cluster".to_owned(),
                "unknown cluster `shopp`".to_owned()
            ),
            (
                "clusters.shop.scheduler".to_owned(),
                "unknown scheduler `random` (expected one of: rr, chance, least-load)".to_owned()
            ),
            (
                "clusters.shop.backends[1].url".to_owned(),
                "unsupported URL scheme `ftp` (expected http, https, http+unix, fastcgi or fastcgi+unix)"
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn every_bad_field_of_a_piece_is_reported() {
    let yaml = format!(
        "{MINIMAL}clusters:\n  c:\n    queue_limit: -1\n    connect_timeout: 4\n    read_timeout: 0s\n    \
         write_timeout: soon\n    retry_after: 1.5\n    enqueue_on_unavailable: \"yes\"\n    queue_timeout: 10s\n"
    );
    let e = errors(&yaml);
    let got: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "clusters.c.connect_timeout",
            "clusters.c.enqueue_on_unavailable",
            "clusters.c.queue_limit",
            "clusters.c.retry_after",
            "clusters.c.write_timeout",
            "clusters.c.read_timeout",
        ]
    );
    assert!(e[0].1.contains("a unit is required, e.g. \"4s\""), "{e:?}");
    assert!(e[1].1.contains("expected a boolean"), "{e:?}");
    assert!(e[2].1.contains("expected usize"), "{e:?}");
    assert!(e[4].1.contains("not a duration"), "{e:?}");
    assert_eq!(e[5].1, "must be greater than 0");
}

#[test]
fn route_errors() {
    let e = errors(&format!(
        "{MINIMAL}routes:\n  - {{ path_prefix: api }}\n  - {{ cluster: c, backend: \"http://h\" }}\n  \
         - {{ backend: \"fastcgi://h:9000\" }}\n  - {{ host: \"a.example:80\", backend: \"http://h\" }}\n  \
         - {{ cluster: 7 }}\n  - 5\nclusters: {{ c: }}\n"
    ));
    let want = [
        ("routes[0].path_prefix", "must start with \"/\" (got `api`)"),
        ("routes[0]", "needs a target: set `cluster` or `backend`"),
        ("routes[1]", "set either `cluster` or `backend`, not both"),
        (
            "routes[2].backend",
            "a route to a FastCGI address needs a script mapping: set `fastcgi: { document_root }` \
             on the route",
        ),
        (
            "routes[3].host",
            "`a.example:80` is not a host name (no port, e.g. shop.example.com)",
        ),
        (
            "routes[4].cluster",
            "invalid type: integer `7`, expected a string",
        ),
        ("routes[5]", "expected a route (a map), found a number"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(p, m)| (p.to_string(), m.to_string())).collect();
    assert_eq!(e, want);
    assert_eq!(one_error(&format!("{MINIMAL}routes: {{ a: 1 }}\n")).0, "routes");
    let c = ok(&format!(
        "{MINIMAL}routes: [{{ host: \"[::1]\", backend: \"http://h\" }}]\n"
    ));
    assert_eq!(c.routes[0].host.as_deref(), Some("[::1]"));
}

/// A route straight to a FastCGI address with its script mapping, and a route's own timeouts.
#[test]
fn road_warrior_fastcgi_and_route_timeouts() {
    let c = ok(&format!(
        "{MINIMAL}routes:\n  \
         - {{ path_prefix: /php/, backend: \"fastcgi://127.0.0.1:9000\", fastcgi: {{ document_root: /srv, script: index.php }}, read_timeout: 2s }}\n  \
         - {{ cluster: c, connect_timeout: 100ms, write_timeout: 1s }}\n\
         clusters: {{ c: }}\n"
    ));
    let php = &c.routes[0];
    assert!(matches!(&php.target, RouteTarget::Backend(url) if url.protocol == Protocol::FastCgi));
    let mapping = php.fastcgi.as_ref().expect("a script mapping");
    assert_eq!(mapping.document_root, PathBuf::from("/srv"));
    assert_eq!(
        mapping.script.as_deref(),
        Some(std::path::Path::new("/srv/index.php"))
    );
    assert_eq!(
        php.timeouts,
        RouteTimeouts {
            read: Some(Duration::from_secs(2)),
            ..Default::default()
        }
    );
    assert_eq!(
        c.routes[1].timeouts,
        RouteTimeouts {
            connect: Some(Duration::from_millis(100)),
            read: None,
            write: Some(Duration::from_secs(1)),
        }
    );

    let e = errors(&format!(
        "{MINIMAL}routes:\n  \
         - {{ backend: \"http://h\", fastcgi: {{ document_root: /srv }} }}\n  \
         - {{ cluster: c, fastcgi: {{ document_root: /srv }} }}\n  \
         - {{ backend: \"fastcgi+unix:///run/php.sock\", fastcgi: {{ document_root: srv }}, connect_timeout: 0s, read_timeout: soon }}\n\
         clusters: {{ c: }}\n"
    ));
    let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[0].fastcgi",
            "routes[1].fastcgi",
            "routes[2].read_timeout",
            "routes[2].fastcgi.document_root",
            "routes[2].connect_timeout",
        ],
        "{e:#?}"
    );
    assert!(e[0].1.contains("fastcgi:// or fastcgi+unix://"), "{e:?}");
    // Two routes to one FastCGI address must agree on its script mapping.
    let (path, message) = one_error(&format!(
        "{MINIMAL}routes:\n  \
         - {{ path_prefix: /a/, backend: \"fastcgi://h:9000\", fastcgi: {{ document_root: /a }} }}\n  \
         - {{ path_prefix: /b/, backend: \"fastcgi://h:9000\", fastcgi: {{ document_root: /b }} }}\n"
    ));
    assert_eq!(path, "routes[1].fastcgi");
    assert!(message.contains("differs from routes[0]'s"), "{message}");
    assert!(e[1].1.contains("set it on the cluster"), "{e:?}");
    assert_eq!(e[4].1, "must be greater than 0");
}

#[test]
fn backend_errors() {
    let e = errors(&format!(
        "{MINIMAL}clusters:\n  c:\n    backends:\n      - {{ url: \"http://h\" }}\n      - {{ name: a }}\n      \
         - {{ name: \"a b\", url: \"http://h\" }}\n      - {{ name: a, url: \"http://h\", role: primary }}\n      \
         - {{ name: b, url: \"http://h\", capacity: -1 }}\n      - {{ name: c, url: \"fastcgi+unix:///run/php.sock\" }}\n"
    ));
    let want = [
        ("clusters.c.backends[0].name", MISSING),
        ("clusters.c.backends[1].url", MISSING),
        (
            "clusters.c.backends[2].name",
            "invalid backend name `a b` (use letters, digits, '_', '.', '-')",
        ),
        (
            "clusters.c.backends[3].name",
            "duplicate backend name `a` (also at clusters.c.backends[1].name)",
        ),
        (
            "clusters.c.backends[3].role",
            "unknown role `primary` (expected one of: active, standby, backup)",
        ),
        (
            "clusters.c.backends[4].capacity",
            "invalid value: integer `-1`, expected u32",
        ),
        (
            "clusters.c.backends[5].url",
            "a FastCGI backend needs a script mapping: set `fastcgi: { document_root }` on the \
             cluster or on the backend",
        ),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(p, m)| (p.to_string(), m.to_string())).collect();
    assert_eq!(e, want);
    assert_eq!(
        one_error(&format!(
            "{MINIMAL}clusters: {{ c: {{ backends: {{ a: 1 }} }} }}\n"
        )),
        (
            "clusters.c.backends".into(),
            "expected a list of backends, found a map".into()
        )
    );
}

#[test]
fn cluster_errors() {
    let e = errors(&format!(
        "{MINIMAL}clusters:\n  \"bad name\": {{ scheduler: x }}\n  api.v2: 5\n"
    ));
    let got: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "clusters.\"api.v2\"",
            "clusters.\"bad name\".scheduler",
            "clusters.\"bad name\""
        ]
    );
    assert_eq!(e[0].1, "expected a cluster (a map), found a number");
    assert!(e[2].1.starts_with("invalid cluster name `bad name`"), "{e:?}");
    assert_eq!(one_error(&format!("{MINIMAL}clusters: [a]\n")).0, "clusters");
    let c = ok(&format!(
        "{MINIMAL}clusters: {{ api.v2: {{}} }}\nroutes: [{{ cluster: api.v2 }}]\n"
    ));
    assert!(c.clusters.contains_key("api.v2"));
}

#[test]
fn access_log_errors() {
    let e = errors(&format!(
        "{MINIMAL}access_log: {{ enabled: 1, format: xml, path: \"\" }}\n"
    ));
    let got: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        ["access_log.enabled", "access_log.format", "access_log.path"]
    );
    assert_eq!(
        e[1].1,
        "unknown access log format `xml` (expected one of: combined, json)"
    );
    assert_eq!(one_error(&format!("{MINIMAL}access_log: on\n")).0, "access_log");
}

#[test]
fn env_substitution() {
    let c = ok(r#"
proxy: { listen: "127.0.0.1:${APP_PORT}" }
access_log: { path: "${LOG_DIR}/access.log" }
routes: [{ backend: "http://${APP_HOST}:${APP_PORT}/" }]
"#);
    assert_eq!(
        c.proxy.listen,
        [ListenerConfig::plain(ListenAddr::Tcp(
            "127.0.0.1:8081".parse().expect("addr")
        ))]
    );
    assert_eq!(
        c.access_log.path,
        Some(PathBuf::from("/var/log/director/access.log"))
    );
    let RouteTarget::Backend(url) = &c.routes[0].target else {
        panic!("backend route")
    };
    assert_eq!(url, &tcp("10.0.0.9", 8081, "http://10.0.0.9:8081/"));

    assert_eq!(expand_vars("a$${b}$c$", &test_env), Ok("a${b}$c$".to_owned()));
    assert!(expand_vars("${1X}", &test_env).is_err());
    assert_eq!(expand_vars("${NOPE:-}", &test_env), Ok(String::new()));
    assert_eq!(expand_vars("${NOPE:-x:y}/", &test_env), Ok("x:y/".to_owned()));
    assert_eq!(
        expand_vars("${APP_HOST:-x}", &test_env),
        Ok("10.0.0.9".to_owned())
    );
    assert!(expand_vars("${1X:-a}", &test_env).is_err());
    assert!(expand_vars("${APP_HOST", &test_env)
        .expect_err("unterminated")
        .contains("unterminated"));

    // An unset variable is one error at its path, not followed by a bad-URL error there.
    let e = errors(&format!(
        "{MINIMAL}clusters: {{ c: {{ backends: [{{ name: a, url: \"http://${{NOPE}}:80\" }}] }} }}\n\
         routes: [{{ cluster: \"${{NOPE}}\" }}]\n"
    ));
    assert_eq!(
        e,
        [
            (
                "routes[0].cluster".to_owned(),
                "environment variable `NOPE` is not set".to_owned()
            ),
            (
                "clusters.c.backends[0].url".to_owned(),
                "environment variable `NOPE` is not set".to_owned()
            ),
        ]
    );
}

#[test]
fn real_environment_is_used_by_load_str() {
    // PATH is set in any test environment; used as a file name it is still a valid value.
    let c = load_str(&format!("{MINIMAL}access_log: {{ path: \"${{PATH}}\" }}\n")).expect("valid");
    let path = std::env::var("PATH").expect("PATH is set");
    assert_eq!(c.access_log.path, Some(PathBuf::from(path)));
}

#[test]
fn unreadable_input() {
    let (path, message) = match load_str("proxy: [\n") {
        Err(ConfigErrors(list)) if list.len() == 1 => (list[0].path.clone(), list[0].message.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(path, "");
    assert!(message.starts_with("invalid YAML"), "{message}");
    let e = load_str("- 1\n- 2\n").expect_err("a list");
    assert_eq!(
        e.to_string(),
        "the top level must be a map of sections: invalid type: sequence, expected a map"
    );
    let e = load_str("a: 1\n---\nb: 2\n").expect_err("two documents");
    assert_eq!(e.to_string(), "invalid YAML: Got 2 YAML documents, expected 1");
    assert_eq!(load_str("").expect_err("empty").0[0].path, "proxy");

    let missing = Path::new("/nonexistent/director.yaml");
    let e = load_file(missing).expect_err("missing");
    assert_eq!(
        e.0,
        [ConfigError {
            path: missing.display().to_string(),
            message: "file not found".into()
        }]
    );
    let e = load_file(&std::env::temp_dir()).expect_err("a directory");
    assert_eq!(e.0[0].message, "not a regular file");
}

#[test]
fn load_file_accepts_any_extension() {
    let file = std::env::temp_dir().join(format!("director-config-test-{}.conf", std::process::id()));
    std::fs::write(&file, MINIMAL).expect("write temp file");
    let result = load_file(&file);
    std::fs::write(&file, "proxy: { listen: \"127.0.0.1:0\", nope: 1 }\n").expect("write temp file");
    let bad = load_file(&file);
    let _ = std::fs::remove_file(&file);
    assert_eq!(result.expect("valid").proxy.listen.len(), 1);
    assert_eq!(bad.expect_err("unknown key").0[0].path, "proxy.nope");
}

#[test]
fn display() {
    let e = ConfigErrors(vec![
        ConfigError {
            path: "routes[0].cluster".into(),
            message: "unknown cluster `x`".into(),
        },
        ConfigError {
            path: String::new(),
            message: "invalid YAML".into(),
        },
    ]);
    assert_eq!(
        e.to_string(),
        "routes[0].cluster: unknown cluster `x`\ninvalid YAML"
    );
    assert_eq!(key_path("clusters", "a.b"), "clusters.\"a.b\"");
    assert_eq!(key_path("", "proxy"), "proxy");
}

#[test]
fn passive_health_forwarded_for_and_client_body_timeout() {
    let yaml = format!(
        "{MINIMAL}clusters:\n  c:\n    forwarded_for: replace\n    client_body_timeout: 5s\n    \
         passive_health: {{ max_fails: 0, fail_timeout: 30s }}\n"
    );
    let config = ok(&yaml);
    let c = &config.clusters["c"];
    assert_eq!(c.forwarded_for, ForwardedFor::Replace);
    assert_eq!(c.client_body_timeout, Duration::from_secs(5));
    assert_eq!(
        c.passive_health,
        PassiveHealthConfig {
            max_fails: 0,
            fail_timeout: Duration::from_secs(30)
        }
    );
    let yaml = format!(
        "{MINIMAL}clusters:\n  c:\n    forwarded_for: trust\n    client_body_timeout: 0s\n    \
         passive_health: {{ max_fails: -1, fail_timeout: 0s, window: 1s }}\n"
    );
    let e = errors(&yaml);
    let got: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "clusters.c.forwarded_for",
            "clusters.c.client_body_timeout",
            "clusters.c.passive_health.window",
            "clusters.c.passive_health.max_fails",
            "clusters.c.passive_health.fail_timeout",
        ],
        "{e:?}"
    );
    assert!(e[0].1.contains("expected one of: append, replace"), "{e:?}");
}

#[test]
fn client_connection_limits() {
    let c = ok(
        "proxy:\n  listen: \"127.0.0.1:0\"\n  send_timeout: 250ms\n  max_request_line: 1024\n  \
                max_header_size: 4096\n  max_connections: 4\nadmin: { max_connections: 2 }\n",
    );
    assert_eq!(c.proxy.send_timeout, Duration::from_millis(250));
    assert_eq!(
        (
            c.proxy.max_request_line,
            c.proxy.max_header_size,
            c.proxy.max_connections
        ),
        (1024, 4096, Some(4))
    );
    assert_eq!(c.admin.map(|a| a.max_connections), Some(2));
    let c = ok("proxy: { listen: \"127.0.0.1:0\", max_connections: , send_timeout: }\n");
    assert_eq!(
        (c.proxy.max_connections, c.proxy.send_timeout),
        (None, Duration::from_secs(60))
    );

    let e = errors(
        "proxy:\n  listen: \"127.0.0.1:0\"\n  send_timeout: 0s\n  max_request_line: 100\n  \
         max_header_size: 1000000\n  max_connections: 0\nadmin: { max_connections: 0 }\n",
    );
    let got: Vec<(&str, &str)> = e.iter().map(|(p, m)| (p.as_str(), m.as_str())).collect();
    assert_eq!(
        got,
        [
            ("proxy.send_timeout", "must be greater than 0"),
            (
                "proxy.max_request_line",
                "must be between 256 and 32768 bytes (got 100)"
            ),
            (
                "proxy.max_header_size",
                "must be between 1024 and 65536 bytes (got 1000000)"
            ),
            (
                "proxy.max_connections",
                "must be at least 1 (leave it out to derive it from the file-descriptor limit)"
            ),
            ("admin.max_connections", "must be at least 1"),
        ]
    );
    // Sizes are integers of bytes; durations need their unit.
    let e = errors(
        "proxy: { listen: \"127.0.0.1:0\", max_header_size: 8KiB, send_timeout: 60, max_connections: -1 }\n",
    );
    let got: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "proxy.max_connections",
            "proxy.max_header_size",
            "proxy.send_timeout"
        ],
        "{e:#?}"
    );
    assert!(e[2].1.contains("a unit is required"), "{e:?}");
}

#[test]
fn cache_sections() {
    let yaml = format!(
        "{MINIMAL}routes:\n  - {{ path_prefix: /legacy/, backend: \"http://127.0.0.1:9\", cache: {{ enabled: true }} }}\n\
         clusters:\n  c:\n    cache:\n      enabled: true\n      max_memory: 64MiB\n      max_object_size: 512KiB\n      \
         default_ttl: 20s\n      update: shadowed\n      stale_on_status: [502, 503]\n      max_variants: 4\n      \
         key: {{ host: false, query: sorted }}\n      purge_method: {{ enabled: true, allow: [127.0.0.1/32, \"::1\"] }}\n"
    );
    let config = ok(&yaml);
    let cache = &config.clusters["c"].cache;
    assert!(cache.enabled);
    assert_eq!((cache.max_memory, cache.max_object_size), (64 << 20, 512 << 10));
    assert_eq!(
        (cache.default_ttl, cache.update),
        (Duration::from_secs(20), CacheUpdate::Shadowed)
    );
    assert_eq!(
        (cache.stale_on_status.as_slice(), cache.max_variants),
        (&[502, 503][..], 4)
    );
    assert_eq!(
        cache.key,
        CacheKeyConfig {
            method: false,
            host: false,
            query: CacheQuery::Sorted
        }
    );
    assert!(cache.purge_method.allow[0].contains("127.0.0.1".parse().expect("ip")));
    assert!(cache.purge_method.allow[1].contains("::1".parse().expect("ip")));
    assert!(!cache.purge_method.allow[0].contains("127.0.0.2".parse().expect("ip")));
    assert!(config.routes[0].cache.enabled);
    assert_eq!(config.clusters["c"].cache.lock_timeout, Duration::from_secs(5));

    let bad = format!(
        "{MINIMAL}routes:\n  - {{ cluster: c, cache: {{}} }}\nclusters:\n  c:\n    cache:\n      max_memory: 10KiB\n      \
         max_object_size: 1GiB\n      update: lazy\n      stale_on_status: [404, 502, 502]\n      max_variants: 0\n      \
         key: {{ query: weird }}\n      purge_method: {{ enabled: true, allow: [\"10.0.0.0/33\"] }}\n      size: 1\n"
    );
    let got: Vec<String> = paths(&bad);
    for want in [
        "clusters.c.cache.size",
        "clusters.c.cache.key.query",
        "clusters.c.cache.purge_method.allow[0]",
        "clusters.c.cache.max_memory",
        "clusters.c.cache.max_object_size",
        "clusters.c.cache.update",
        "clusters.c.cache.stale_on_status[0]",
        "clusters.c.cache.stale_on_status[2]",
        "clusters.c.cache.max_variants",
        "routes[0].cache",
    ] {
        assert!(got.iter().any(|p| p == want), "missing {want} in {got:#?}");
    }
}

#[test]
fn networks_match_by_prefix() {
    let net = IpNet::parse("10.1.0.0/16").expect("net");
    assert!(net.contains("10.1.255.3".parse().expect("ip")));
    assert!(!net.contains("10.2.0.1".parse().expect("ip")));
    assert!(
        net.contains("::ffff:10.1.0.9".parse().expect("ip")),
        "IPv4-mapped"
    );
    let v6 = IpNet::parse("2001:db8::/33").expect("net");
    assert!(v6.contains("2001:db8:7fff::1".parse().expect("ip")));
    assert!(!v6.contains("2001:db8:8000::1".parse().expect("ip")));
    assert!(IpNet::parse("0.0.0.0/0")
        .expect("net")
        .contains("8.8.8.8".parse().expect("ip")));
    assert!(IpNet::parse("1.2.3.4/33").is_err());
    assert!(IpNet::parse("nope").is_err());
}
