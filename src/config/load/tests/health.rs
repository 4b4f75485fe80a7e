//! Tests of a cluster's `health`, `client_routing` and `sticky_offline`; a child of the loader
//! tests, whose helpers it uses.

use super::*;

/// A document with one cluster `c` whose body is `body` (written unindented).
fn cluster(body: &str) -> String {
    let body: Vec<String> = body.lines().map(|line| format!("    {line}")).collect();
    format!("{MINIMAL}clusters:\n  c:\n{}\n", body.join("\n"))
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter().map(|(p, m)| (p.to_string(), m.to_string())).collect()
}

/// Cluster `c` of a valid document.
fn cluster_c(body: &str) -> ClusterConfig {
    ok(&cluster(body)).clusters["c"].clone()
}

/// The `health` of cluster `c` of a valid document.
fn health(body: &str) -> Option<HealthConfig> {
    cluster_c(body).health
}

/// The errors of a `health:` written as `{ ... }` inside cluster `c`.
fn health_errors(keys: &str) -> Vec<(String, String)> {
    errors(&cluster(&format!("health: {{ {keys} }}")))
}

/// The only error of a `health:` written as `{ ... }` inside cluster `c`.
fn health_error(keys: &str) -> (String, String) {
    one_error(&cluster(&format!("health: {{ {keys} }}")))
}

fn default_health() -> HealthConfig {
    HealthConfig {
        mode: HealthMode::Paranoid,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
        path: "/".to_owned(),
        host: None,
        expect: vec![],
        initial: InitialHealth::Online,
        fcgi_script_filename: None,
    }
}

const HEALTH_KEYS_MESSAGE: &str =
    "unknown key (expected one of: mode, interval, timeout, rise, fall, path, host, expect, initial, \
     fcgi_script_filename)";

#[test]
fn defaults() {
    let c = cluster_c("scheduler: rr");
    assert_eq!(
        (c.health, c.sticky_offline, c.client_routing),
        (None, false, None)
    );
    let c = cluster_c("health:\nclient_routing:\nsticky_offline:");
    assert_eq!(
        (c.health, c.sticky_offline, c.client_routing),
        (None, false, None),
        "null is the same as absent"
    );
    assert_eq!(health("health: {}"), Some(default_health()));
    assert_eq!(
        health("health: { expect: [], host: , path: }"),
        Some(default_health())
    );
}

#[test]
fn every_key() {
    let c = cluster_c(
        r#"sticky_offline: true
client_routing: { cookie: "X-Backend" }
health:
  mode: lazy
  interval: 1500ms
  timeout: 250ms
  rise: 1
  fall: 5
  path: "/health?deep=1&x=%20y"
  host: example.com:8080
  expect: [200, 204, 599, 100]
  initial: offline"#,
    );
    assert!(c.sticky_offline);
    assert_eq!(
        c.client_routing,
        Some(ClientRouting::Cookie("X-Backend".to_owned()))
    );
    assert_eq!(
        c.health,
        Some(HealthConfig {
            mode: HealthMode::Lazy,
            interval: Duration::from_millis(1500),
            timeout: Duration::from_millis(250),
            rise: 1,
            fall: 5,
            path: "/health?deep=1&x=%20y".to_owned(),
            host: Some("example.com:8080".to_owned()),
            expect: vec![200, 204, 599, 100],
            initial: InitialHealth::Offline,
            fcgi_script_filename: None,
        })
    );
    let h = health("health: { mode: opportunistic, initial: online }").expect("health");
    assert_eq!(
        (h.mode, h.initial),
        (HealthMode::Opportunistic, InitialHealth::Online)
    );
    assert_eq!(
        health("health: { mode: paranoid }").expect("health").mode,
        HealthMode::Paranoid
    );
    let c = cluster_c("client_routing: { header: X-Backend }\nsticky_offline: false");
    assert_eq!(
        c.client_routing,
        Some(ClientRouting::Header("X-Backend".to_owned()))
    );
    assert!(!c.sticky_offline);
    let c = cluster_c("client_routing: { cookie: \"a!#$%&'*+-.^_`|~Z9\" }");
    assert_eq!(
        c.client_routing,
        Some(ClientRouting::Cookie("a!#$%&'*+-.^_`|~Z9".to_owned()))
    );
}

