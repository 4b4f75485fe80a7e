//! FastCGI against a real php-fpm (the scripts in `tests/php/`), over UNIX sockets and TCP:
//! CGI parameters, form posts, large uploads and downloads, `Status:`/`Location:`/cookies,
//! front controllers, keep-alive reuse, a php-fpm that dies, and FastCGI health probes.
//! Scripted misbehaving peers are in `fastcgi_faults.rs`.
//!
//! Without php-fpm every test prints `skipping: php-fpm not installed` and passes, unless
//! `DIRECTOR_REQUIRE_ALL` is set.

use crate::support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use director::cluster::health::Health;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::backend::{pattern, pattern_checksum};
use support::php::{md5_hex, Listen, PhpFpm};
use support::{eventually, get, request, start, wait_until, Director, Reply};

/// php-fpm workers per pool: enough for the concurrent requests of any test here.
const CHILDREN: u32 = 4;

/// A cluster `c` over `backends` (name, url) with `fastcgi: { document_root: tests/php }`
/// (plus `script` when given) and extra cluster settings (one per line).
pub(crate) fn php_config(settings: &str, script: Option<&str>, backends: &[(&str, String)]) -> String {
    let root = support::php::docroot();
    let script = script.map(|s| format!(", script: {s}")).unwrap_or_default();
    let mapping = format!("fastcgi: {{ document_root: \"{}\"{script} }}", root.display());
    let settings = format!("{mapping}\n{settings}");
    let list: Vec<(&str, String, u32, &str)> = backends
        .iter()
        .map(|(n, u)| (*n, u.clone(), CHILDREN, "active"))
        .collect();
    support::cluster_config(&settings, &list)
}

/// One php-fpm over `listen` and a director with one backend `php` on it.
async fn one_backend(listen: Listen, settings: &str, script: Option<&str>) -> (PhpFpm, Director) {
    let fpm = PhpFpm::start(listen, CHILDREN).await;
    let director = start(&php_config(settings, script, &[("php", fpm.url())])).await;
    (fpm, director)
}

fn json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", reply.status, reply.text()))
}

fn server_var<'a>(doc: &'a Value, name: &str) -> &'a str {
    doc["server"][name]
        .as_str()
        .unwrap_or_else(|| panic!("$_SERVER[{name}] missing in {doc:#}"))
}

#[test]
fn md5_matches_the_rfc_1321_test_suite() {
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    let digits = b"12345678901234567890123456789012345678901234567890123456789012345678901234567890";
    assert_eq!(md5_hex(digits), "57edf4a22be3c955ac49da2e2107b67a");
    assert_eq!(md5_hex(&[b'a'; 64]), "014842d480b571495a4a0363793f7367");
}

/// The fixture itself: php-fpm starts over both transports, accepts, and stops on kill.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn php_fpm_fixture_starts_accepts_and_dies() {
    for listen in Listen::BOTH {
        let mut fpm = PhpFpm::start(listen, 2).await;
        assert!(fpm.accepts().await, "{listen:?}");
        let prefix = match listen {
            Listen::Tcp => "fastcgi://127.0.0.1:",
            Listen::Unix => "fastcgi+unix:///",
        };
        assert!(fpm.url().starts_with(prefix), "{}", fpm.url());
        assert!(fpm.script("echo.php").is_file());
        fpm.kill();
        // The pool's children hold the listening socket too and die a moment after the master.
        wait_until(
            format!("{listen:?}: no longer accepting after kill"),
            async || !fpm.accepts().await,
        )
        .await;
    }
}

