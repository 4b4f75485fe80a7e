//! The object cache end to end, against a real HTTP origin: fresh hits without the backend,
//! client conditionals, ranges and HEAD from stored objects, coalesced misses (`locked`),
//! stale-while-revalidate (`shadowed`), stale-if-error, Vary and `max_variants`, purges
//! (API and `PURGE`), the `max_memory` bound, and the rules that keep one client's private
//! answer from another.

use crate::support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use director::cluster::health::Health;
use futures_util::future::join_all;
use serde_json::json;
use support::origin::Origin;
use support::{admin, cluster_config, eventually, get, request, start, wait_until, Director};

/// Director with cluster `c` over `origin`, the cache settings `cache` (a YAML flow map) and
/// extra cluster settings; an admin listener.
async fn director(origin: &Origin, cache: &str, extra: &str) -> Director {
    let settings = format!("cache: {cache}\n{extra}");
    let mut yaml = cluster_config(&settings, &[("o", origin.url.clone(), 0, "active")]);
    yaml.push_str("admin: { listen: \"127.0.0.1:0\" }\n");
    start(&yaml).await
}

async fn stats(d: &Director) -> serde_json::Value {
    let (status, body) = admin(d, "GET", "/api/v1/clusters/c/cache", None, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Makes `origin` answer 503 to everything and waits until its health checks took it offline.
async fn take_the_origin_down(origin: &Origin, d: &Director) {
    origin.set_down(true);
    let offline = || {
        d.cluster("c")
            .statuses
            .load()
            .iter()
            .all(|s| s.health == Health::Offline)
    };
    eventually("the backend is offline", offline).await;
}

fn cache_status(reply: &support::Reply) -> String {
    reply.header("cache-status").unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_objects_answer_gets_heads_conditionals_and_ranges_without_the_backend() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: true }", "").await;
    let path = "/page?cc=max-age=60&etag=v1";
    let first = get(&d.target(), path).await;
    assert_eq!(first.status, 200);
    assert!(cache_status(&first).contains("fwd=miss") && cache_status(&first).contains("stored"));
    let hit = get(&d.target(), path).await;
    assert_eq!((hit.status, &hit.body), (200, &first.body), "the stored body");
    assert_eq!(cache_status(&hit), "director; hit");
    assert!(hit.header("age").is_some(), "Age on a hit");
    assert_eq!(hit.header("etag"), Some("\"v1\""));

    let head = request(&d.target(), "HEAD", path, &[], Bytes::new()).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());

    let not_modified = request(
        &d.target(),
        "GET",
        path,
        &[("if-none-match", "\"v1\"")],
        Bytes::new(),
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some("\"v1\""));
    let other = request(
        &d.target(),
        "GET",
        path,
        &[("if-none-match", "\"v0\"")],
        Bytes::new(),
    )
    .await;
    assert_eq!(other.status, 200);

    let range = request(&d.target(), "GET", path, &[("range", "bytes=2-5")], Bytes::new()).await;
    assert_eq!(range.status, 206);
    assert_eq!(&range.body[..], &first.body[2..=5]);
    let total = first.body.len();
    assert_eq!(
        range.header("content-range"),
        Some(format!("bytes 2-5/{total}").as_str())
    );
    let beyond = request(
        &d.target(),
        "GET",
        path,
        &[("range", "bytes=9999-")],
        Bytes::new(),
    )
    .await;
    assert_eq!(beyond.status, 416);

    assert_eq!(
        origin.hits(path),
        1,
        "everything after the first request came from the cache"
    );
    let s = stats(&d).await;
    assert_eq!(s["enabled"], true);
    assert_eq!(s["misses"], 1);
    assert_eq!(s["hits"], 6);
    assert_eq!(s["stores"], 1);
    assert_eq!(s["objects"], 1);
    // A hit takes no backend capacity but counts in the cluster's responses.
    let (_, cluster) = admin(&d, "GET", "/api/v1/clusters/c", None, None).await;
    assert_eq!(cluster["cache"]["hits"], 6);
    assert_eq!(
        d.backend("c", "o").stats.snapshot().responses.iter().sum::<u64>(),
        1
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_under_locked_reach_the_backend_once() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: true, update: locked }", "").await;
    let path = "/slow?cc=max-age=60&ms=300";
    let replies = join_all((0..20).map(|_| {
        let t = d.target();
        async move { get(&t, path).await }
    }))
    .await;
    for r in &replies {
        assert_eq!(
            (r.status, &r.body),
            (200, &replies[0].body),
            "everyone gets the one answer"
        );
    }
    assert_eq!(origin.hits(path), 1, "one request filled the key for all");
    let s = stats(&d).await;
    assert_eq!(s["misses"], 1);
    assert_eq!(s["coalesced"], 19);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncacheable_key_is_not_coalesced_and_private_answers_are_never_shared() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: true }", "").await;
    // Uncacheable answers: each client gets its own, from the backend.
    for path in [
        "/private?cc=private,max-age=60",
        "/cookie?cc=max-age=60&cookie=1",
        "/nostore?cc=no-store",
    ] {
        let a = get(&d.target(), path).await;
        let b = get(&d.target(), path).await;
        assert_ne!(
            a.body, b.body,
            "{path}: the second client got the first one's answer"
        );
        assert_eq!(origin.hits(path), 2, "{path}");
    }
    let first = get(&d.target(), "/cookie?cc=max-age=60&cookie=1").await;
    let second = get(&d.target(), "/cookie?cc=max-age=60&cookie=1").await;
    assert_ne!(first.header("set-cookie"), second.header("set-cookie"));
    // Explicitly public with a cookie: stored, but the cookie went to the first client only.
    let path = "/public-cookie?cc=public,max-age=60&cookie=1";
    let a = get(&d.target(), path).await;
    assert!(a.header("set-cookie").is_some());
    let b = get(&d.target(), path).await;
    assert_eq!(b.body, a.body);
    assert!(cache_status(&b).contains("hit"));
    assert_eq!(
        b.header("set-cookie"),
        None,
        "a stored Set-Cookie would hand one session to everyone"
    );
    // A request with Authorization is never answered from the cache.
    let auth = request(
        &d.target(),
        "GET",
        path,
        &[("authorization", "Bearer x")],
        Bytes::new(),
    )
    .await;
    assert_ne!(auth.body, a.body);
    // Concurrent requests for a key known to be uncacheable don't wait on one another.
    let slow = "/slow-private?cc=private&ms=300";
    get(&d.target(), slow).await;
    let started = Instant::now();
    join_all((0..6).map(|_| {
        let t = d.target();
        async move { get(&t, slow).await }
    }))
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "serialised: {:?}",
        started.elapsed()
    );
    assert_eq!(origin.hits(slow), 7);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowed_serves_stale_at_once_with_one_background_refresh() {
    let origin = Origin::start().await;
    let d = director(
        &origin,
        "{ enabled: true, update: shadowed, stale_while_revalidate: 30s }",
        "",
    )
    .await;
    let path = "/news?cc=max-age=1&ms=400";
    let first = get(&d.target(), path).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let replies = join_all((0..10).map(|_| {
        let t = d.target();
        async move { get(&t, path).await }
    }))
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "stale answers must not wait for the backend (took {:?})",
        started.elapsed()
    );
    for r in &replies {
        assert_eq!(r.body, first.body, "the stale object, at once");
        assert!(
            cache_status(r).contains("stale-while-revalidate"),
            "{}",
            cache_status(r)
        );
    }
    eventually("the background refresh stored a new version", || {
        origin.hits(path) == 2
    })
    .await;
    wait_until("the refresh replaced the object", async || {
        get(&d.target(), path).await.body != first.body
    })
    .await;
    assert_eq!(origin.hits(path), 2, "exactly one background refresh");
    let s = stats(&d).await;
    assert_eq!(s["background_refreshes"], 1);
    assert!(s["stale_while_revalidate"].as_u64().unwrap() >= 10);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_objects_stand_in_while_every_backend_is_down_until_stale_if_error_passes() {
    let origin = Origin::start().await;
    let health = "health: { interval: 50ms, timeout: 500ms, rise: 1, fall: 1, path: /health, expect: [200] }";
    let d = director(&origin, "{ enabled: true, stale_if_error: 2s }", health).await;
    let path = "/menu?cc=max-age=1";
    let first = get(&d.target(), path).await;
    assert_eq!(first.status, 200);
    take_the_origin_down(&origin, &d).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get(&d.target(), path).await;
    assert_eq!(
        (stale.status, &stale.body),
        (200, &first.body),
        "the stale object"
    );
    assert!(
        cache_status(&stale).contains("detail=stale-if-error"),
        "{}",
        cache_status(&stale)
    );
    let never_stored = get(&d.target(), "/other?cc=max-age=1").await;
    assert_eq!(never_stored.status, 503, "nothing to stand in");
    // Freshness (1s) + stale_if_error (2s) have passed: the failure shows.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let late = get(&d.target(), path).await;
    assert_eq!(late.status, 503, "stale_if_error has passed");
    assert!(late.header("retry-after").is_some());
    let s = stats(&d).await;
    assert_eq!(s["stale_if_error"], 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_error_status_can_be_replaced_by_the_stale_object() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: true, stale_on_status: [503] }", "").await;
    let path = "/feed?cc=max-age=1";
    let first = get(&d.target(), path).await;
    origin.set_down(true); // answers 503 (no health checks here)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get(&d.target(), path).await;
    assert_eq!((stale.status, &stale.body), (200, &first.body));
    assert!(
        cache_status(&stale).contains("fwd-status=503"),
        "{}",
        cache_status(&stale)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_from_the_backend_refreshes_the_stored_object() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: true }", "").await;
    let path = "/doc?cc=max-age=1&etag=v7";
    let first = get(&d.target(), path).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let revalidated = get(&d.target(), path).await;
    assert_eq!(
        origin
            .last_headers(path)
            .get("if-none-match")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("\"v7\"".to_owned()),
        "director revalidated with the stored ETag"
    );
    assert_eq!(
        (revalidated.status, &revalidated.body),
        (200, &first.body),
        "the stored body"
    );
    assert!(cache_status(&revalidated).contains("fwd-status=304"));
    let hit = get(&d.target(), path).await;
    assert!(
        cache_status(&hit).contains("hit"),
        "fresh again: {}",
        cache_status(&hit)
    );
    assert_eq!(origin.hits(path), 2);
    assert_eq!(stats(&d).await["revalidations"], 1);
    // A client's no-cache revalidates a fresh object; ignore_client_no_cache keeps it a hit.
    // An object fresh for an hour, so that a slow machine cannot let it expire meanwhile.
    let path = "/doc?cc=max-age=3600&etag=v8";
    get(&d.target(), path).await;
    let forced = request(
        &d.target(),
        "GET",
        path,
        &[("cache-control", "no-cache")],
        Bytes::new(),
    )
    .await;
    assert!(
        cache_status(&forced).contains("fwd=request"),
        "{}",
        cache_status(&forced)
    );
    assert_eq!(origin.hits(path), 2);
    let (status, _) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({"cache": {"ignore_client_no_cache": true}})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ignored = request(&d.target(), "GET", path, &[("pragma", "no-cache")], Bytes::new()).await;
    assert!(
        cache_status(&ignored).contains("hit"),
        "{}",
        cache_status(&ignored)
    );
    assert_eq!(origin.hits(path), 2);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_keeps_variants_bounded_by_max_variants() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: true, max_variants: 2 }", "").await;
    let path = "/hello?cc=max-age=60&vary=accept-language";
    let ask = |lang: &'static str| {
        let t = d.target();
        async move { request(&t, "GET", path, &[("accept-language", lang)], Bytes::new()).await }
    };
    let de = ask("de").await;
    let fr = ask("fr").await;
    assert!(de.text().contains("accept-language=de") && fr.text().contains("accept-language=fr"));
    assert_eq!(ask("de").await.body, de.body, "each language its variant");
    assert_eq!(ask("fr").await.body, fr.body);
    assert_eq!(origin.hits(path), 2);
    ask("it").await; // a third variant pushes out the oldest (de)
    assert_eq!(ask("fr").await.body, fr.body);
    assert_ne!(ask("de").await.body, de.body, "de was evicted and fetched again");
    assert_eq!(origin.hits(path), 4);
    let star = "/star?cc=max-age=60&vary=*";
    get(&d.target(), star).await;
    get(&d.target(), star).await;
    assert_eq!(origin.hits(star), 2, "Vary: * is never stored");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_by_url_prefix_tag_and_purge_method() {
    let origin = Origin::start().await;
    let cache = "{ enabled: true, purge_method: { enabled: true, allow: [127.0.0.1/32] } }";
    let d = director(&origin, cache, "").await;
    let paths = [
        "/a/1?cc=max-age=60&tag=red",
        "/a/2?cc=max-age=60&tag=blue",
        "/b/1?cc=max-age=60&tag=red",
        "/b/2?cc=max-age=60",
    ];
    let fill = || async {
        for p in paths {
            get(&d.target(), p).await;
        }
    };
    let stored = |p: &'static str| {
        let t = d.target();
        async move { cache_status(&get(&t, p).await).contains("hit") }
    };
    fill().await;
    let purge = |body| admin(&d, "POST", "/api/v1/clusters/c/cache/purge", Some(body), None);
    let (status, n) = purge(json!({"url": "http://test.local/a/1?cc=max-age=60&tag=red"})).await;
    assert_eq!((status, n["purged"].as_u64()), (200, Some(1)), "{n}");
    assert!(!stored(paths[0]).await && stored(paths[1]).await);
    let (_, n) = purge(json!({"tag": "red"})).await;
    assert_eq!(n["purged"], 2, "/a/1 (stored again) and /b/1");
    assert!(!stored(paths[2]).await && stored(paths[3]).await);
    let (_, n) = purge(json!({"prefix": "/b/"})).await;
    assert_eq!(n["purged"], 2);
    assert!(!stored(paths[3]).await && stored(paths[1]).await);
    let (status, _) = purge(json!({"url": "/x", "tag": "y"})).await;
    assert_eq!(status, 400, "one kind of purge at a time");
    let purged = request(&d.target(), "PURGE", paths[1], &[], Bytes::new()).await;
    assert_eq!((purged.status, purged.text().trim()), (200, "{\"purged\":1}"));
    assert!(!stored(paths[1]).await);
    let (status, n) = admin(&d, "DELETE", "/api/v1/clusters/c/cache", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(n["purged"], 2, "/b/2 and /a/2, stored again by the checks above");
    assert_eq!(stats(&d).await["objects"], 0);
    // An unsafe request invalidates its URL.
    get(&d.target(), paths[3]).await;
    request(&d.target(), "POST", paths[3], &[], Bytes::from_static(b"x")).await;
    assert!(!stored(paths[3]).await, "a POST invalidates the stored GET");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_method_from_a_network_not_allowed_is_refused() {
    let origin = Origin::start().await;
    let cache = "{ enabled: true, purge_method: { enabled: true, allow: [10.0.0.0/8] } }";
    let d = director(&origin, cache, "").await;
    let path = "/p?cc=max-age=60";
    get(&d.target(), path).await;
    let refused = request(&d.target(), "PURGE", path, &[], Bytes::new()).await;
    assert_eq!(refused.status, 403);
    assert!(
        cache_status(&get(&d.target(), path).await).contains("hit"),
        "still stored"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_memory_holds_under_a_churn_of_large_and_small_objects() {
    let origin = Origin::start().await;
    let d = director(
        &origin,
        "{ enabled: true, max_memory: 1MiB, max_object_size: 200KiB }",
        "",
    )
    .await;
    let max = 1u64 << 20;
    let mut sizes = Vec::new();
    for i in 0..120u64 {
        // Deterministic spread: 1 KiB .. 300 KiB, a quarter above max_object_size.
        sizes.push(1024 + (i * 7919 % 300) * 1024);
    }
    for (i, size) in sizes.iter().enumerate() {
        let path = format!("/obj/{i}?cc=max-age=60&size={size}");
        let r = get(&d.target(), &path).await;
        assert_eq!(r.body.len() as u64, *size, "every response arrives whole");
        let s = stats(&d).await;
        let bytes = s["bytes"].as_u64().unwrap();
        assert!(bytes <= max, "{bytes} bytes stored, over max_memory after {path}");
    }
    let big = format!("/obj/big?cc=max-age=60&size={}", 300 * 1024);
    get(&d.target(), &big).await;
    let again = get(&d.target(), &big).await;
    assert_eq!(again.body.len(), 300 * 1024);
    assert!(
        !cache_status(&again).contains("hit"),
        "larger than max_object_size: never stored"
    );
    let s = stats(&d).await;
    assert!(s["evictions"].as_u64().unwrap() > 0, "{s}");
    assert!(s["abandoned"].as_u64().unwrap() > 0, "{s}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_first_request_leaves_no_half_object() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: true }", "").await;
    let path = "/drip?cc=max-age=60&drip=1";
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).await.unwrap();
        assert!(
            n > 0 && buf.starts_with(b"HTTP/1.1 200"),
            "the first client streams at once"
        );
        // ... and goes away mid-body.
    }
    let next = get(&d.target(), path).await;
    assert_eq!(next.body.len(), 64 * 1024, "the whole body");
    assert!(!cache_status(&next).contains("hit"), "no half object was stored");
    assert_eq!(origin.hits(path), 2);
    // Without a length, the object is stored when the body's end is read, which may be just
    // after the client has it all.
    wait_until("the object stored", async || {
        let stores = stats(&d).await["stores"].clone();
        if stores == 1 {
            Ok(())
        } else {
            Err(stores)
        }
    })
    .await;
    let stored = get(&d.target(), path).await;
    assert!(
        cache_status(&stored).contains("hit"),
        "the complete one was stored"
    );
    assert_eq!(stored.body.len(), 64 * 1024);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_configured_at_runtime_through_the_api() {
    let origin = Origin::start().await;
    let d = director(&origin, "{ enabled: false }", "").await;
    let path = "/rt?cc=max-age=60";
    get(&d.target(), path).await;
    get(&d.target(), path).await;
    assert_eq!(origin.hits(path), 2, "disabled: nothing stored");
    assert_eq!(stats(&d).await["enabled"], false);
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({"cache": {"enabled": true}})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    get(&d.target(), path).await;
    let hit = get(&d.target(), path).await;
    assert!(cache_status(&hit).contains("hit"));
    assert_eq!(origin.hits(path), 3);
    // A partial patch keeps the other keys (merge patch); an invalid one changes nothing.
    let (status, _) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({"cache": {"default_ttl": "5s"}})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        cache_status(&get(&d.target(), path).await).contains("hit"),
        "still enabled, object kept"
    );
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({"cache": {"max_memory": "10"}})),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("max_memory"), "{body}");
    assert!(cache_status(&get(&d.target(), path).await).contains("hit"));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_s_own_rfc5861_directives_replace_the_cluster_s_stale_windows() {
    let origin = Origin::start().await;
    let health = "health: { interval: 50ms, timeout: 500ms, rise: 1, fall: 1, path: /health, expect: [200] }";
    let cache = "{ enabled: true, update: shadowed, stale_while_revalidate: 0s, stale_if_error: 0s }";
    let d = director(&origin, cache, health).await;
    let own = "/own?cc=max-age=1,stale-while-revalidate=30";
    let if_error = "/if-error?cc=max-age=1,stale-if-error=30";
    let plain = "/plain?cc=max-age=1";
    let first = get(&d.target(), own).await;
    let if_error_first = get(&d.target(), if_error).await;
    assert_eq!(get(&d.target(), plain).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Stale: the response's stale-while-revalidate=30 serves it at once; the cluster's 0s
    // sends the other one to the backend.
    let stale = get(&d.target(), own).await;
    assert_eq!(stale.body, first.body, "the stale object, at once");
    assert!(
        cache_status(&stale).contains("detail=stale-while-revalidate"),
        "{}",
        cache_status(&stale)
    );
    let missed = get(&d.target(), plain).await;
    assert!(
        cache_status(&missed).contains("fwd=stale"),
        "{}",
        cache_status(&missed)
    );
    eventually("the background refresh of /own", || origin.hits(own) == 2).await;

    // Every backend down: the response's stale-if-error=30 stands in, the cluster's 0s not.
    take_the_origin_down(&origin, &d).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stood_in = get(&d.target(), if_error).await;
    assert_eq!((stood_in.status, &stood_in.body), (200, &if_error_first.body));
    assert!(
        cache_status(&stood_in).contains("detail=stale-if-error"),
        "{}",
        cache_status(&stood_in)
    );
    assert_eq!(
        get(&d.target(), plain).await.status,
        503,
        "no window for the plain object"
    );
    d.stop().await;
}
