//! Tests of the `admin` section and `state_file`, and of what a running admin listener takes
//! from a reloaded file; a child of the loader tests, whose helpers it uses.

use std::time::Duration;

use super::*;
use crate::config::{reloaded_admin, DEFAULT_MAX_EVENT_STREAMS, DEFAULT_SESSION_TTL};

fn tcp_listen(addr: &str) -> ListenAddr {
    ListenAddr::Tcp(addr.parse().expect("socket address"))
}

/// `admin: {...}` with a listener at `listen` and `token`, defaults otherwise.
fn admin_config(listen: &str, token: Option<&str>) -> AdminConfig {
    AdminConfig {
        listen: tcp_listen(listen),
        token: token.map(str::to_owned),
        session_ttl: DEFAULT_SESSION_TTL,
        max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
        max_connections: 64,
        tls: None,
    }
}

#[test]
fn admin_and_state_file() {
    let c = ok(MINIMAL);
    assert_eq!((c.admin, c.state_file), (None, None));
    let c = ok(&format!(
        "{MINIMAL}admin: {{}}\nstate_file: director-state.json\n"
    ));
    assert_eq!(c.admin, Some(admin_config("127.0.0.1:8081", None)));
    assert_eq!(c.state_file, Some(PathBuf::from("director-state.json")));
    let c = ok(&format!(
        "{MINIMAL}admin: {{ listen: \"unix:/run/d.sock\", token: \"${{NOPE:-}}\" }}\n"
    ));
    assert_eq!(
        c.admin.map(|a| (a.listen, a.token)),
        Some((ListenAddr::Unix("/run/d.sock".into()), None))
    );
    let c = ok(&format!(
        "{MINIMAL}admin: {{ listen: \"0.0.0.0:9000\", token: 0123456789abcdef }}\n"
    ));
    assert_eq!(c.admin.and_then(|a| a.token).as_deref(), Some("0123456789abcdef"));
    let errs = errors(&format!(
        "{MINIMAL}admin: {{ listen: \"nowhere\", token: short, extra: 1 }}\nstate_file: \"\"\n"
    ));
    let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["admin.extra", "admin.listen", "admin.token", "state_file"],
        "{errs:#?}"
    );
    assert!(errs[2].1.contains("at least 16"));
    assert!(admin::is_local(&tcp_listen("[::1]:1")));
    assert!(!admin::is_local(&tcp_listen("0.0.0.0:1")));
}

#[test]
fn session_ttl_and_max_event_streams() {
    let c = ok(&format!(
        "{MINIMAL}admin: {{ session_ttl: 30m, max_event_streams: 2 }}\n"
    ));
    let admin = c.admin.expect("admin section");
    assert_eq!(
        (admin.session_ttl, admin.max_event_streams),
        (Duration::from_secs(1800), 2)
    );
    let c = ok(&format!(
        "{MINIMAL}admin: {{ session_ttl: 1m, max_event_streams: ~ }}\n"
    ));
    let admin = c.admin.expect("admin section");
    assert_eq!(
        (admin.session_ttl, admin.max_event_streams),
        (Duration::from_secs(60), DEFAULT_MAX_EVENT_STREAMS)
    );
    assert!(ok(&format!("{MINIMAL}admin: {{ session_ttl: 720h }}\n"))
        .admin
        .is_some());

    for (key, value, message) in [
        ("session_ttl", "59s", "must be between 1m and 720h"),
        ("session_ttl", "721h", "must be between 1m and 720h"),
        ("session_ttl", "0s", "must be between 1m and 720h"),
        ("session_ttl", "12", "a unit is required"),
        ("max_event_streams", "0", "must be at least 1"),
        ("max_event_streams", "-1", "expected usize"),
        ("max_event_streams", "many", "expected usize"),
    ] {
        let (path, got) = one_error(&format!("{MINIMAL}admin: {{ {key}: {value} }}\n"));
        assert_eq!(path, format!("admin.{key}"), "{value}");
        assert!(got.contains(message), "{key}: {value}: {got}");
    }
    // Every problem of the section at once.
    assert_eq!(
        paths(&format!(
            "{MINIMAL}admin: {{ token: short, session_ttl: 1s, max_event_streams: 0 }}\n"
        )),
        ["admin.token", "admin.session_ttl", "admin.max_event_streams"]
    );
}

#[test]
fn a_reload_changes_the_token_and_limits_but_not_the_listener() {
    let running = admin_config("127.0.0.1:8081", Some("old-token-0123456789"));
    let mut new = admin_config("127.0.0.1:9999", Some("new-token-0123456789"));
    new.session_ttl = Duration::from_secs(600);
    new.max_event_streams = 3;
    let (next, notes) = reloaded_admin(Some(&running), Some(&new));
    let next = next.expect("the listener keeps running");
    assert_eq!(next.listen, running.listen, "bound at start-up");
    assert_eq!(next.token.as_deref(), Some("new-token-0123456789"));
    assert_eq!(
        (next.session_ttl, next.max_event_streams),
        (Duration::from_secs(600), 3)
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("admin.listen"), "{notes:?}");

    // On loopback, the token may be taken away (the Host check protects the listener then).
    let open = admin_config("127.0.0.1:8081", None);
    let (next, notes) = reloaded_admin(Some(&running), Some(&open));
    assert_eq!(next.expect("running").token, None);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn a_reload_never_opens_a_listener_off_loopback() {
    let running = admin_config("0.0.0.0:8081", Some("made-up-by-demo-0123"));
    let (next, notes) = reloaded_admin(Some(&running), Some(&admin_config("0.0.0.0:8081", None)));
    assert_eq!(
        next.expect("running").token.as_deref(),
        Some("made-up-by-demo-0123")
    );
    assert!(notes[0].contains("admin.token"), "{notes:?}");
    // Removing the section changes nothing either.
    let (next, notes) = reloaded_admin(Some(&running), None);
    assert_eq!(next.as_ref(), Some(&running));
    assert_eq!(notes.len(), 1, "{notes:?}");
    // And a reload does not start a listener that start-up did not.
    let (next, _) = reloaded_admin(None, Some(&running));
    assert_eq!(next, None);
    assert_eq!(reloaded_admin(None, None), (None, Vec::new()));
}