/// GET with a query string: the CGI/1.1 parameters php-fpm receives.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn get_passes_the_cgi_parameters() {
    for listen in Listen::BOTH {
        let (fpm, d) = one_backend(listen, "", None).await;
        let reply = request(
            &d.target(),
            "GET",
            "/echo.php?a=1&b=two%20words&list[]=x&list[]=y",
            &[
                ("x-custom", "hello"),
                ("user-agent", "director-tests"),
                ("cookie", "k=v"),
                // httpoxy: must never become HTTP_PROXY
                ("proxy", "http://evil.example:3128"),
            ],
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, 200, "{listen:?}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let doc = json(&reply);
        let root = fpm.docroot();
        let expected = [
            ("REQUEST_METHOD", "GET"),
            ("QUERY_STRING", "a=1&b=two%20words&list[]=x&list[]=y"),
            ("REQUEST_URI", "/echo.php?a=1&b=two%20words&list[]=x&list[]=y"),
            ("SCRIPT_NAME", "/echo.php"),
            ("DOCUMENT_URI", "/echo.php"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_NAME", "test.local"),
            ("REDIRECT_STATUS", "200"),
            ("HTTP_HOST", "test.local"),
            ("HTTP_X_CUSTOM", "hello"),
            ("HTTP_USER_AGENT", "director-tests"),
            ("HTTP_COOKIE", "k=v"),
        ];
        for (name, value) in expected {
            assert_eq!(server_var(&doc, name), value, "{listen:?}: {name}");
        }
        assert_eq!(
            server_var(&doc, "SCRIPT_FILENAME"),
            root.join("echo.php").display().to_string()
        );
        assert_eq!(
            server_var(&doc, "DOCUMENT_ROOT").trim_end_matches('/'),
            root.display().to_string()
        );
        assert_eq!(server_var(&doc, "SERVER_PORT"), d.addr().port().to_string());
        let remote_port: u16 = server_var(&doc, "REMOTE_PORT").parse().expect("REMOTE_PORT");
        assert_ne!(remote_port, 0);
        assert!(server_var(&doc, "SERVER_SOFTWARE").starts_with("director"));
        assert!(doc["server"].get("HTTP_PROXY").is_none(), "httpoxy: {doc:#}");
        assert!(doc["server"]
            .get("CONTENT_LENGTH")
            .is_none_or(|v| v == "" || v == "0"));
        assert_eq!(doc["get"]["a"], "1");
        assert_eq!(doc["get"]["b"], "two words");
        assert_eq!(doc["get"]["list"], serde_json::json!(["x", "y"]));
        assert_eq!(doc["fpm"], fpm.id());

        // PATH_INFO after the script.
        let reply = get(&d.target(), "/echo.php/extra/path?z=9").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let doc = json(&reply);
        assert_eq!(server_var(&doc, "SCRIPT_NAME"), "/echo.php");
        assert_eq!(server_var(&doc, "PATH_INFO"), "/extra/path");
        assert_eq!(server_var(&doc, "REQUEST_URI"), "/echo.php/extra/path?z=9");
        assert_eq!(
            server_var(&doc, "SCRIPT_FILENAME"),
            root.join("echo.php").display().to_string()
        );
        d.settled("c").await;
        d.stop().await;
    }
}

/// Header names outside `[A-Za-z0-9-]` never become `HTTP_*` (`X_Real_IP` would collide with
/// `X-Real-IP`), and `SERVER_NAME` is the routing `Host`, never `X-Forwarded-Host`/`Forwarded`.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn spoofable_headers_do_not_reach_the_cgi_parameters() {
    let (_fpm, d) = one_backend(Listen::Tcp, "", None).await;
    let spoofed = [
        ("host", "shop.example:8080"),
        ("x_real_ip", "evil"),
        ("x.real.ip", "evil too"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "host=evil.example"),
    ];
    let reply = request(&d.target(), "GET", "/echo.php", &spoofed, Bytes::new()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc = json(&reply);
    assert!(doc["server"].get("HTTP_X_REAL_IP").is_none(), "{doc:#}");
    assert_eq!(server_var(&doc, "SERVER_NAME"), "shop.example");
    assert_eq!(server_var(&doc, "HTTP_HOST"), "shop.example:8080");
    assert_eq!(server_var(&doc, "HTTP_X_FORWARDED_HOST"), "evil.example");
    // With the real header present too, the look-alike cannot override it.
    let both = [("x-real-ip", "203.0.113.7"), ("x_real_ip", "evil")];
    let reply = request(&d.target(), "GET", "/echo.php", &both, Bytes::new()).await;
    assert_eq!(server_var(&json(&reply), "HTTP_X_REAL_IP"), "203.0.113.7");
    d.settled("c").await;
    d.stop().await;
}

/// A missing script is php-fpm's 404, relayed as such.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_missing_script_is_404() {
    let (_fpm, d) = one_backend(Listen::Unix, "", None).await;
    let reply = get(&d.target(), "/no-such-script.php").await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    d.settled("c").await;
    d.stop().await;
}

