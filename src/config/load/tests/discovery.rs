//! Tests of a backend entry's `discover:` and the `resolver:` section; a child of the loader
//! tests, whose helpers it uses.

use super::*;
use crate::config::discovery::{DnsRecordType, ResolverConfig};

fn cluster(body: &str) -> String {
    let body: Vec<String> = body.lines().map(|line| format!("    {line}")).collect();
    format!("{MINIMAL}clusters:\n  c:\n{}\n", body.join("\n"))
}

fn cluster_c(body: &str) -> ClusterConfig {
    ok(&cluster(body)).clusters["c"].clone()
}

#[test]
fn entries_with_defaults_keep_their_place_and_template() {
    let c = cluster_c(
        "health: { path: /health }\n\
         backends:\n  - { name: first, url: \"http://h:1\" }\n  \
         - { name: app, capacity: 8, role: standby, discover: { name: app.svc., port: 8080 }, health: { interval: 1s } }\n  \
         - { name: last, url: \"http://h:2\" }\n  \
         - { name: srv, enabled: false, discover: { name: _http._tcp.api, type: srv, total_capacity: 30, priority_roles: [active, standby, backup], min_interval: 5s, max_interval: 5s } }",
    );
    assert_eq!(c.backends.len(), 2, "only the fixed ones");
    let [app, srv] = &c.discover[..] else {
        panic!("two entries: {:?}", c.discover)
    };
    assert_eq!((app.name.as_str(), app.position), ("app", 1));
    assert_eq!(
        (app.query.name.as_str(), app.query.record, app.query.port),
        ("app.svc.", DnsRecordType::A, Some(8080))
    );
    assert_eq!(
        (app.capacity, app.role, app.enabled, app.protocol),
        (8, Role::Standby, true, Protocol::Http)
    );
    assert_eq!(
        (app.min_interval, app.max_interval),
        (Duration::from_secs(1), Duration::from_secs(30))
    );
    let health = app.health.as_ref().expect("own health over the cluster's");
    assert_eq!(
        (health.path.as_str(), health.interval),
        ("/health", Duration::from_secs(1))
    );
    assert_eq!(
        (srv.position, srv.query.record, srv.query.port, srv.enabled),
        (2, DnsRecordType::Srv, None, false)
    );
    assert_eq!((srv.total_capacity, srv.priority_roles.len()), (Some(30), 3));
    assert_eq!(ok(MINIMAL).resolver, ResolverConfig::default());
}

#[test]
fn bad_entries_are_refused_with_their_paths() {
    let at = |body: &str| one_error(&cluster(body)).0;
    let entry = |discover: &str| format!("backends:\n  - {{ name: app, discover: {{ {discover} }} }}");
    assert_eq!(at(&entry("port: 80")), "clusters.c.backends[0].discover.name");
    assert_eq!(
        at(&entry("name: \"a b\", port: 80")),
        "clusters.c.backends[0].discover.name"
    );
    assert_eq!(at(&entry("name: a.test")), "clusters.c.backends[0].discover.port");
    assert_eq!(
        at(&entry("name: a.test, type: srv, port: 80")),
        "clusters.c.backends[0].discover.port"
    );
    assert_eq!(
        at(&entry("name: a.test, type: mx, port: 80")),
        "clusters.c.backends[0].discover.type"
    );
    assert_eq!(
        at(&entry("name: a.test, port: 80, total_capacity: 4")),
        "clusters.c.backends[0].discover.total_capacity"
    );
    assert_eq!(
        at(&entry(
            "name: a.test, port: 80, min_interval: 10s, max_interval: 1s"
        )),
        "clusters.c.backends[0].discover.max_interval"
    );
    assert_eq!(
        at(&entry("name: a.test, port: 80, min_interval: 0s")),
        "clusters.c.backends[0].discover.min_interval"
    );
    assert_eq!(
        at(&entry("name: a.test, type: srv, priority_roles: [active, spare]")),
        "clusters.c.backends[0].discover.priority_roles[1]"
    );
    assert_eq!(
        at(&entry("name: a.test, port: 80, protocol: fastcgi")),
        "clusters.c.backends[0].discover.protocol"
    );
    assert_eq!(
        at("backends:\n  - { name: app, url: \"http://h\", discover: { name: a.test, port: 80 } }"),
        "clusters.c.backends[0].url"
    );
    assert_eq!(
        at("backends:\n  - { name: app, role: backup, discover: { name: a.test, type: srv } }"),
        "clusters.c.backends[0].role"
    );
    assert_eq!(
        at("backends:\n  - { name: app, url: \"http://h\" }\n  - { name: app, discover: { name: a.test, port: 80 } }"),
        "clusters.c.backends[1].name"
    );
}

#[test]
fn resolver_section() {
    let resolver = |text: &str| ok(&format!("{MINIMAL}resolver: {text}\n")).resolver;
    let r = resolver("{ nameservers: [\"127.0.0.1:5353\", \"::1\"], timeout: 500ms, attempts: 1 }");
    assert_eq!(
        r.nameservers,
        ["127.0.0.1:5353".parse().unwrap(), "[::1]:53".parse().unwrap()]
    );
    assert_eq!((r.timeout, r.attempts), (Duration::from_millis(500), 1));
    let at = |text: &str| one_error(&format!("{MINIMAL}resolver: {text}\n")).0;
    assert_eq!(
        at("{ nameservers: [\"dns.example\"] }"),
        "resolver.nameservers[0]"
    );
    assert_eq!(at("{ attempts: 0 }"), "resolver.attempts");
    assert_eq!(at("{ timeout: 0s }"), "resolver.timeout");
    assert_eq!(at("{ search: [a] }"), "resolver.search");
}
