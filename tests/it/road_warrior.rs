//! Routes straight to one address ("road warrior"): to php-fpm over FastCGI (with the route's
//! script mapping) beside one to a real HTTP backend; such an address is always tried, never
//! taken out by passive health; and a route's own timeouts override its cluster's, also for
//! two routes sharing one address.

use crate::support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::backend::TestBackend;
use support::php::{Listen, PhpFpm};
use support::{free_port, get, request, start, Director, Reply};

/// `GET path` with `Host: host`.
async fn on(d: &Director, host: &str, path: &str) -> Reply {
    request(&d.target(), "GET", path, &[("host", host)], Bytes::new()).await
}

fn proxy_head() -> &'static str {
    "proxy: { listen: \"127.0.0.1:0\", workers: 1 }\nroutes:\n"
}

#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test]
async fn road_warrior_routes_serve_php_fpm_and_http() {
    let web = TestBackend::start("web").await;
    for listen in Listen::BOTH {
        let fpm = PhpFpm::start(listen, 2).await;
        let yaml = format!(
            "{}  - {{ path_prefix: /php/, backend: \"{}\", fastcgi: {{ document_root: \"{}\" }} }}\n  \
             - {{ backend: \"{}\" }}\n",
            proxy_head(),
            fpm.url(),
            fpm.docroot().parent().expect("tests/").display(),
            web.url()
        );
        let d = start(&yaml).await;
        // /php/hello.php is tests/php/hello.php under the document root `tests/`.
        let reply = get(&d.target(), "/php/hello.php").await;
        assert_eq!(
            (reply.status, reply.text()),
            (200, "hello world\n".to_owned()),
            "{listen:?}"
        );
        let reply = get(&d.target(), "/php/echo.php?x=1").await;
        let text = reply.text();
        assert_eq!(reply.status, 200, "{listen:?}: {text}");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let script = fpm.script("echo.php");
        assert_eq!(
            doc["server"]["SCRIPT_FILENAME"],
            script.display().to_string(),
            "{doc:#}"
        );
        assert_eq!(doc["get"]["x"], "1", "{doc:#}");
        let hits = web.hits();
        assert_eq!(get(&d.target(), "/plain").await.text(), "web");
        assert_eq!(web.hits(), hits + 1);
        for address in [fpm.url(), web.url()] {
            d.settled(&address).await;
        }
        d.stop().await;
    }
}

/// Nothing listens at first: every request fails with 502 (more than `max_fails` of them),
/// none gets the 503 of an ejected backend; once something listens, the next request is
/// served.
#[tokio::test]
async fn a_road_warrior_address_is_always_tried() {
    let addr = format!("127.0.0.1:{}", free_port());
    let yaml = format!("{}  - {{ backend: \"http://{addr}\" }}\n", proxy_head());
    let d = start(&yaml).await;
    for _ in 0..6 {
        assert_eq!(get(&d.target(), "/").await.status, 502);
    }
    let backend = TestBackend::start_tcp("late", &addr).await;
    let reply = get(&d.target(), "/").await;
    assert_eq!((reply.status, reply.text()), (200, "late".to_owned()));
    assert_eq!(backend.hits(), 1);
    d.settled(&format!("http://{addr}")).await;
    d.stop().await;
}

/// Host `slow.test` has `read_timeout: 200ms` over one address that other hosts reach with the
/// default; a route to a cluster overrides the cluster's the same way.
#[tokio::test]
async fn a_routes_timeouts_override_its_clusters() {
    let backend = TestBackend::start("b").await;
    let yaml = format!(
        "{}  - {{ host: slow.test, backend: \"{url}\", read_timeout: 200ms }}\n  \
         - {{ host: c.test, cluster: c, read_timeout: 200ms }}\n  \
         - {{ host: c-default.test, cluster: c }}\n  \
         - {{ backend: \"{url}\" }}\n\
         clusters:\n  c:\n    read_timeout: 30s\n    backends: [ {{ name: b, url: \"{url}\" }} ]\n",
        proxy_head(),
        url = backend.url()
    );
    let d = start(&yaml).await;
    for host in ["slow.test", "c.test"] {
        let started = Instant::now();
        let reply = on(&d, host, "/sleep?ms=1500").await;
        assert_eq!(reply.status, 504, "{host}: {}", reply.text());
        assert!(
            started.elapsed() < Duration::from_millis(1400),
            "{host}: {:?}",
            started.elapsed()
        );
    }
    // The same backend, the same addresses, without the route's timeout: served.
    for host in ["any.test", "c-default.test"] {
        let reply = on(&d, host, "/sleep?ms=400").await;
        assert_eq!((reply.status, reply.text()), (200, "b".to_owned()), "{host}");
    }
    d.settled("c").await;
    d.settled(&backend.url()).await;
    d.stop().await;
}