/// A urlencoded form POST fills `$_POST`; CONTENT_TYPE and CONTENT_LENGTH are passed.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_form_post_fills_post() {
    for listen in Listen::BOTH {
        let (_fpm, d) = one_backend(listen, "", None).await;
        let form = "name=director&list%5B%5D=a&list%5B%5D=b&spaced=a+b%21";
        let reply = request(
            &d.target(),
            "POST",
            "/echo.php?q=1",
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from_static(form.as_bytes()),
        )
        .await;
        assert_eq!(reply.status, 200, "{listen:?}: {}", reply.text());
        let doc = json(&reply);
        assert_eq!(server_var(&doc, "REQUEST_METHOD"), "POST");
        assert_eq!(
            server_var(&doc, "CONTENT_TYPE"),
            "application/x-www-form-urlencoded"
        );
        assert_eq!(server_var(&doc, "CONTENT_LENGTH"), form.len().to_string());
        assert_eq!(doc["get"]["q"], "1");
        assert_eq!(doc["post"]["name"], "director");
        assert_eq!(doc["post"]["list"], serde_json::json!(["a", "b"]));
        assert_eq!(doc["post"]["spaced"], "a b!");
        d.settled("c").await;
        d.stop().await;
    }
}

/// 20 MB through the FastCGI STDIN stream: PHP sees every byte.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_20_mb_upload_arrives_intact() {
    const SIZE: usize = 20 * 1024 * 1024;
    let data = Bytes::from(pattern(0, SIZE));
    let md5 = md5_hex(&data);
    for listen in Listen::BOTH {
        let (_fpm, d) = one_backend(listen, "", None).await;
        let reply = request(
            &d.target(),
            "POST",
            "/upload.php",
            &[("content-type", "application/octet-stream")],
            data.clone(),
        )
        .await;
        assert_eq!(reply.status, 200, "{listen:?}: {}", reply.text());
        let doc = json(&reply);
        assert_eq!(doc["size"], SIZE as u64, "{listen:?}");
        assert_eq!(doc["md5"], md5.as_str(), "{listen:?}");
        assert_eq!(doc["content_length"], SIZE.to_string());
        d.settled("c").await;
        d.stop().await;
    }
}

/// A chunked request body (no Content-Length) must not be lost silently: either PHP gets all
/// of it (CONTENT_LENGTH filled in, as nginx does by buffering) or the client is told (411).
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_chunked_upload_is_not_silently_dropped() {
    let (_fpm, d) = one_backend(Listen::Unix, "", None).await;
    let data = pattern(0, 300_000);
    let frames = data
        .chunks(64 * 1024)
        .map(|c| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::copy_from_slice(c))));
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames.collect::<Vec<_>>()));
    let stream = tokio::net::TcpStream::connect(d.addr()).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::post("/upload.php")
        .header("host", "test.local")
        .header("content-type", "application/octet-stream")
        .body(body)
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    match status {
        411 => {}
        200 => {
            let doc: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{text}"));
            assert_eq!(doc["size"], data.len() as u64, "chunked body lost: {text}");
            assert_eq!(doc["md5"], md5_hex(&data).as_str());
        }
        other => panic!("unexpected {other}: {text}"),
    }
    d.settled("c").await;
    d.stop().await;
}

/// `Status:` with a custom code, custom and repeated headers, three distinct cookies.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn status_headers_and_cookies_from_the_script() {
    for listen in Listen::BOTH {
        let (_fpm, d) = one_backend(listen, "", None).await;
        let reply = get(&d.target(), "/status.php").await;
        assert_eq!(reply.status, 418, "{listen:?}: {}", reply.text());
        assert_eq!(reply.text(), "short and stout\n");
        assert_eq!(reply.header("x-custom"), Some("brewed"));
        let multi: Vec<_> = reply.headers.get_all("x-multi").iter().collect();
        let multi: Vec<&str> = multi.iter().map(|v| v.to_str().unwrap_or("")).collect();
        assert!(
            multi == ["one", "two"] || multi == ["one, two"],
            "{listen:?}: x-multi {multi:?}"
        );
        let cookies: Vec<&str> = reply
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        assert_eq!(
            cookies,
            ["a=1; Path=/", "b=2; Path=/; HttpOnly", "c=3; Max-Age=60"],
            "{listen:?}"
        );
        assert!(
            reply.headers.get("status").is_none(),
            "the CGI Status field is not a header"
        );
        d.settled("c").await;
        d.stop().await;
    }
}

