//! What a request over a TLS listener carries on: `X-Forwarded-Proto: https` and the client's
//! address to an HTTP backend (`http` from a plain listener), FastCGI's `HTTPS=on`,
//! `REQUEST_SCHEME=https` and the TLS listener's `SERVER_PORT` to php-fpm, X-Sendfile bodies
//! written through the TLS session (no `sendfile(2)` into it), a client that leaves without
//! close_notify, `redirect_to_https` on a plain listener and HSTS on the TLS one.

use crate::support;
use crate::tls::{Extras, TlsSetup};

use bytes::Bytes;
use support::backend::pattern;
use support::php::{Listen, PhpFpm};
use support::tls::{self, make_cert};
use support::Target;

/// The value of header `name` in the `/headers` echo of the test backend.
fn echoed<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(": ")))
}

#[tokio::test]
async fn x_forwarded_proto_says_https_for_tls_requests_only() {
    let cert = make_cert(&["p.test"]);
    let extras = Extras {
        // Port 0 twice is one address twice: a second loopback address.
        listeners: vec!["\"127.0.0.2:0\"".to_owned()],
        ..Extras::default()
    };
    let setup = TlsSetup::start(&[("p", &cert)], extras).await;
    let over_tls = tls::get(setup.listener(0), Some("p.test"), "/headers", &[]).await;
    assert_eq!(over_tls.status, 200);
    assert_eq!(
        echoed(&over_tls.text(), "x-forwarded-proto"),
        Some("https"),
        "{}",
        over_tls.text()
    );
    // The client's address reaches the request through the TLS session too.
    let forwarded_for = echoed(&over_tls.text(), "x-forwarded-for").map(str::to_owned);
    assert_eq!(forwarded_for.as_deref(), Some("127.0.0.1"), "{}", over_tls.text());
    let plain = support::get(&Target::Tcp(setup.listener(1)), "/headers").await;
    assert_eq!(
        echoed(&plain.text(), "x-forwarded-proto"),
        Some("http"),
        "{}",
        plain.text()
    );
    // A client's own claim is replaced, not passed on.
    let headers = [("x-forwarded-proto", "https")];
    let spoofed = support::request(
        &Target::Tcp(setup.listener(1)),
        "GET",
        "/headers",
        &headers,
        Bytes::new(),
    )
    .await;
    assert_eq!(
        echoed(&spoofed.text(), "x-forwarded-proto"),
        Some("http"),
        "{}",
        spoofed.text()
    );
    setup.director.stop().await;
}

#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn php_fpm_gets_https_on_request_scheme_and_the_tls_port() {
    let fpm = PhpFpm::start(Listen::Tcp, 2).await;
    let cert = make_cert(&["php.test"]);
    let extras = Extras {
        // Port 0 twice is one address twice: a second loopback address.
        listeners: vec!["\"127.0.0.2:0\"".to_owned()],
        cluster: format!(
            "    fastcgi: {{ document_root: \"{}\" }}\n",
            support::php::docroot().display()
        ),
        backend_url: Some(fpm.url()),
        ..Extras::default()
    };
    let setup = TlsSetup::start(&[("php", &cert)], extras).await;
    let reply = tls::get(setup.listener(0), Some("php.test"), "/echo.php", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    let server = &doc["server"];
    assert_eq!(server["HTTPS"], "on", "{doc:#}");
    assert_eq!(server["REQUEST_SCHEME"], "https", "{doc:#}");
    assert_eq!(
        server["SERVER_PORT"],
        setup.listener(0).port().to_string(),
        "{doc:#}"
    );

    let plain = support::get(&Target::Tcp(setup.listener(1)), "/echo.php").await;
    let doc: serde_json::Value = serde_json::from_slice(&plain.body).expect("json");
    assert!(doc["server"].get("HTTPS").is_none(), "{doc:#}");
    assert_eq!(doc["server"]["REQUEST_SCHEME"], "http", "{doc:#}");
    setup.director.stop().await;
}

