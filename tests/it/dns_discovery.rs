//! Backend discovery by DNS against a real nameserver (Debian's dnsmasq on a loopback port,
//! `resolver.nameservers` pointing at it), with the records changed during the test: A records
//! of test backends on 127.0.0.1, .2 and .3 (one port) appear and vanish; an AAAA record gives
//! an IPv6 backend; SRV priorities and weights become roles and capacities; a stopped
//! nameserver keeps the last good set and is reported; a reload keeps the discovered backends
//! as they are; the API manages discovery entries and switches discovered backends.

use crate::support;

use std::sync::Arc;

use bytes::Bytes;
use director::app::StartOptions;
use serde_json::Value;
use support::backend::TestBackend;
use support::dns::{self, Dnsmasq};
use support::{admin, get, request, start, start_file, temp_dir, wait_until, Director};

/// A config on port 0 with a loopback admin listener, resolving at `nameserver`, and one
/// round-robin cluster `c` pinning requests by the `X-Backend` header, with `backends` (YAML
/// lines of the list).
fn config(nameserver: &str, backends: &str) -> String {
    format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 2 }}\n\
         admin: {{ listen: \"127.0.0.1:0\" }}\n\
         resolver: {{ nameservers: [\"{nameserver}\"], timeout: 200ms, attempts: 1 }}\n\
         routes:\n  - {{ cluster: c }}\n\
         clusters:\n  c:\n\
         \x20   scheduler: rr\n\
         \x20   client_routing: {{ header: X-Backend }}\n\
         \x20   backends:\n{backends}"
    )
}

/// The entry `app` discovering `app.test`'s A records on `port`, re-asked every 100-200 ms.
fn a_entry(port: u16, capacity: u32) -> String {
    format!(
        "      - name: app\n\
         \x20       capacity: {capacity}\n\
         \x20       discover: {{ name: app.test, type: a, port: {port}, min_interval: 100ms, max_interval: 200ms }}\n"
    )
}

async fn cluster(d: &Director) -> Value {
    let (status, body) = admin(d, "GET", "/api/v1/clusters/c", None, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The names of the cluster's backends, draining ones with a `(draining)` mark.
fn names(cluster: &Value) -> Vec<String> {
    let mut names: Vec<String> = cluster["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            let name = b["name"].as_str().expect("name").to_owned();
            if b["draining"] == true {
                format!("{name} (draining)")
            } else {
                name
            }
        })
        .collect();
    names.sort();
    names
}

/// Waits until the API shows exactly `want` (sorted; `(draining)` marks as in [`names`]).
async fn backends_become(d: &Director, want: &[String]) -> Value {
    wait_until(format!("backends {want:?}"), async || {
        let body = cluster(d).await;
        if names(&body) == want {
            Ok(body)
        } else {
            Err(format!("{:?}", names(&body)))
        }
    })
    .await
}

fn backend<'a>(cluster: &'a Value, name: &str) -> &'a Value {
    cluster["backends"]
        .as_array()
        .and_then(|list| list.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("no backend {name} in {cluster:#}"))
}