#[test]
fn accepted_hosts_and_paths() {
    for host in [
        "example.com",
        "10.0.0.1",
        "10.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "h:0",
        "a_b-c.d",
    ] {
        let h = health(&format!("health: {{ host: \"{host}\" }}")).expect("health");
        assert_eq!(h.host.as_deref(), Some(host));
    }
    for path in ["/", "/a/b.php", "//x", "/?", "/s?q=a+b&c=%2F", "/~user/;v=1"] {
        let h = health(&format!("health: {{ path: \"{path}\" }}")).expect("health");
        assert_eq!(h.path, path);
    }
}

#[test]
fn design_reference_health_line() {
    let line = "{ mode: paranoid, interval: 2s, rise: 2, fall: 1, path: /health,\n          \
                host: example.com, expect: [200] }";
    let yaml = format!(
        "{MINIMAL}clusters:\n  shop:\n    sticky_offline: false\n    client_routing: {{ cookie: \"X-Backend\" }}\n    \
         health: {line}\n    backends:\n      - {{ name: app01, url: \"http://10.0.0.1:8080\", capacity: 8 }}\n"
    );
    let shop = &ok(&yaml).clusters["shop"];
    assert_eq!(
        shop.health,
        Some(HealthConfig {
            fall: 1,
            path: "/health".to_owned(),
            host: Some("example.com".to_owned()),
            expect: vec![200],
            ..default_health()
        })
    );
    assert_eq!(
        shop.client_routing,
        Some(ClientRouting::Cookie("X-Backend".to_owned()))
    );
    assert!(!shop.sticky_offline);

    // The whole line as DESIGN §5 writes it.
    let fcgi = line.replace(" }", ", fcgi_script_filename: /var/www/ping.php }");
    let yaml = format!("{MINIMAL}clusters:\n  shop:\n    health: {fcgi}\n");
    let health = ok(&yaml).clusters["shop"].health.clone().expect("health");
    assert_eq!(
        health.fcgi_script_filename,
        Some(std::path::PathBuf::from("/var/www/ping.php"))
    );
}

#[test]
fn choice_duration_and_count_errors() {
    let e =
        health_errors("mode: eager, interval: 0s, timeout: 0ms, rise: 0, fall: 0, initial: maybe, tcp: true");
    let want = [
        ("clusters.c.health.tcp", HEALTH_KEYS_MESSAGE),
        (
            "clusters.c.health.mode",
            "unknown health mode `eager` (expected one of: lazy, opportunistic, paranoid)",
        ),
        ("clusters.c.health.interval", "must be greater than 0"),
        ("clusters.c.health.timeout", "must be greater than 0"),
        ("clusters.c.health.rise", "must be at least 1"),
        ("clusters.c.health.fall", "must be at least 1"),
        (
            "clusters.c.health.initial",
            "unknown initial health `maybe` (expected one of: online, offline)",
        ),
    ];
    assert_eq!(e, pairs(&want));

    // Type errors: every field is reported, each once.
    let e = health_errors("mode: 1, interval: 2, timeout: soon, rise: -1, fall: 1.5, path: 7, initial: true");
    let got: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "clusters.c.health.fall",
            "clusters.c.health.initial",
            "clusters.c.health.interval",
            "clusters.c.health.mode",
            "clusters.c.health.path",
            "clusters.c.health.rise",
            "clusters.c.health.timeout",
        ]
    );
    assert!(e[2].1.contains("a unit is required, e.g. \"2s\""), "{e:?}");
    assert_eq!(e[5].1, "invalid value: integer `-1`, expected u32");
    assert!(e[6].1.contains("not a duration"), "{e:?}");
}

