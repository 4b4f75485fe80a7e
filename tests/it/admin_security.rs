//! Admin security end to end, through a running director: the token, the Host check of a
//! listener without a token (DNS rebinding), signed dashboard sessions that end when the token
//! changes on reload, the cross-site guard, and the cap on concurrent event streams.

use crate::support;

use std::net::SocketAddr;

use director::app::StartOptions;
use serde_json::{json, Value};
use support::backend::TestBackend;
use support::{admin, admin_raw, start, start_file, wait_until, Director, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "test-token-0123456789";
const NEW_TOKEN: &str = "rotated-token-0123456789";

/// One cluster `c` with backend `a` at `url`; the admin listener on loopback with `admin` (more
/// keys of its map, if any).
fn config(url: &str, admin: &str) -> String {
    let admin = if admin.is_empty() {
        String::new()
    } else {
        format!(", {admin}")
    };
    format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 1 }}\n\
         admin: {{ listen: \"127.0.0.1:0\"{admin} }}\n\
         routes: [{{ cluster: c }}]\n\
         clusters:\n  c:\n    backends:\n\
         \x20     - {{ name: a, url: \"{url}\", capacity: 4 }}\n"
    )
}

/// The status of `GET /api/v1/status` with `Host: host` (and the bearer `token`, if any).
async fn status_with_host(d: &Director, host: &str, token: Option<&str>) -> u16 {
    admin_raw(d, "GET", "/api/v1/status", None, token, &[("host", host)])
        .await
        .status
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_token_is_required_and_cross_site_changes_are_refused() {
    let a = TestBackend::start("a").await;
    let d = start(&config(&a.url(), &format!("token: \"{TOKEN}\""))).await;
    for path in [
        "/api/v1/status",
        "/api/v1/clusters",
        "/metrics",
        "/haproxy?stats;csv",
    ] {
        let (status, body) = admin(&d, "GET", path, None, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        let (status, _) = admin(&d, "GET", path, None, Some("wrong-token-0123456789")).await;
        assert_eq!(status, 401, "{path}");
        let (status, _) = admin(&d, "GET", path, None, Some(TOKEN)).await;
        assert_eq!(status, 200, "{path}");
    }
    // With a token, any Host will do: the token is the protection.
    assert_eq!(
        status_with_host(&d, "director.example:8081", Some(TOKEN)).await,
        200
    );
    assert_eq!(status_with_host(&d, "director.example:8081", None).await, 401);

    let (session, _) = login(&d, TOKEN).await;
    let reply = admin_raw(&d, "GET", "/api/v1/status", None, None, &[("cookie", &session)]).await;
    assert_eq!(reply.status, 200);
    // A form another site posts with the victim's cookie.
    let reply = admin_raw(
        &d,
        "POST",
        "/api/v1/reload",
        Some("x=1".into()),
        None,
        &[
            ("cookie", &session),
            ("origin", "http://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = admin_raw(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(r#"{"enabled":false}"#.into()),
        Some(TOKEN),
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(reply.status, 403);
    assert!(d.cluster("c").statuses.load()[0].enabled, "nothing changed");
    d.stop().await;
}

/// A page on `http://evil.example` whose name the attacker re-pointed at 127.0.0.1 talks to the
/// admin listener as its own origin: `Host: evil.example`, `Origin: http://evil.example`.
#[tokio::test]
async fn without_a_token_a_rebound_name_can_neither_read_nor_change_anything() {
    let a = TestBackend::start("a").await;
    let d = start(&config(&a.url(), "")).await;
    let before = admin(&d, "GET", "/api/v1/clusters/c", None, None).await.1;
    let rebound = [("host", "evil.example"), ("origin", "http://evil.example")];
    let attempts: [(&str, &str, Option<Value>); 6] = [
        ("GET", "/api/v1/clusters/c", None),
        ("GET", "/", None),
        ("GET", "/metrics", None),
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some(json!({ "name": "evil", "url": "http://127.0.0.1:9", "capacity": 1 })),
        ),
        (
            "PATCH",
            "/api/v1/clusters/c",
            Some(json!({ "x_sendfile": { "enabled": true, "roots": ["/"] } })),
        ),
        ("POST", "/api/v1/reload", None),
    ];
    for (method, path, body) in attempts {
        let reply = admin_raw(&d, method, path, body.map(|b| b.to_string()), None, &rebound).await;
        let json = json_of(&reply);
        assert_eq!(
            (reply.status, json["error"].as_str()),
            (403, Some("host_not_allowed")),
            "{method} {path}: {}",
            reply.text()
        );
        let detail = json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("evil.example") && detail.contains("DNS rebinding"),
            "{detail}"
        );
    }
    // A name with the listener's port is no better.
    assert_eq!(status_with_host(&d, "evil.example:8081", None).await, 403);
    let after = admin(&d, "GET", "/api/v1/clusters/c", None, None).await.1;
    assert_eq!(before["settings"], after["settings"], "nothing changed");
    assert_eq!(after["backends"].as_array().map(Vec::len), Some(1), "{after}");
    assert!(d.cluster("c").backend("evil").is_none());

    // Addresses and localhost work, for reading and (same-origin) for changes.
    let port = d.admin_addr().port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(status_with_host(&d, &host, None).await, 200, "{host}");
    }
    let host = format!("localhost:{port}");
    let origin = format!("http://{host}");
    let reply = admin_raw(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(r#"{"capacity": 3}"#.into()),
        None,
        &[("host", &host), ("origin", &origin)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // No Host at all (HTTP/1.0) is refused too.
    let (head, body) = raw_exchange(d.admin_addr(), "GET /api/v1/status HTTP/1.0\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.0 400") || head.starts_with("HTTP/1.1 400"),
        "{head}"
    );
    assert!(body.contains("missing_host"), "{body}");
    d.stop().await;
}

/// `POST /login` with `token`: the `name=value` of the session cookie it sets, and the whole
/// `Set-Cookie` header.
async fn login(d: &Director, token: &str) -> (String, String) {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let reply = admin_raw(d, "POST", "/login", Some(format!("token={token}")), None, &form).await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    let cookie = reply.header("set-cookie").expect("a session cookie");
    assert!(
        !cookie.contains(token),
        "the cookie never holds the token: {cookie}"
    );
    let session = cookie.split(';').next().expect("name=value");
    (session.to_owned(), cookie.to_owned())
}

#[tokio::test]
async fn a_new_token_on_reload_ends_every_session() {
    let a = TestBackend::start("a").await;
    let with_token = |token: &str| config(&a.url(), &format!("token: \"{token}\""));
    let dir = support::temp_dir("admin-sessions");
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, with_token(TOKEN)).expect("write config");
    let d = start_file(&file, StartOptions::default()).await;

    let (session, cookie) = login(&d, TOKEN).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let get_status = |cookie: String| {
        let d = &d;
        async move {
            let headers = [("cookie", cookie.as_str())];
            admin_raw(d, "GET", "/api/v1/status", None, None, &headers)
                .await
                .status
        }
    };
    assert_eq!(get_status(session.clone()).await, 200);
    // A forged one (the expiry pushed out) is refused.
    let (name, value) = session.split_once('=').expect("name=value");
    let (expiry, rest) = value.split_once('.').expect("expiry first");
    let later: u64 = expiry.parse::<u64>().expect("unix seconds") + 600;
    assert_eq!(get_status(format!("{name}={later}.{rest}")).await, 401);

    std::fs::write(&file, with_token(NEW_TOKEN)).expect("rewrite config");
    let (status, body) = admin(&d, "POST", "/api/v1/reload", None, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        get_status(session.clone()).await,
        401,
        "the old session has ended"
    );
    let page = admin_raw(&d, "GET", "/", None, None, &[("cookie", &session)]).await;
    assert_eq!((page.status, page.header("location")), (303, Some("/login")));
    assert_eq!(admin(&d, "GET", "/api/v1/status", None, Some(TOKEN)).await.0, 401);
    assert_eq!(
        admin(&d, "GET", "/api/v1/status", None, Some(NEW_TOKEN)).await.0,
        200
    );
    let (session, _) = login(&d, NEW_TOKEN).await;
    assert_eq!(get_status(session).await, 200);
    d.stop().await;
}

/// Sends `request` on a new connection and reads until the server closes it: the head and the
/// body.
async fn raw_exchange(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

/// Opens `GET /api/v1/events`: the open connection when the answer is 200, else the answer.
async fn open_event_stream(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.expect("read") == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 200") {
        return Ok(stream);
    }
    // The refusal is a small JSON body with a Content-Length.
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("body");
    Err(format!("{head}{}", String::from_utf8_lossy(&body)))
}

#[tokio::test]
async fn event_streams_are_capped_and_a_closed_one_frees_its_place() {
    let a = TestBackend::start("a").await;
    let d = start(&config(&a.url(), "max_event_streams: 3")).await;
    let addr = d.admin_addr();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(open_event_stream(addr).await.expect("a stream within the cap"));
    }
    let refused = open_event_stream(addr)
        .await
        .expect_err("the fourth stream is refused");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains(r#""error":"too_many_streams""#) && refused.contains("max_event_streams"),
        "{refused}"
    );

    // The client goes away: its place is freed once the server notices.
    drop(open.remove(0));
    let fourth = wait_until("a place for a new stream", async || open_event_stream(addr).await).await;
    open.push(fourth);
    assert!(open_event_stream(addr).await.is_err(), "still capped at 3");
    drop(open);
    d.stop().await;
}