/// Sends `n` requests to `/` (round robin); every answer must be 200.
async fn spread(d: &Director, n: usize) {
    for _ in 0..n {
        let r = get(&d.target(), "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// Three test backends on 127.0.0.1, .2 and .3, all on one port.
async fn three_backends() -> (TestBackend, TestBackend, TestBackend, u16) {
    let one = TestBackend::start_tcp("one", "127.0.0.1:0").await;
    let port: u16 = one
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let two = TestBackend::start_tcp("two", &format!("127.0.0.2:{port}")).await;
    let three = TestBackend::start_tcp("three", &format!("127.0.0.3:{port}")).await;
    (one, two, three, port)
}

/// The A-record life cycle: two records give two backends that share the traffic; a vanishing
/// record drains its backend (the request it holds finishes, no new one arrives) until it is
/// gone; an appearing one serves; a stopped nameserver keeps the last good set and is reported.
#[tokio::test]
#[cfg_attr(
    not(has_dnsmasq),
    ignore = "dnsmasq not installed (apt-get install dnsmasq-base)"
)]
async fn a_records_become_backends_that_come_drain_and_stay_when_dns_fails() {
    let _ = dns::IGNORE;
    let (one, two, three, port) = three_backends().await;
    let mut dns = Dnsmasq::start(&[("127.0.0.1", "app.test"), ("127.0.0.2", "app.test")], &[]).await;
    let d = start(&config(&dns.addr(), &a_entry(port, 4))).await;
    let (n1, n2, n3) = (
        format!("app-127.0.0.1-{port}"),
        format!("app-127.0.0.2-{port}"),
        format!("app-127.0.0.3-{port}"),
    );

    let c = backends_become(&d, &[n1.clone(), n2.clone()]).await;
    for name in [&n1, &n2] {
        let b = backend(&c, name);
        assert_eq!(b["discovered_by"], "app", "{b:#}");
        assert_eq!(
            (b["capacity"].as_u64(), b["role"].as_str()),
            (Some(4), Some("active"))
        );
    }
    assert_eq!(backend(&c, &n1)["url"], format!("http://127.0.0.1:{port}"));
    let entry = &c["discovery"][0];
    assert_eq!(
        (entry["entry"].as_str(), entry["type"].as_str()),
        (Some("app"), Some("a")),
        "{c:#}"
    );
    assert_eq!(
        entry["records"],
        serde_json::json!(["127.0.0.1", "127.0.0.2"]),
        "{entry:#}"
    );
    assert!(entry["error"].is_null(), "{entry:#}");
    spread(&d, 10).await;
    assert!(
        one.hits() >= 4 && two.hits() >= 4,
        "both share the traffic: {} {}",
        one.hits(),
        two.hits()
    );

    // A request held by `two` while its record vanishes.
    let target = d.target();
    let pinned = n2.clone();
    let held = tokio::spawn(async move {
        request(&target, "GET", "/hold", &[("x-backend", &pinned)], Bytes::new()).await
    });
    two.wait_current(1).await;
    dns.set_hosts(&[("127.0.0.1", "app.test")]).await;
    backends_become(&d, &[n1.clone(), format!("{n2} (draining)")]).await;
    let two_hits = two.hits();
    spread(&d, 10).await;
    assert_eq!(two.hits(), two_hits, "a draining backend gets no new request");
    two.release_holds();
    let held = held.await.expect("held request");
    assert_eq!(
        (held.status, held.text().as_str()),
        (200, "two"),
        "the request in flight finished"
    );
    backends_become(&d, std::slice::from_ref(&n1)).await;

    // An appearing record serves.
    dns.set_hosts(&[("127.0.0.1", "app.test"), ("127.0.0.3", "app.test")])
        .await;
    backends_become(&d, &[n1.clone(), n3.clone()]).await;
    spread(&d, 10).await;
    assert!(three.hits() >= 4, "the new backend serves: {}", three.hits());

    // The nameserver goes away: the last good set stays, the error is reported.
    dns.stop();
    let status = wait_until("the failure reported in /api/v1/status", async || {
        let (_, body) = admin(&d, "GET", "/api/v1/status", None, None).await;
        if body["discovery"][0]["error"].is_string() {
            Ok(body)
        } else {
            Err(format!("{body:#}"))
        }
    })
    .await;
    let entry = &status["discovery"][0];
    assert_eq!(
        (entry["cluster"].as_str(), entry["name"].as_str()),
        (Some("c"), Some("app.test"))
    );
    assert!(
        entry["last_success"].as_f64() < entry["last_resolution"].as_f64(),
        "{entry:#}"
    );
    assert_eq!(
        entry["records"],
        serde_json::json!(["127.0.0.1", "127.0.0.3"]),
        "{entry:#}"
    );
    let c = cluster(&d).await;
    assert!(c["discovery"][0]["error"].is_string(), "{c:#}");
    assert_eq!(names(&c), [n1.clone(), n3.clone()]);
    let (one_hits, three_hits) = (one.hits(), three.hits());
    spread(&d, 10).await;
    assert!(
        one.hits() > one_hits && three.hits() > three_hits,
        "both still serve"
    );
    d.settled("c").await;
    d.stop().await;
}

/// SRV records: the lowest priority is active, the next backup (the default
/// `priority_roles`); `total_capacity` is shared by weight within a priority; traffic goes to
/// the active targets only while they are up.
#[tokio::test]
#[cfg_attr(
    not(has_dnsmasq),
    ignore = "dnsmasq not installed (apt-get install dnsmasq-base)"
)]
async fn srv_priorities_become_roles_and_weights_share_the_capacity() {
    let one = TestBackend::start_tcp("one", "127.0.0.1:0").await;
    let two = TestBackend::start_tcp("two", "127.0.0.2:0").await;
    let three = TestBackend::start_tcp("three", "127.0.0.3:0").await;
    let port = |b: &TestBackend| -> u16 {
        b.url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    };
    let (p1, p2, p3) = (port(&one), port(&two), port(&three));
    let extra = [
        format!("--srv-host=_http._tcp.svc.test,one.test,{p1},10,1"),
        format!("--srv-host=_http._tcp.svc.test,two.test,{p2},10,3"),
        format!("--srv-host=_http._tcp.svc.test,three.test,{p3},20,1"),
        "--host-record=one.test,127.0.0.1".to_owned(),
        "--host-record=two.test,127.0.0.2".to_owned(),
        "--host-record=three.test,127.0.0.3".to_owned(),
    ];
    let dns = Dnsmasq::start(&[], &extra).await;
    let entry = "      - name: svc\n\
                 \x20       discover: { name: _http._tcp.svc.test, type: srv, total_capacity: 8, min_interval: 100ms }\n";
    let d = start(&config(&dns.addr(), entry)).await;
    let (n1, n2, n3) = (
        format!("svc-127.0.0.1-{p1}"),
        format!("svc-127.0.0.2-{p2}"),
        format!("svc-127.0.0.3-{p3}"),
    );
    let c = backends_become(&d, &[n1.clone(), n2.clone(), n3.clone()]).await;
    let shape = |name: &str| {
        let b = backend(&c, name);
        (b["role"].as_str().map(str::to_owned), b["capacity"].as_u64())
    };
    assert_eq!(
        shape(&n1),
        (Some("active".into()), Some(2)),
        "weight 1 of 4: 2 of 8"
    );
    assert_eq!(
        shape(&n2),
        (Some("active".into()), Some(6)),
        "weight 3 of 4: 6 of 8"
    );
    assert_eq!(
        shape(&n3),
        (Some("backup".into()), Some(8)),
        "alone at priority 20: all 8"
    );
    let records = c["discovery"][0]["records"].as_array().expect("records").len();
    assert_eq!(records, 3, "{c:#}");
    spread(&d, 12).await;
    assert!(one.hits() > 0 && two.hits() > 0, "the active targets serve");
    assert_eq!(
        three.hits(),
        0,
        "the backup target waits while the active ones are up"
    );
    d.settled("c").await;
    d.stop().await;
    drop(dns);
}