#[test]
fn path_errors() {
    let cases = [
        ("health", "must start with \"/\" (got `health`)"),
        ("", "must start with \"/\" (got ``)"),
        (
            "/a b",
            "\"/a b\" contains ' ': spaces, control and non-ASCII characters are not allowed (percent-encode them)",
        ),
        (
            "/a\\tb",
            "\"/a\\tb\" contains '\\t': spaces, control and non-ASCII characters are not allowed (percent-encode them)",
        ),
        (
            "/caf\u{e9}",
            "\"/caf\u{e9}\" contains '\u{e9}': spaces, control and non-ASCII characters are not allowed (percent-encode them)",
        ),
        ("/x#top", "\"/x#top\" contains a fragment (`#`), which is never sent in a request"),
    ];
    for (path, message) in cases {
        assert_eq!(
            health_error(&format!("path: \"{path}\"")),
            ("clusters.c.health.path".to_owned(), message.to_owned()),
            "{path:?}"
        );
    }
}

#[test]
fn host_errors() {
    assert_eq!(
        health_error("host: \"\""),
        (
            "clusters.c.health.host".to_owned(),
            "must not be empty (leave `host` out to send the backend's address)".to_owned()
        )
    );
    for host in [
        "a b",
        "example.com:",
        "example.com:http",
        "example.com:65536",
        "example.com:+80",
        "a:1:2",
        "::1",
        "[::1",
        "[::1]x",
        "[::1]]",
        "[example.com]",
        "http://example.com",
        "ex/ample",
        ":80",
    ] {
        let want = format!(
            "`{host}` is not a host name with an optional port (e.g. example.com or example.com:8080)"
        );
        assert_eq!(
            health_error(&format!("host: \"{host}\"")),
            ("clusters.c.health.host".to_owned(), want),
            "{host:?}"
        );
    }
}

#[test]
fn expect_errors() {
    let e = health_errors("expect: [200, 99, 600, 204, 200, \"301\", 200.5, -1, 204, true]");
    let want = [
        (
            "clusters.c.health.expect[1]",
            "status code 99 is not between 100 and 599",
        ),
        (
            "clusters.c.health.expect[2]",
            "status code 600 is not between 100 and 599",
        ),
        (
            "clusters.c.health.expect[4]",
            "duplicate status code 200 (also at clusters.c.health.expect[0])",
        ),
        (
            "clusters.c.health.expect[5]",
            "expected a status code (an integer from 100 to 599), found a string",
        ),
        (
            "clusters.c.health.expect[6]",
            "expected an integer status code, found `200.5`",
        ),
        (
            "clusters.c.health.expect[7]",
            "status code -1 is not between 100 and 599",
        ),
        (
            "clusters.c.health.expect[8]",
            "duplicate status code 204 (also at clusters.c.health.expect[3])",
        ),
        (
            "clusters.c.health.expect[9]",
            "expected a status code (an integer from 100 to 599), found a boolean",
        ),
    ];
    assert_eq!(e, pairs(&want));
    assert_eq!(
        health_error("expect: 200"),
        (
            "clusters.c.health.expect".to_owned(),
            "expected a list of status codes (e.g. [200, 204]), found a number".to_owned()
        )
    );
    assert_eq!(
        health_error("expect: [70000]").1,
        "status code 70000 is not between 100 and 599"
    );
}

#[test]
fn health_must_be_a_map() {
    assert_eq!(
        one_error(&cluster("health: 5")),
        (
            "clusters.c.health".to_owned(),
            "expected the health settings (a map), found a number".to_owned()
        )
    );
    assert_eq!(
        one_error(&cluster("health: []")).1,
        "expected the health settings (a map), found a list"
    );
    assert_eq!(one_error(&cluster("health: paranoid")).0, "clusters.c.health");
}

#[test]
fn client_routing_needs_exactly_one_key() {
    let both = one_error(&cluster("client_routing: { cookie: a, header: b }"));
    assert_eq!(
        both,
        (
            "clusters.c.client_routing".to_owned(),
            "set either `cookie` or `header`, not both".to_owned()
        )
    );
    let neither = (
        "clusters.c.client_routing".to_owned(),
        "set `cookie` or `header` to the name that carries the backend (e.g. { cookie: X-Backend })"
            .to_owned(),
    );
    assert_eq!(one_error(&cluster("client_routing: {}")), neither);
    assert_eq!(one_error(&cluster("client_routing: { cookie: }")), neither);
    // An unknown key is reported, and the missing name too.
    assert_eq!(
        errors(&cluster("client_routing: { query: backend }")),
        [
            (
                "clusters.c.client_routing.query".to_owned(),
                "unknown key (expected one of: cookie, header)".to_owned()
            ),
            neither.clone(),
        ]
    );
    // A badly typed name is reported once, at the name.
    assert_eq!(
        one_error(&cluster("client_routing: { header: 5 }")),
        (
            "clusters.c.client_routing.header".to_owned(),
            "invalid type: integer `5`, expected a string".to_owned()
        )
    );
    assert_eq!(
        one_error(&cluster("client_routing: X-Backend")),
        (
            "clusters.c.client_routing".to_owned(),
            "expected `{ cookie: NAME }` or `{ header: NAME }` (a map), found a string".to_owned()
        )
    );
}

