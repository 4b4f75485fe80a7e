//! Tests of the `haproxy_compat` section; a child of the loader tests, whose helpers it uses.

use super::*;
use crate::config::{HaproxyCompatConfig, MonitorFail};

/// A well-formed Argon2id PHC string (the loader checks its form; no password is verified).
const HASH: &str =
    "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$MFzg1Ps0aXOpcHi0ykTzwotA8g2ZeK2sBCbjkpUYDHs";

#[test]
fn absent_means_the_admin_listener_at_the_historical_uris() {
    let c = ok(MINIMAL);
    assert_eq!(c.haproxy_compat, HaproxyCompatConfig::default());
    assert_eq!(c.haproxy_compat.stats_uri, "/haproxy?stats");
    assert_eq!(c.haproxy_compat.monitor_uri, "/haproxy/monitor");
    assert!(c.haproxy_compat.on_admin && !c.haproxy_compat.on_proxy);
    assert_eq!(c.haproxy_compat.monitor_fail, MonitorFail::Never);
    assert_eq!(c.haproxy_compat.realm, "HAProxy Statistics");
}

#[test]
fn a_full_section_loads() {
    let c = ok(&format!(
        "{MINIMAL}haproxy_compat:\n  stats_uri: \"/\"\n  monitor_uri: /healthz\n  listeners: [proxy, admin]\n  \
         monitor_fail: no_backend\n  realm: Stats\n  users: [{{ user: scraper, password_hash: \"{HASH}\" }}]\n"
    ));
    let h = c.haproxy_compat;
    assert_eq!((h.stats_uri.as_str(), h.monitor_uri.as_str()), ("/", "/healthz"));
    assert!(h.on_admin && h.on_proxy);
    assert_eq!(h.monitor_fail, MonitorFail::NoBackend);
    assert_eq!(h.realm, "Stats");
    assert_eq!(h.users[0].user, "scraper");
    assert_eq!(h.users[0].password_hash, HASH);
}

#[test]
fn bad_settings_are_reported_with_their_paths() {
    let yaml = format!(
        "{MINIMAL}haproxy_compat:\n  stats_uri: stats\n  monitor_uri: \"/a b\"\n  listeners: [proxy, proxy, web]\n  \
         monitor_fail: sometimes\n  realm: 'say \"hi\"'\n  users:\n    - {{ user: \"a:b\", password_hash: \"{HASH}\" }}\n    \
         - {{ user: c, password_hash: plain }}\n    - {{ user: d, password_hash: \"$2y$10$abcdefghijklmnopqrstuu\" }}\n"
    );
    assert_eq!(
        paths(&yaml),
        [
            "haproxy_compat.stats_uri",
            "haproxy_compat.monitor_uri",
            "haproxy_compat.listeners[1]",
            "haproxy_compat.listeners[2]",
            "haproxy_compat.monitor_fail",
            "haproxy_compat.realm",
            "haproxy_compat.users[0].user",
            "haproxy_compat.users[1].password_hash",
            "haproxy_compat.users[2].password_hash",
        ]
    );
    let (path, message) = one_error(&format!("{MINIMAL}haproxy_compat: {{ listeners: [proxy] }}\n"));
    assert_eq!(path, "haproxy_compat.users");
    assert!(message.contains("proxy listener"), "{message}");
    let (path, _) = one_error(&format!(
        "{MINIMAL}haproxy_compat: {{ stats_uri: /s, monitor_uri: /s }}\n"
    ));
    assert_eq!(path, "haproxy_compat.monitor_uri");
    assert_eq!(
        one_error(&format!("{MINIMAL}haproxy_compat: {{ listeners: [] }}\n")).0,
        "haproxy_compat.listeners"
    );
    assert_eq!(
        one_error(&format!("{MINIMAL}haproxy_compat: {{ stat_uri: /s }}\n")).0,
        "haproxy_compat.stat_uri"
    );
}