/// `Location:` is a redirect: 302 by default, or the status the script sets.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn location_is_a_redirect() {
    for listen in Listen::BOTH {
        let (_fpm, d) = one_backend(listen, "", None).await;
        let reply = get(&d.target(), "/redirect.php").await;
        assert_eq!(reply.status, 302, "{listen:?}: {}", reply.text());
        assert_eq!(reply.header("location"), Some("/elsewhere?from=redirect"));
        let reply = get(&d.target(), "/redirect.php?code=301&to=https://example.com/x").await;
        assert_eq!(reply.status, 301, "{listen:?}");
        assert_eq!(reply.header("location"), Some("https://example.com/x"));
        d.settled("c").await;
        d.stop().await;
    }
}

/// HEAD runs the script but no body reaches the client.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn head_has_no_body() {
    let (_fpm, d) = one_backend(Listen::Tcp, "", None).await;
    let reply = request(&d.target(), "HEAD", "/echo.php", &[], Bytes::new()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.body.is_empty(), "HEAD body: {}", reply.text());
    // The connection is still usable: a GET after a HEAD on a fresh connection works too.
    assert_eq!(get(&d.target(), "/ping.php").await.text(), "pong\n");
    d.settled("c").await;
    d.stop().await;
}

/// 50 MB from PHP: the first bytes reach the client while the script is still running (it
/// waits for a file the test creates only after it has them), and every byte is right.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_50_mb_response_is_streamed() {
    const SIZE: u64 = 50 * 1024 * 1024;
    for listen in Listen::BOTH {
        let (fpm, d) = one_backend(listen, "", None).await;
        let release = fpm.dir().join("release");
        // Over TCP the script also sends a Content-Length.
        let length = if listen == Listen::Tcp { "&length=1" } else { "" };
        let path = format!("/stream.php?mb=50{length}&hold={}", release.display());
        let mut sender = support::connect(&d.target()).await;
        let req = http::Request::get(path)
            .header("host", "test.local")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let res = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("{listen:?}: no response head while the script runs"))
            .expect("response");
        assert_eq!(res.status(), 200, "{listen:?}");
        assert_eq!(res.headers()["x-fpm"], fpm.id().as_str());
        if listen == Listen::Tcp {
            assert_eq!(res.headers()["content-length"], SIZE.to_string().as_str());
        }
        let mut body = res.into_body();
        let (mut got, mut sum) = (0u64, 0u64);
        let mut released = false;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .unwrap_or_else(|_| panic!("{listen:?}: stalled at {got} bytes (released: {released})"));
            let Some(frame) = frame else { break };
            let Ok(data) = frame.expect("body frame").into_data() else {
                continue;
            };
            assert!(got + data.len() as u64 <= SIZE, "{listen:?}: too long");
            assert!(
                data[..] == pattern(got, data.len())[..],
                "{listen:?}: wrong bytes at offset {got}"
            );
            sum = data.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
            got += data.len() as u64;
            if !released {
                assert!(!release.exists());
                std::fs::write(&release, b"go").expect("release the script");
                released = true;
            }
        }
        assert!(released, "{listen:?}: no body at all");
        assert_eq!(got, SIZE, "{listen:?}");
        assert_eq!(sum, pattern_checksum(SIZE));
        d.settled("c").await;
        d.stop().await;
    }
}