#[tokio::test]
async fn x_sendfile_over_tls_delivers_the_exact_file() {
    let root = support::temp_dir("tls-sendfile");
    // Over 2 MiB: more than one span; just written, so in the page cache (what a plain
    // connection would send with sendfile(2)).
    let len = 3 * 1024 * 1024 + 5;
    let file = root.path().join("big.bin");
    std::fs::write(&file, pattern(0, len)).expect("write");
    let cert = make_cert(&["f.test"]);
    let extras = Extras {
        cluster: format!(
            "    x_sendfile: {{ enabled: true, roots: [\"{}\"] }}\n",
            root.path().display()
        ),
        ..Extras::default()
    };
    let setup = TlsSetup::start(&[("f", &cert)], extras).await;
    let stream = tls::connect(setup.listener(0), Some("f.test"), &[])
        .await
        .expect("connect");
    let mut conn = tls::http(stream).await;
    let path = format!("/xsendfile?path={}", file.display());
    for round in 0..2 {
        let reply = tls::send(&mut conn, "GET", &path, &[], Bytes::new()).await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        assert_eq!(reply.header("content-length"), Some(len.to_string().as_str()));
        assert!(reply.body == pattern(0, len), "round {round}: the file's bytes");
    }
    // A range of it, on the same connection.
    let range = [("range", "bytes=1000-1999")];
    let reply = tls::send(&mut conn, "GET", &path, &range, Bytes::new()).await;
    assert_eq!(reply.status, 206);
    assert!(reply.body == pattern(1000, 1000));
    setup.director.stop().await;
}

#[tokio::test]
async fn a_plain_listener_redirects_to_https_and_tls_responses_carry_hsts() {
    let cert = make_cert(&["h.test"]);
    // The redirect names a port, so it can point at the TLS listener of this test; the port
    // is only known once bound, so the plain listener names a fixed HTTPS port instead.
    let extras = Extras {
        listener: ", hsts: { max_age: 600s, include_subdomains: true }".to_owned(),
        listeners: vec![
            "{ address: \"127.0.0.2:0\", redirect_to_https: 8443 }".to_owned(),
            "{ address: \"127.0.0.3:0\", redirect_to_https: true }".to_owned(),
        ],
        ..Extras::default()
    };
    let setup = TlsSetup::start(&[("h", &cert)], extras).await;
    let to_8443 = Target::Tcp(setup.listener(1));
    let headers = [("host", "h.test:8080")];
    let get = support::request(&to_8443, "GET", "/a/b?c=d", &headers, Bytes::new()).await;
    assert_eq!(get.status, 301);
    assert_eq!(get.header("location"), Some("https://h.test:8443/a/b?c=d"));
    let post = support::request(&to_8443, "POST", "/form", &headers, Bytes::from("x=1")).await;
    assert_eq!(post.status, 308);
    assert_eq!(post.header("location"), Some("https://h.test:8443/form"));
    let default_port = support::get(&Target::Tcp(setup.listener(2)), "/x").await;
    assert_eq!(default_port.status, 301);
    assert_eq!(default_port.header("location"), Some("https://test.local/x"));
    assert_eq!(setup.backend.hits(), 0, "redirects never reach the backend");
    assert_eq!(
        get.header("strict-transport-security"),
        None,
        "no HSTS over plain HTTP"
    );

    let over_tls = tls::get(setup.listener(0), Some("h.test"), "/", &[]).await;
    assert_eq!(over_tls.status, 200);
    assert_eq!(
        over_tls.header("strict-transport-security"),
        Some("max-age=600; includeSubDomains")
    );
    // A backend's own policy is relayed and not joined by the listener's.
    let own = tls::get(setup.listener(0), Some("h.test"), "/hsts", &[]).await;
    assert_eq!(own.status, 200);
    let policies = own.headers.get_all("strict-transport-security").iter().count();
    assert_eq!(policies, 1, "{:?}", own.headers);
    assert_eq!(own.header("strict-transport-security"), Some("max-age=1"));
    setup.director.stop().await;
}

#[tokio::test]
async fn a_tls_client_that_leaves_without_close_notify_ends_its_stream_as_a_plain_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert = make_cert(&["gone.test"]);
    let extras = Extras {
        cluster: "    on_client_abort: ignore\n".to_owned(),
        ..Extras::default()
    };
    let setup = TlsSetup::start(&[("gone", &cert)], extras).await;
    let mut stream = tls::connect(setup.listener(0), Some("gone.test"), &[])
        .await
        .expect("connect");
    stream
        .write_all(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("request");
    setup.backend.wait_current(1).await;
    // Takes in what the server sent after the handshake (TLS 1.3 session tickets, long in the
    // socket by now): closing over unread bytes would reset the connection instead.
    let mut scratch = [0u8; 64];
    let unanswered = futures_util::FutureExt::now_or_never(stream.read(&mut scratch));
    assert!(unanswered.is_none(), "no answer while the backend holds it");
    // The TCP connection closes under the TLS session: no close_notify, as browsers leave.
    let (tcp, _) = stream.into_inner();
    drop(tcp);
    // A bound for something that must not happen: a read error instead of an end would end
    // the request at once (as `close` does), not the client's end under `ignore`.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(setup.backend.current(), 1, "the backend request goes on");
    setup.backend.release_holds();
    setup.director.settled("c").await;
    setup.director.stop().await;
}
