//! The lean upstream HTTP/1 client (`proxy::upstream`, the proxied path) against hyper 1's
//! HTTP/1 client and awc: sequential keep-alive GETs over loopback to one tiny origin, each
//! client on one connection, the same request headers on the wire (`Host`, `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `Via`) and the same 13-byte answer, read to its end.
//!
//! Measured per request: wall time (a loopback round trip, the origin included) and the CPU
//! time of the client's thread, user and system apart (the client alone: the origin runs on a
//! thread of its own). User time is the client's own code; system time is mostly the loopback
//! socket calls, which every client makes alike.
//! hyper is driven through its connection API (`client::conn::http1`), its cheapest path: no
//! pool, and the request built straight from static strings, where a proxy would first
//! convert actix's request head. awc uses its own pool. The lean client takes and returns its
//! per-worker pool connection each time, as it does in director.
//!
//! `cargo bench --bench upstream_clients` (about 10 s; `REQUESTS`, `ROUNDS` change the run).
//! The figures go into `bench/README.md`.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use bytes::Bytes;
use director::cluster::Backend;
use director::config::{parse_backend_url, ForwardedFor};
use director::proxy::request_body::ClientBody;
use director::proxy::upstream::{self, Outgoing, Timeouts};
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello, world\n";
const HOST: &str = "origin.test";

/// The time one leg took: wall clock and the client thread's CPU, user and system.
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    user: Duration,
    system: Duration,
}

/// The CPU time this thread has used so far: (user, system).
fn thread_cpu_time() -> (Duration, Duration) {
    // SAFETY: an all-zero rusage is valid, and getrusage only fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (time(usage.ru_utime), time(usage.ru_stime))
}

async fn measure<F: std::future::Future<Output = ()>>(leg: F) -> Cost {
    let (wall, (user, system)) = (Instant::now(), thread_cpu_time());
    leg.await;
    let (user_now, system_now) = thread_cpu_time();
    Cost {
        wall: wall.elapsed(),
        user: user_now - user,
        system: system_now - system,
    }
}

/// The origin: answers every request head with [`ANSWER`], on a thread of its own.
fn start_origin() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the origin");
    let addr = listener.local_addr().expect("origin address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("origin runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("origin listener");
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                stream.set_nodelay(true).expect("nodelay");
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(4096);
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if stream.write_all(ANSWER).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
    });
    addr
}

/// `requests` GETs through the lean client.
async fn lean(origin: SocketAddr, requests: usize) {
    let url = parse_backend_url(&format!("http://{origin}")).expect("backend URL");
    let backend: Arc<Backend> = Backend::new("bench", "origin", url, None, None);
    let req = TestRequest::get()
        .uri("/")
        .insert_header(("host", HOST))
        .peer_addr("127.0.0.1:50000".parse().expect("peer"))
        .to_http_request();
    let body = ClientBody::new(None, None, Duration::from_secs(5));
    let out = Outgoing {
        req: &req,
        backend: &backend,
        body: &body,
        host: Some(HOST),
        forwarded_for: ForwardedFor::Replace,
        idempotent: true,
        timeouts: Timeouts {
            connect: Duration::from_secs(1),
            read: Duration::from_secs(5),
            write: Duration::from_secs(5),
        },
        rewrite: None,
        trace: None,
        via: director::proto::http_headers::VIA.as_bytes(),
        notify_abort: false,
        tunnel: None,
    };
    for _ in 0..requests {
        let response = upstream::send(&out).await.expect("lean: response head");
        assert_eq!(response.status, 200);
        let mut exchange = response.exchange;
        while let Some(piece) = poll_fn(|cx| exchange.poll_body(cx)).await {
            piece.expect("lean: body");
        }
        exchange.finish(&backend);
    }
}

/// `requests` GETs through hyper's HTTP/1 connection API, on one connection.
async fn hyper(origin: SocketAddr, requests: usize) {
    let stream = tokio::net::TcpStream::connect(origin).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("hyper handshake");
    tokio::task::spawn_local(conn);
    for _ in 0..requests {
        let request = hyper::Request::get("/")
            .header("host", HOST)
            .header("x-forwarded-for", "127.0.0.1")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", HOST)
            .header("via", "1.1 director")
            .body(Empty::<Bytes>::new())
            .expect("request");
        sender.ready().await.expect("hyper: connection ready");
        let response = sender.send_request(request).await.expect("hyper: response head");
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.expect("hyper: body");
    }
}

/// `requests` GETs through awc, on its pooled connection.
async fn awc(origin: SocketAddr, requests: usize) {
    let client = awc::Client::builder()
        .no_default_headers()
        .disable_redirects()
        .finish();
    let url = format!("http://{origin}/");
    for _ in 0..requests {
        let mut response = client
            .get(&url)
            .insert_header(("host", HOST))
            .insert_header(("x-forwarded-for", "127.0.0.1"))
            .insert_header(("x-forwarded-proto", "http"))
            .insert_header(("x-forwarded-host", HOST))
            .insert_header(("via", "1.1 director"))
            .no_decompress()
            .send()
            .await
            .expect("awc: response head");
        assert_eq!(response.status().as_u16(), 200);
        response.body().await.expect("awc: body");
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut costs: Vec<Cost>, of: fn(&Cost) -> Duration) -> Duration {
    costs.sort_by_key(of);
    of(&costs[costs.len() / 2])
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then a smoke run.
    let benching = std::env::args().any(|a| a == "--bench");
    let requests = env_count("REQUESTS", if benching { 20_000 } else { 200 });
    let rounds = env_count("ROUNDS", if benching { 3 } else { 1 });
    let origin = start_origin();
    type Leg = (
        &'static str,
        fn(SocketAddr, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
    );
    let legs: [Leg; 3] = [
        ("lean", |o, n| Box::pin(lean(o, n))),
        ("hyper", |o, n| Box::pin(hyper(o, n))),
        ("awc", |o, n| Box::pin(awc(o, n))),
    ];
    let costs = actix_rt::System::new().block_on(async move {
        let mut costs: Vec<Vec<Cost>> = vec![Vec::new(); legs.len()];
        for _ in 0..rounds {
            for ((_, leg), costs) in legs.iter().zip(&mut costs) {
                leg(origin, requests / 10).await;
                costs.push(measure(leg(origin, requests)).await);
            }
        }
        costs
    });
    let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
    println!("{requests} keep-alive GETs per leg over loopback, median of {rounds} round(s)");
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>10}",
        "client", "req/s", "wall µs", "user µs", "system µs"
    );
    let mut figures = Vec::new();
    for ((name, _), costs) in legs.iter().zip(costs) {
        let wall = per_request(median(costs.clone(), |c| c.wall));
        let user = per_request(median(costs.clone(), |c| c.user));
        let system = per_request(median(costs, |c| c.system));
        println!(
            "{name:<6} {:>10.0} {wall:>10.2} {user:>10.2} {system:>10.2}",
            1e6 / wall
        );
        figures.push((wall, user, user + system));
    }
    for (other, figure) in [("hyper", figures[1]), ("awc", figures[2])] {
        let lean = figures[0];
        println!(
            "lean / {other}: wall {:.2}, user CPU {:.2}, all CPU {:.2}",
            lean.0 / figure.0,
            lean.1 / figure.1,
            lean.2 / figure.2
        );
    }
}