/// `script: index.php`: every path reaches the front controller, which sees the path.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_front_controller_gets_every_path() {
    for listen in Listen::BOTH {
        let (fpm, d) = one_backend(listen, "", Some("index.php")).await;
        let index = fpm.script("index.php").display().to_string();
        let cases = [
            ("/some/deep/path?x=1", "/some/deep/path", "x=1"),
            ("/echo.php", "/echo.php", ""),
            ("/index.php/foo/bar", "/foo/bar", ""),
            ("/users/42/edit?tab=a%20b", "/users/42/edit", "tab=a%20b"),
        ];
        for (uri, path_info, query) in cases {
            let reply = get(&d.target(), uri).await;
            assert_eq!(reply.status, 200, "{listen:?} {uri}: {}", reply.text());
            let doc = json(&reply);
            assert_eq!(doc["front"], "index.php", "{uri}");
            assert_eq!(doc["REQUEST_URI"], uri, "{uri}");
            assert_eq!(doc["SCRIPT_NAME"], "/index.php", "{uri}");
            assert_eq!(doc["SCRIPT_FILENAME"], index.as_str(), "{uri}");
            assert_eq!(doc["PATH_INFO"], path_info, "{uri}");
            assert_eq!(doc["QUERY_STRING"], query, "{uri}");
        }
        d.settled("c").await;
        d.stop().await;
    }
}

/// A backend's own `fastcgi:` mapping wins over the cluster's.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_backend_mapping_overrides_the_cluster_mapping() {
    let fpm = PhpFpm::start(Listen::Unix, 2).await;
    let root = fpm.docroot();
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 1\nroutes:\n  - {{ path_prefix: \"/\", cluster: c }}\n\
         clusters:\n  c:\n    fastcgi: {{ document_root: /nonexistent/root }}\n    backends:\n\
         \x20     - {{ name: php, url: \"{}\", capacity: 2, fastcgi: {{ document_root: \"{}\", script: ping.php }} }}\n",
        fpm.url(),
        root.display()
    );
    let d = start(&yaml).await;
    let reply = get(&d.target(), "/anything").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "pong\n");
    d.settled("c").await;
    d.stop().await;
}

/// A TCP or UNIX relay in front of php-fpm that counts the connections made through it.
struct Relay {
    url: String,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe<A, B>(mut a: A, mut b: B)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

async fn relay_to(fpm: &PhpFpm) -> Relay {
    let connections = Arc::new(AtomicU64::new(0));
    let (listen, address) = (fpm.listen(), fpm.address().to_owned());
    let count = connections.clone();
    macro_rules! serve {
        ($listener:expr) => {
            tokio::spawn(async move {
                let mut conns = tokio::task::JoinSet::new();
                while let Ok((client, _)) = $listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let address = address.clone();
                    conns.spawn(async move {
                        match listen {
                            Listen::Tcp => {
                                if let Ok(up) = tokio::net::TcpStream::connect(&address).await {
                                    pipe(client, up).await;
                                }
                            }
                            Listen::Unix => {
                                if let Ok(up) = tokio::net::UnixStream::connect(&address).await {
                                    pipe(client, up).await;
                                }
                            }
                        }
                    });
                }
            })
        };
    }
    match listen {
        Listen::Tcp => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("fastcgi://{}", listener.local_addr().expect("addr"));
            let task = serve!(listener);
            Relay {
                url,
                connections,
                task,
            }
        }
        Listen::Unix => {
            let path = fpm.dir().join("relay.sock");
            let listener = tokio::net::UnixListener::bind(&path).expect("bind relay");
            let url = format!("fastcgi+unix://{}", path.display());
            let task = serve!(listener);
            Relay {
                url,
                connections,
                task,
            }
        }
    }
}

/// Many sequential requests through one director worker reuse one kept-alive connection.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn keep_alive_connections_to_php_fpm_are_reused() {
    for listen in Listen::BOTH {
        let fpm = PhpFpm::start(listen, 2).await;
        let relay = relay_to(&fpm).await;
        let yaml = php_config("", None, &[("php", relay.url.clone())]).replace("workers: 2", "workers: 1");
        let d = start(&yaml).await;
        for i in 0..40 {
            let reply = get(&d.target(), &format!("/echo.php?i={i}")).await;
            assert_eq!(reply.status, 200, "{listen:?} request {i}: {}", reply.text());
            assert_eq!(json(&reply)["get"]["i"], i.to_string());
        }
        // A POST with a body keeps the connection reusable too.
        let reply = request(
            &d.target(),
            "POST",
            "/upload.php",
            &[],
            Bytes::from_static(b"0123456789"),
        )
        .await;
        assert_eq!(json(&reply)["size"], 10);
        assert_eq!(get(&d.target(), "/ping.php").await.text(), "pong\n");
        let connections = relay.connections.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&connections),
            "{listen:?}: 42 sequential requests used {connections} FastCGI connections"
        );
        d.settled("c").await;
        d.stop().await;
    }
}

