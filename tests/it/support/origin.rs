//! A real HTTP origin for the cache tests (hyper on `127.0.0.1:0`) whose answers the request
//! asks for in its query: `cc=` Cache-Control, `etag=` (answers a matching `If-None-Match`
//! with 304), `vary=`, `tag=` (Surrogate-Key), `cookie=1` (Set-Cookie), `ms=` delay before
//! the head, `size=` body bytes (else the body names the request and the response's serial
//! number, so a test can tell a fresh answer from a stored one), `status=`, `drip=1` (the body
//! in 1 KiB pieces 20 ms apart). It counts requests per path+query and keeps the last request
//! headers; `set_down` makes `/health` and every request answer 503.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Default)]
struct State {
    hits: Mutex<HashMap<String, u64>>,
    headers: Mutex<HashMap<String, http::HeaderMap>>,
    serial: AtomicU64,
    down: AtomicBool,
}

pub struct Origin {
    state: Arc<State>,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((io, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(&st, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(io), svc)
                        .await;
                });
            }
        });
        Origin { state, url, task }
    }

    /// Requests that reached the origin for `path_and_query` (health probes aside).
    pub fn hits(&self, path_and_query: &str) -> u64 {
        *self.state.hits.lock().unwrap().get(path_and_query).unwrap_or(&0)
    }

    /// The headers of the last request for `path_and_query`.
    pub fn last_headers(&self, path_and_query: &str) -> http::HeaderMap {
        self.state
            .headers
            .lock()
            .unwrap()
            .get(path_and_query)
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Body> {
    let down = state.down.load(Ordering::SeqCst);
    if req.uri().path() == "/health" {
        let status = if down { 503 } else { 200 };
        return Response::builder().status(status).body(full("")).unwrap();
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    *state.hits.lock().unwrap().entry(target.clone()).or_default() += 1;
    state
        .headers
        .lock()
        .unwrap()
        .insert(target.clone(), req.headers().clone());
    if down {
        return Response::builder().status(503).body(full("down\n")).unwrap();
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let q = |k| param(&query, k);
    if let Some(ms) = q("ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut res = Response::builder().status(q("status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(200));
    if let Some(cc) = q("cc") {
        res = res.header("cache-control", cc);
    }
    if let Some(vary) = q("vary") {
        res = res.header("vary", vary);
    }
    if let Some(tag) = q("tag") {
        res = res.header("surrogate-key", tag);
    }
    let serial = state.serial.fetch_add(1, Ordering::SeqCst) + 1;
    if q("cookie") == Some("1") {
        res = res.header("set-cookie", format!("session=secret{serial}"));
    }
    if let Some(etag) = q("etag") {
        let tag = format!("\"{etag}\"");
        let matches = req
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v.to_str().unwrap_or("").contains(&tag));
        res = res.header("etag", tag);
        if matches {
            return res.status(304).body(full("")).unwrap();
        }
    }
    if let Some(size) = q("size").and_then(|v| v.parse::<usize>().ok()) {
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        return res.body(full(body)).unwrap();
    }
    let varied: Vec<String> = q("vary")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|name| {
            format!(
                "{name}={}",
                req.headers()
                    .get(name.trim())
                    .map_or("", |v| v.to_str().unwrap_or(""))
            )
        })
        .collect();
    let text = format!("{target} #{serial} {}\n", varied.join(" "));
    if q("drip") == Some("1") {
        let pieces = stream::unfold(0usize, |i| async move {
            if i >= 64 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 1024]))),
                i + 1,
            ))
        });
        return res.body(StreamBody::new(pieces).boxed_unsync()).unwrap();
    }
    res.body(full(text)).unwrap()
}