#[test]
fn client_routing_name_errors() {
    let cookie = |name: &str| {
        format!(
            "`{name}` is not a valid cookie name (an RFC 6265 token: letters, digits and !#$%&'*+-.^_`|~)"
        )
    };
    let header = |name: &str| {
        format!(
            "`{name}` is not a valid header name (an RFC 7230 token: letters, digits and !#$%&'*+-.^_`|~)"
        )
    };
    let cases = [
        ("cookie: \"X Backend\"", "cookie", cookie("X Backend")),
        ("cookie: \"a=b\"", "cookie", cookie("a=b")),
        ("cookie: \"a;b\"", "cookie", cookie("a;b")),
        ("cookie: \"b\u{e4}ckend\"", "cookie", cookie("b\u{e4}ckend")),
        ("cookie: \"\"", "cookie", "must not be empty".to_owned()),
        ("header: \"X-Backend:\"", "header", header("X-Backend:")),
        ("header: \"X(Backend)\"", "header", header("X(Backend)")),
        ("header: \"\"", "header", "must not be empty".to_owned()),
    ];
    for (keys, key, message) in cases {
        assert_eq!(
            one_error(&cluster(&format!("client_routing: {{ {keys} }}"))),
            (format!("clusters.c.client_routing.{key}"), message),
            "{keys}"
        );
    }
}

#[test]
fn sticky_offline_errors() {
    assert_eq!(
        one_error(&cluster("sticky_offline: \"yes\"")),
        (
            "clusters.c.sticky_offline".to_owned(),
            "invalid type: string \"yes\", expected a boolean".to_owned()
        )
    );
}

#[test]
fn several_errors_reported_together() {
    let e = errors(&cluster(
        r#"scheduler: random
sticky_offline: 1
client_routing: { cookie: "X Backend" }
health:
  mode: eager
  interval: 0s
  rise: 0
  path: health
  host: "a b"
  expect: [200, 200, 700]
  fcgi_script_filename: ping.php
buckets:
  - { name: vip, rate: 2, ceil: 1 }
backends:
  - { name: a, url: "ftp://h" }"#,
    ));
    let want = [
        (
            "clusters.c.sticky_offline",
            "invalid type: integer `1`, expected a boolean",
        ),
        (
            "clusters.c.scheduler",
            "unknown scheduler `random` (expected one of: rr, chance, least-load)",
        ),
        (
            "clusters.c.client_routing.cookie",
            "`X Backend` is not a valid cookie name (an RFC 6265 token: letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "clusters.c.health.mode",
            "unknown health mode `eager` (expected one of: lazy, opportunistic, paranoid)",
        ),
        ("clusters.c.health.interval", "must be greater than 0"),
        ("clusters.c.health.rise", "must be at least 1"),
        ("clusters.c.health.path", "must start with \"/\" (got `health`)"),
        (
            "clusters.c.health.host",
            "`a b` is not a host name with an optional port (e.g. example.com or example.com:8080)",
        ),
        (
            "clusters.c.health.expect[1]",
            "duplicate status code 200 (also at clusters.c.health.expect[0])",
        ),
        (
            "clusters.c.health.expect[2]",
            "status code 700 is not between 100 and 599",
        ),
        (
            "clusters.c.health.fcgi_script_filename",
            "`ping.php` must be an absolute path",
        ),
        (
            "clusters.c.buckets[0].rate",
            "bucket `vip`: rate 2 is not between 0 and 1",
        ),
        (
            "clusters.c.backends[0].url",
            "unsupported URL scheme `ftp` (expected http, https, http+unix, fastcgi or fastcgi+unix)",
        ),
    ];
    assert_eq!(e, pairs(&want));
}