/// Concurrent requests through one director worker, never more than the backend's capacity
/// in flight: the pool never needs more connections than that capacity, so it must not close
/// and reopen them (each reopening costs a connect and a php-fpm accept).
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn concurrent_requests_reuse_kept_alive_connections() {
    for listen in Listen::BOTH {
        let fpm = PhpFpm::start(listen, CHILDREN).await;
        let relay = relay_to(&fpm).await;
        let yaml = php_config("", None, &[("php", relay.url.clone())]).replace("workers: 2", "workers: 1");
        let d = start(&yaml).await;
        let target = d.target();
        for round in 0..20 {
            let replies = futures_util::future::join_all((0..CHILDREN).map(|i| {
                let target = target.clone();
                async move { get(&target, &format!("/echo.php?round={round}&i={i}")).await }
            }))
            .await;
            for reply in &replies {
                assert_eq!(reply.status, 200, "{listen:?} round {round}: {}", reply.text());
            }
        }
        let connections = relay.connections.load(Ordering::SeqCst);
        assert!(
            connections <= u64::from(CHILDREN),
            "{listen:?}: 80 requests, at most {CHILDREN} at a time, used {connections} FastCGI connections"
        );
        d.settled("c").await;
        d.stop().await;
    }
}

/// Many concurrent requests through two director workers, with the backend's capacity equal
/// to php-fpm's worker count, all succeed. A php-fpm worker serves one connection at a time
/// and stays bound to a kept-alive connection while it is idle, so the idle connections
/// pooled by all director workers together must never exceed what php-fpm can serve: else a
/// new connection waits in php-fpm's backlog until the read timeout.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn concurrent_requests_all_succeed() {
    let (_fpm, d) = one_backend(Listen::Unix, "read_timeout: 5s", None).await;
    assert!(php_config("", None, &[]).contains("workers: 2"));
    let target = d.target();
    // Later rounds start with the connections the earlier ones left idle in both workers.
    for round in 0..3 {
        let replies = futures_util::future::join_all((0..24).map(|i| {
            let target = target.clone();
            async move { get(&target, &format!("/echo.php?i={i}")).await }
        }))
        .await;
        for (i, reply) in replies.iter().enumerate() {
            assert_eq!(reply.status, 200, "round {round}, request {i}: {}", reply.text());
            assert_eq!(json(reply)["get"]["i"], i.to_string());
        }
    }
    d.settled("c").await;
    d.stop().await;
}