/// A reload keeps the discovered backends (same backend, same counters) even with the
/// nameserver gone, and applies a changed template (capacity) to them.
#[tokio::test]
#[cfg_attr(
    not(has_dnsmasq),
    ignore = "dnsmasq not installed (apt-get install dnsmasq-base)"
)]
async fn a_reload_keeps_the_discovered_backends() {
    let (one, two, _three, port) = three_backends().await;
    let mut dns = Dnsmasq::start(&[("127.0.0.1", "app.test"), ("127.0.0.2", "app.test")], &[]).await;
    let dir = temp_dir("dns-reload");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&dns.addr(), &a_entry(port, 4))).expect("write config");
    let options = StartOptions {
        handle_signals: false,
        watch_config: false,
    };
    let d = start_file(&path, options).await;
    let (n1, n2) = (format!("app-127.0.0.1-{port}"), format!("app-127.0.0.2-{port}"));
    backends_become(&d, &[n1.clone(), n2.clone()]).await;
    spread(&d, 4).await;
    let before = d.backend("c", &n1);

    dns.stop();
    std::fs::write(&path, config(&dns.addr(), &a_entry(port, 5))).expect("write config");
    let (status, body) = admin(&d, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(status, 200, "{body}");
    let c = cluster(&d).await;
    assert_eq!(names(&c), [n1.clone(), n2.clone()], "no backend left or drained");
    assert_eq!(backend(&c, &n1)["capacity"], 5, "the new template applies");
    assert!(
        Arc::ptr_eq(&before, &d.backend("c", &n1)),
        "the same backend (pool, counters)"
    );
    spread(&d, 4).await;
    assert!(
        one.hits() >= 4 && two.hits() >= 4,
        "both serve: {} {}",
        one.hits(),
        two.hits()
    );
    d.settled("c").await;
    d.stop().await;
}

