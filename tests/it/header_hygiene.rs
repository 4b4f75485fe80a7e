//! Protocol strictness and header hygiene at the edges of the proxy: what the backend gets
//! (Host, X-Forwarded-For, the routed authority) and what the client gets (no chunking for
//! HTTP/1.0, no unasked 101, no bad status codes), and routing on the normalised path.

use crate::support;

use support::scripted::{ok, RawClient, Scripted, Seen, Step};
use support::{cluster_config, start};

/// A backend that answers every request with its path and records it.
async fn recorder() -> Scripted {
    Scripted::start(|seen| Step::Reply(ok(&seen.path))).await
}

async fn one(d: &support::Director, raw: &str) -> support::scripted::RawReply {
    let mut c = RawClient::connect(d.addr()).await;
    c.send(raw.as_bytes()).await;
    c.read(raw.starts_with("HEAD")).await
}

fn last(backend: &Scripted) -> Seen {
    backend.seen().pop().expect("the backend saw a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_directors_own_headers_survive_a_hostile_connection_header() {
    let b = recorder().await;
    let d = start(&cluster_config("", &[("b", b.url(), 0, "active")])).await;
    let raw = "GET /p HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, Host, X-Forwarded-For, Via, X-Secret\r\n\
               X-Secret: s\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
    assert_eq!(one(&d, raw).await.status, 200);
    let seen = last(&b);
    assert_eq!(seen.header("host"), Some("shop.example"));
    assert_eq!(seen.header("x-secret"), None, "named in Connection: hop-by-hop");
    assert!(seen
        .header("x-forwarded-for")
        .is_some_and(|v| v.ends_with("127.0.0.1")));
    assert_eq!(seen.header("x-forwarded-host"), Some("shop.example"));
    assert!(seen.header("via").is_some_and(|v| v.contains("director")));
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_appends_to_every_line_or_replaces() {
    let b = recorder().await;
    let d = start(&cluster_config("", &[("b", b.url(), 0, "active")])).await;
    let raw =
        "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n";
    assert_eq!(one(&d, raw).await.status, 200);
    let seen = last(&b);
    assert_eq!(
        seen.headers_named("x-forwarded-for"),
        ["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"],
        "one merged line"
    );
    d.stop().await;

    let d = start(&cluster_config(
        "forwarded_for: replace",
        &[("b", b.url(), 0, "active")],
    ))
    .await;
    assert_eq!(one(&d, raw).await.status, 200);
    assert_eq!(last(&b).headers_named("x-forwarded-for"), ["127.0.0.1"]);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_routes_by_its_authority() {
    let (shop, other) = (recorder().await, recorder().await);
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 1\nroutes:\n  - {{ host: shop.example, cluster: shop }}\n  \
         - {{ cluster: other }}\nclusters:\n  shop:\n    backends: [{{ name: s, url: \"{}\" }}]\n  other:\n    \
         backends: [{{ name: o, url: \"{}\" }}]\n",
        shop.url(),
        other.url()
    );
    let d = start(&yaml).await;
    let raw = "GET http://shop.example/cart?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n";
    assert_eq!(one(&d, raw).await.status, 200);
    assert!(other.seen().is_empty(), "the Host header lost to the authority");
    let seen = last(&shop);
    assert_eq!(
        (seen.path.as_str(), seen.header("host")),
        ("/cart?x=1", Some("shop.example"))
    );
    d.settled("shop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_clients_get_close_delimited_bodies_not_chunks() {
    let b = Scripted::start(|_| {
        Step::Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec())
    })
    .await;
    let d = start(&cluster_config("", &[("b", b.url(), 0, "active")])).await;
    let mut c = RawClient::connect(d.addr()).await;
    c.send(b"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let reply = c.read(false).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("transfer-encoding"), None, "{reply:?}");
    assert_eq!(reply.text(), "hello", "delimited by the close");
    // HTTP/1.1 clients still get chunks.
    let reply = one(&d, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(reply.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(reply.text(), "hello");
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unasked_101_is_a_502() {
    let b = Scripted::start(|seen| match seen.path.as_str() {
        "/up" => Step::Reply(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\n".to_vec(),
        ),
        path => Step::Reply(ok(path)),
    })
    .await;
    // With upgrades off, the client's upgrade is not forwarded: nothing asked for the 101.
    let d = start(&cluster_config(
        "max_retry_count: 0\nupgrades: { enabled: false }",
        &[("b", b.url(), 0, "active")],
    ))
    .await;
    let reply = one(&d, "GET /up HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(reply.status, 502);
    let reply = one(
        &d,
        "GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 502);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_buckets_match_the_normalised_path() {
    let (admin_b, public_b) = (recorder().await, recorder().await);
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 1\nroutes:\n  - {{ path_prefix: /admin/, cluster: admin }}\n  \
         - {{ cluster: public }}\nclusters:\n  admin:\n    backends: [{{ name: a, url: \"{}\" }}]\n  public:\n    \
         debug_headers: true\n    buckets:\n      - {{ name: vip, rate: 0.5, ceil: 1, match: {{ path_prefix: /vip/ }} }}\n    \
         backends: [{{ name: p, url: \"{}\" }}]\n",
        admin_b.url(),
        public_b.url()
    );
    let d = start(&yaml).await;
    for path in ["/public/../admin/x", "/%61dmin/x", "//admin/x", "/admin/./x"] {
        let reply = one(&d, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            last(&admin_b).path,
            path,
            "{path} routed to admin, forwarded as sent"
        );
    }
    assert!(public_b.seen().is_empty());
    let reply = one(&d, "GET /x/../vip/y HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(reply.header("x-director-bucket").as_deref(), Some("vip"));
    for path in ["/../etc/passwd", "/a/%2e%2e/%2e%2e/b", "/a%00b"] {
        let reply = one(&d, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert_eq!(reply.status, 400, "{path}");
    }
    assert_eq!(admin_b.seen().len(), 4);
    d.settled("admin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_response_heads_are_502_and_never_relayed() {
    let b = Scripted::start(|seen| {
        let bad: &[u8] = match seen.path.as_str() {
            "/plus" => b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
            "/status600" => b"HTTP/1.1 600 Weird\r\nContent-Length: 2\r\n\r\nhi",
            "/chunked-twice" => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
            }
            "/ctl-ext" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\x01\r\nhi\r\n0\r\n\r\n",
            path => return Step::Reply(ok(path)),
        };
        Step::ReplyThenClose(bad.to_vec())
    })
    .await;
    let d = start(&cluster_config(
        "max_retry_count: 0\npassive_health: { max_fails: 0 }",
        &[("b", b.url(), 0, "active")],
    ))
    .await;
    for path in ["/plus", "/status600", "/chunked-twice"] {
        let reply = one(&d, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert_eq!(reply.status, 502, "{path}: {reply:?}");
    }
    // A bad chunk extension is met after the head went out: the response is cut.
    let mut c = RawClient::connect(d.addr()).await;
    c.send(b"GET /ctl-ext HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(c.closed_within(std::time::Duration::from_secs(5)).await);
    assert_eq!(
        one(&d, "GET /fine HTTP/1.1\r\nHost: x\r\n\r\n").await.text(),
        "/fine"
    );
    d.settled("c").await;
}

/// A backend head with every kind of field a relay must sort: hop-by-hop ones, one the
/// `Connection` field names, its own `Via` and `Date`, repeated and mixed-case fields.
const BACKEND_HEAD: &str =
    "Date: Tue, 01 Dec 2026 10:00:00 GMT\r\nConnection: keep-alive, X-Backend-Secret\r\n\
    Keep-Alive: timeout=5\r\nX-Backend-Secret: s\r\nSet-Cookie: a=1\r\nX-App: one\r\nSet-Cookie: b=2\r\n\
    Via: 1.0 origin\r\nETag: \"v1\"\r\n";

/// The reply's fields as (lower-case name, value), sorted by name, without the cache's
/// `Cache-Status`; fields of one name keep their order.
fn fields(reply: &support::scripted::RawReply) -> Vec<(String, String)> {
    let mut fields: Vec<_> = reply
        .head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| {
            let (n, v) = line.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .filter(|(n, _)| n != "cache-status")
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_heads_carry_each_end_to_end_field_once_with_and_without_a_header_map() {
    let b = Scripted::start(|seen| {
        let reply = match seen.path.as_str() {
            "/nm" => format!("HTTP/1.1 304 Not Modified\r\n{BACKEND_HEAD}Content-Length: 5\r\n\r\n"),
            "/ns" => format!(
                "HTTP/1.1 200 OK\r\n{BACKEND_HEAD}Cache-Control: no-store\r\nContent-Length: 5\r\n\r\nhello"
            ),
            _ => format!("HTTP/1.1 200 OK\r\n{BACKEND_HEAD}Content-Length: 5\r\n\r\nhello"),
        };
        Step::Reply(reply.into_bytes())
    })
    .await;
    // Without a cache the backend's fields go out as ready-made lines; with one (the
    // `Set-Cookie` keeps the response out of it) they pass through a header map first, unless
    // the head says at once that it is never stored (`no-store`: lines again).
    let lines = start(&cluster_config("", &[("b", b.url(), 0, "active")])).await;
    let map = start(&cluster_config(
        "cache: { enabled: true }",
        &[("b", b.url(), 0, "active")],
    ))
    .await;
    let want: Vec<_> = [
        ("content-length", "5"),
        ("date", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ("etag", "\"v1\""),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("via", "1.0 origin, 1.1 director"),
        ("x-app", "one"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    for (d, named) in [(&lines, "lines"), (&map, "map")] {
        for (request, body) in [("GET / HTTP/1.1", "hello"), ("HEAD / HTTP/1.1", "")] {
            let reply = one(d, &format!("{request}\r\nHost: x\r\n\r\n")).await;
            assert_eq!(
                (reply.status, reply.text().as_str()),
                (200, body),
                "{named} {request}"
            );
            assert_eq!(fields(&reply), want, "{named} {request}: {}", reply.head);
        }
        // A 304 keeps the length of the representation it stands for.
        let reply = one(d, "GET /nm HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(reply.status, 304, "{named}");
        assert_eq!(fields(&reply), want, "{named} 304: {}", reply.head);
        let reply = one(d, "GET /ns HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!((reply.status, reply.text().as_str()), (200, "hello"), "{named}");
        let mut no_store = want.clone();
        no_store.insert(0, ("cache-control".to_owned(), "no-store".to_owned()));
        assert_eq!(fields(&reply), no_store, "{named} no-store: {}", reply.head);
    }
    lines.settled("c").await;
    map.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_carries_each_stored_field_once_with_its_own_age_via_and_status() {
    // A Date of now: the object's age counts from it.
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let head = format!(
        "HTTP/1.1 200 OK\r\nDate: {date}\r\nCache-Control: max-age=60\r\nETag: \"v1\"\r\nX-App: one\r\n\
         Via: 1.0 origin\r\nCache-Status: upstream; hit\r\nContent-Length: 5\r\n\r\nhello"
    );
    let b = Scripted::start(move |_| Step::Reply(head.clone().into_bytes())).await;
    let d = start(&cluster_config(
        "cache: { enabled: true }",
        &[("b", b.url(), 0, "active")],
    ))
    .await;
    assert_eq!(one(&d, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n").await.status, 200);
    for (request, body) in [("GET /p HTTP/1.1", "hello"), ("HEAD /p HTTP/1.1", "")] {
        let reply = one(&d, &format!("{request}\r\nHost: x\r\n\r\n")).await;
        assert_eq!((reply.status, reply.text().as_str()), (200, body), "{request}");
        assert_eq!(reply.header("cache-status").as_deref(), Some("director; hit"));
        let mut got = fields(&reply);
        let age = got.iter().position(|(n, _)| n == "age").expect("an Age");
        assert!(got.remove(age).1.bytes().all(|b| b.is_ascii_digit()));
        let want = [
            ("cache-control", "max-age=60"),
            ("content-length", "5"),
            ("date", date.as_str()),
            ("etag", "\"v1\""),
            ("via", "1.1 director"),
            ("x-app", "one"),
        ];
        let want: Vec<_> = want.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(got, want, "{request}: {}", reply.head);
        let statuses = reply
            .head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("cache-status:"));
        assert_eq!(statuses.count(), 1, "one Cache-Status: {}", reply.head);
    }
    assert_eq!(b.seen().len(), 1, "the hits came from the cache");
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_replaces_the_backend_s_field_of_that_name_relayed_or_cached() {
    let b = Scripted::start(|_| {
        Step::Reply(
            b"HTTP/1.1 200 OK\r\nX-Request-Id: from-backend\r\nCache-Control: max-age=60\r\n\
              Content-Length: 2\r\n\r\nhi"
                .to_vec(),
        )
    })
    .await;
    for cache in ["false", "true"] {
        let yaml = cluster_config(
            &format!("cache: {{ enabled: {cache} }}"),
            &[("b", b.url(), 0, "active")],
        )
        .replacen(
            "  workers: 2\n",
            "  workers: 2\n  request_id: { enabled: true }\n",
            1,
        );
        let d = start(&yaml).await;
        // With the cache: a miss, then a hit; without: relayed twice.
        for round in 0..2 {
            let reply = one(&d, "GET /p HTTP/1.1\r\nHost: x\r\nX-Request-Id: mine-1\r\n\r\n").await;
            let ids: Vec<_> = fields(&reply)
                .into_iter()
                .filter(|(n, _)| n == "x-request-id")
                .map(|(_, v)| v)
                .collect();
            assert_eq!(ids, ["mine-1"], "cache {cache}, round {round}: {}", reply.head);
        }
        d.settled("c").await;
    }
}