/// php-fpm (UNIX socket) is killed mid-test: the next requests all go to the other php-fpm
/// (TCP) and succeed, and the capacity counters settle.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn killing_one_php_fpm_moves_traffic_to_the_other() {
    let mut first = PhpFpm::start(Listen::Unix, 2).await;
    let second = PhpFpm::start(Listen::Tcp, 2).await;
    let yaml = php_config(
        "scheduler: rr\nmax_retry_count: 3",
        None,
        &[("php01", first.url()), ("php02", second.url())],
    );
    let d = start(&yaml).await;
    let mut seen = std::collections::HashSet::new();
    for i in 0..10 {
        let reply = get(&d.target(), &format!("/echo.php?i={i}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        seen.insert(json(&reply)["fpm"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(seen.len(), 2, "rr uses both php-fpm pools: {seen:?}");

    first.kill();
    for i in 0..20 {
        let reply = get(&d.target(), &format!("/echo.php?after={i}")).await;
        assert_eq!(reply.status, 200, "request {i} after the kill: {}", reply.text());
        assert_eq!(json(&reply)["fpm"], second.id(), "request {i}");
    }
    let stats = d.backend("c", "php01").stats.snapshot();
    assert!(stats.failures >= 1, "the dead backend was blamed");
    d.settled("c").await;
    d.stop().await;
}

/// A response in flight when php-fpm dies is cut for the client (not ended cleanly), and the
/// capacity comes back.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_response_in_flight_when_php_fpm_dies_is_cut() {
    let (mut fpm, d) = one_backend(Listen::Unix, "", None).await;
    let hold = fpm.dir().join("never");
    let mut sender = support::connect(&d.target()).await;
    let req = http::Request::get(format!("/stream.php?mb=8&hold={}", hold.display()))
        .header("host", "test.local")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = sender.send_request(req).await.expect("response head");
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first bytes")
        .expect("a frame")
        .expect("data");
    assert!(first.is_data());
    assert_eq!(
        d.cluster("c").admission.capacity().1,
        1,
        "one request holds a slot"
    );

    fpm.kill();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the body ends once php-fpm is gone");
    assert!(rest.is_err(), "a cut response must not end cleanly");
    d.settled("c").await;
    let reply = get(&d.target(), "/ping.php").await;
    assert!(
        matches!(reply.status, 502 | 503),
        "{}: {}",
        reply.status,
        reply.text()
    );
    d.settled("c").await;
    d.stop().await;
}

/// STDERR output is logged, never sent to the client.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn stderr_does_not_reach_the_client() {
    for listen in Listen::BOTH {
        let (fpm, d) = one_backend(listen, "", None).await;
        let reply = get(&d.target(), "/stderr.php").await;
        assert_eq!(reply.status, 200, "{listen:?}");
        assert_eq!(reply.text(), "body after stderr\n");
        for (name, value) in &reply.headers {
            let value = value.to_str().unwrap_or("");
            assert!(!value.contains("director-test"), "{name}: {value}");
        }
        // The worker's own stderr went to php-fpm's log (catch_workers_output).
        let log_path = fpm.dir().join("php-fpm.log");
        eventually("php-fpm logged the worker's stderr", || {
            std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("director-test: via php://stderr"))
        })
        .await;
        assert_eq!(get(&d.target(), "/ping.php").await.text(), "pong\n");
        d.settled("c").await;
        d.stop().await;
    }
}

fn health_of(d: &Director, backend: &str) -> Option<(Health, Option<String>, Option<bool>)> {
    let statuses = d.cluster("c").statuses.load();
    statuses.iter().find(|s| s.name == backend).map(|s| {
        (
            s.health,
            s.health_reason.clone(),
            s.last_probe.as_ref().map(|p| p.ok),
        )
    })
}

/// FastCGI probes run `fcgi_script_filename` on php-fpm: a backend that starts offline comes
/// online once ping.php answers, and goes offline when php-fpm is killed.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn fastcgi_health_probes_follow_php_fpm() {
    let mut fpm = PhpFpm::start(Listen::Unix, 2).await;
    let ping = fpm.script("ping.php");
    let health = format!(
        "health: {{ mode: paranoid, interval: 50ms, timeout: 500ms, rise: 1, fall: 1, initial: offline, \
         fcgi_script_filename: \"{}\" }}",
        ping.display()
    );
    let d = start(&php_config(&health, None, &[("php", fpm.url())])).await;
    eventually("probe of ping.php brings php online", || {
        matches!(health_of(&d, "php"), Some((Health::Online, _, Some(true))))
    })
    .await;
    assert_eq!(get(&d.target(), "/ping.php").await.text(), "pong\n");

    fpm.kill();
    eventually("php goes offline after php-fpm is killed", || {
        matches!(health_of(&d, "php"), Some((Health::Offline, _, Some(false))))
    })
    .await;
    let reply = get(&d.target(), "/ping.php").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    d.settled("c").await;
    d.stop().await;
}

/// A probe script php-fpm can't find answers 404: the backend stays offline.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn a_fastcgi_probe_of_a_missing_script_fails() {
    let fpm = PhpFpm::start(Listen::Tcp, 2).await;
    let missing = fpm.script("no-such-ping.php");
    let health = format!(
        "health: {{ interval: 50ms, timeout: 500ms, rise: 1, fall: 1, fcgi_script_filename: \"{}\" }}",
        missing.display()
    );
    let d = start(&php_config(&health, None, &[("php", fpm.url())])).await;
    eventually("a failed probe takes php offline", || {
        matches!(health_of(&d, "php"), Some((Health::Offline, _, Some(false))))
    })
    .await;
    let (_, reason, _) = health_of(&d, "php").expect("status");
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("404")),
        "reason: {reason:?}"
    );
    d.settled("c").await;
    d.stop().await;
}