#[test]
fn env_substitution_in_health_and_client_routing() {
    let c = cluster_c(
        "client_routing: { header: \"X-${APP_PORT}\" }\nhealth: { host: \"${APP_HOST}:${APP_PORT}\", path: \"/${APP_PORT}\" }",
    );
    assert_eq!(c.client_routing, Some(ClientRouting::Header("X-8081".to_owned())));
    let h = c.health.expect("health");
    assert_eq!(
        (h.host.as_deref(), h.path.as_str()),
        (Some("10.0.0.9:8081"), "/8081")
    );
    assert_eq!(
        errors(&cluster(
            "client_routing: { cookie: \"${NOPE}\" }\nhealth: { host: \"${NOPE}\" }"
        )),
        [
            (
                "clusters.c.client_routing.cookie".to_owned(),
                "environment variable `NOPE` is not set".to_owned()
            ),
            (
                "clusters.c.health.host".to_owned(),
                "environment variable `NOPE` is not set".to_owned()
            ),
        ]
    );
}

/// A backend's own `health` lays its keys over the cluster's; without one, the cluster's apply.
#[test]
fn backend_health_overrides_the_clusters_keys() {
    let c = cluster_c(
        "health: { interval: 2s, path: /cluster, expect: [200], rise: 3 }\n\
         backends:\n\
         \x20 - { name: own, url: \"http://h:1\", health: { path: /own, interval: 100ms, expect: [204] } }\n\
         \x20 - { name: shared, url: \"http://h:2\" }",
    );
    let cluster_health = HealthConfig {
        interval: Duration::from_secs(2),
        path: "/cluster".to_owned(),
        expect: vec![200],
        rise: 3,
        ..default_health()
    };
    assert_eq!(c.health, Some(cluster_health.clone()));
    let own = HealthConfig {
        interval: Duration::from_millis(100),
        path: "/own".to_owned(),
        expect: vec![204],
        ..cluster_health.clone()
    };
    assert_eq!(c.backends[0].health, Some(own.clone()));
    assert_eq!(c.backends[0].health_in(&c), Some(&own));
    assert_eq!(c.backends[1].health, None);
    assert_eq!(c.backends[1].health_in(&c), Some(&cluster_health));

    // Without cluster checks a backend's own section turns them on for that backend alone.
    let c = cluster_c(
        "backends:\n\
         \x20 - { name: own, url: \"http://h:1\", health: { path: /ping } }\n\
         \x20 - { name: none, url: \"http://h:2\", health: null }",
    );
    let ping = HealthConfig {
        path: "/ping".to_owned(),
        ..default_health()
    };
    assert_eq!(c.backends[0].health_in(&c), Some(&ping));
    assert_eq!(c.backends[1].health_in(&c), None);
}

#[test]
fn backend_health_errors_are_reported_at_the_backend() {
    let e = errors(&cluster(
        "health: { path: /ok }\n\
         backends:\n\
         \x20 - { name: a, url: \"http://h:1\", health: { interval: 0s, path: nope, probe: tcp } }\n\
         \x20 - { name: b, url: \"http://h:2\", health: yes }",
    ));
    let want = [
        ("clusters.c.backends[0].health.probe", HEALTH_KEYS_MESSAGE),
        ("clusters.c.backends[0].health.interval", "must be greater than 0"),
        (
            "clusters.c.backends[0].health.path",
            "must start with \"/\" (got `nope`)",
        ),
        (
            "clusters.c.backends[1].health",
            "expected the health settings (a map), found a string",
        ),
    ];
    assert_eq!(e, pairs(&want));

    // A bad cluster section is reported once, at the cluster, not again at each backend.
    let e = errors(&cluster(
        "health: { rise: 0 }\n\
         backends:\n\
         \x20 - { name: a, url: \"http://h:1\", health: { path: /own } }",
    ));
    assert_eq!(e, pairs(&[("clusters.c.health.rise", "must be at least 1")]));
}
