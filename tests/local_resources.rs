//! A host that runs out of file descriptors answers 503 (with `Retry-After`) and blames no
//! backend. Alone in its test binary: it lowers this process's open-file limit.

#[path = "it/support/mod.rs"]
mod support;

use director::cluster::health::Health;
use support::scripted::{open_to, RawClient, Scripted, Step};
use support::{cluster_config, eventually, start};

/// The lowest descriptor number not in use: with the soft limit set to it, no new
/// descriptor can be made (a new one always takes the lowest free number).
fn lowest_free_fd() -> u64 {
    let used: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(Result::ok)
        // The listing's own directory handle is closed again right after.
        .filter(|e| !std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with("/proc")))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).expect("a free number")
}

fn set_soft_nofile(soft: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, initialised struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let old = limit.rlim_cur;
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        old
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_503_and_no_backends_fault() {
    // Closes every connection after its response, and says so: nothing is pooled, so each
    // request needs a new connection.
    let backend = Scripted::start(|seen| {
        let reply = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
            seen.path.len(),
            seen.path
        );
        Step::ReplyThenClose(reply.into_bytes())
    })
    .await;
    let yaml = cluster_config(
        "passive_health: { max_fails: 1, fail_timeout: 1m }\nretry_after: 7",
        &[("b", backend.url(), 0, "active")],
    )
    .replace("workers: 2", "workers: 1");
    let d = start(&yaml).await;
    let mut c = RawClient::connect(d.addr()).await;
    c.send(b"GET /warm HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.read(false).await.status, 200);
    // Once the backend connection's descriptor is closed, allow no new descriptor at all.
    eventually("the backend connection closed", || open_to(backend.port()) == 0).await;
    let old = set_soft_nofile(lowest_free_fd());
    c.send(b"GET /starved HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let reply = c.read(false).await;
    set_soft_nofile(old);
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("retry-after").as_deref(), Some("7"));
    let b = d.backend("c", "b");
    assert_eq!(b.stats.snapshot().failures, 0, "the backend is not blamed");
    let statuses = d.cluster("c").statuses.load();
    assert!(statuses.iter().all(|s| s.health == Health::Online));
    assert!(backend.seen().iter().all(|s| s.path != "/starved"));
    c.send(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.read(false).await.text(), "/again");
    d.settled("c").await;
}