/// The admin API adds, changes and removes a discovery entry like any backend (validated as
/// config.yaml is: a bad entry is a 400 naming its path); its discovered backends are DNS's:
/// an operator may switch one off (kept over later template changes), anything else is refused
/// with a pointer to the entry; the dashboard marks them.
#[tokio::test]
#[cfg_attr(
    not(has_dnsmasq),
    ignore = "dnsmasq not installed (apt-get install dnsmasq-base)"
)]
async fn the_api_manages_discovery_entries_and_switches_discovered_backends() {
    let (_one, two, _three, port) = three_backends().await;
    let dns = Dnsmasq::start(&[("127.0.0.1", "app.test"), ("127.0.0.2", "app.test")], &[]).await;
    let d = start(&config(&dns.addr(), "")).await;
    let (n1, n2) = (format!("app-127.0.0.1-{port}"), format!("app-127.0.0.2-{port}"));
    let url = "/api/v1/clusters/c/backends";

    let bad = serde_json::json!({ "name": "app", "discover": { "name": "app.test", "type": "a" } });
    let (status, body) = admin(&d, "POST", url, Some(bad), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].to_string().contains("backends[0].discover.port"),
        "{body}"
    );

    let entry = serde_json::json!({
        "name": "app", "capacity": 3,
        "discover": { "name": "app.test", "port": port, "min_interval": "100ms" },
    });
    let (status, body) = admin(&d, "POST", url, Some(entry), None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["entry"].as_str(), body["name"].as_str()),
        (Some("app"), Some("app.test")),
        "{body}"
    );
    let c = backends_become(&d, &[n1.clone(), n2.clone()]).await;
    assert_eq!(backend(&c, &n1)["capacity"], 3);

    let page = support::admin_raw(&d, "GET", "/", None, None, &[]).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("DNS · app"),
        "the dashboard marks discovered backends"
    );
    assert!(
        html.contains("set by DNS: change the entry app"),
        "and offers no capacity or remove controls"
    );

    // Only `enabled` is an operator's on a discovered backend.
    for (method, patch) in [
        ("PATCH", Some(serde_json::json!({"capacity": 9}))),
        ("DELETE", None),
    ] {
        let (status, body) = admin(&d, method, &format!("{url}/{n1}"), patch, None).await;
        assert_eq!(status, 409, "{method}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|t| t.contains("entry `app`")),
            "{body}"
        );
    }
    let off = serde_json::json!({"enabled": false});
    let (status, body) = admin(&d, "PATCH", &format!("{url}/{n1}"), Some(off), None).await;
    assert_eq!((status, &body["enabled"]), (200, &Value::Bool(false)), "{body}");
    let two_before = two.hits();
    spread(&d, 6).await;
    assert_eq!(two.hits(), two_before + 6, "the disabled one gets no request");

    let patch = serde_json::json!({"capacity": 9});
    let (status, body) = admin(&d, "PATCH", &format!("{url}/app"), Some(patch), None).await;
    assert_eq!(status, 200, "{body}");
    let c = cluster(&d).await;
    assert_eq!(
        backend(&c, &n2)["capacity"],
        9,
        "the template applies to every discovered backend"
    );
    assert_eq!(
        backend(&c, &n1)["enabled"],
        false,
        "the operator's switch stays over the template"
    );

    let (status, body) = admin(&d, "DELETE", &format!("{url}/app"), None, None).await;
    assert_eq!(status, 200, "{body}");
    backends_become(&d, &[]).await;
    let (_, status) = admin(&d, "GET", "/api/v1/status", None, None).await;
    assert_eq!(
        status["discovery"],
        serde_json::json!([]),
        "the entry's discovery stopped"
    );
    d.stop().await;
}

/// AAAA records: an IPv6 address becomes a backend named with `_` for `:` and reached over
/// IPv6.
#[tokio::test]
#[cfg_attr(
    not(has_dnsmasq),
    ignore = "dnsmasq not installed (apt-get install dnsmasq-base)"
)]
async fn aaaa_records_become_ipv6_backends() {
    let six = TestBackend::start_v6("six").await;
    let port: u16 = six
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let dns = Dnsmasq::start(&[("::1", "six.test")], &[]).await;
    let entry = format!(
        "      - {{ name: v6, discover: {{ name: six.test, type: aaaa, port: {port}, min_interval: 100ms }} }}\n"
    );
    let d = start(&config(&dns.addr(), &entry)).await;
    let name = format!("v6-__1-{port}");
    let c = backends_become(&d, std::slice::from_ref(&name)).await;
    assert_eq!(backend(&c, &name)["url"], format!("http://[::1]:{port}"));
    assert_eq!(c["discovery"][0]["records"], serde_json::json!(["::1"]), "{c:#}");
    spread(&d, 3).await;
    assert_eq!(six.hits(), 3);
    d.settled("c").await;
    d.stop().await;
}
