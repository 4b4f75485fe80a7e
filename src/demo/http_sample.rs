//! The demo's HTTP sample backend: a small hyper server that answers every request with a line
//! naming itself, after a varied delay. `/health` answers at once, for health checks. Paths
//! under `/static/` may be cached for 30 s (with an `ETag`); everything else says `no-store`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::{Latency, Listener};

/// Serves `listener` as the HTTP sample named `name`.
pub(super) fn spawn(listener: Listener, name: &str, latency: Latency) {
    let sample = Arc::new(HttpSample {
        name: name.into(),
        latency,
        served: AtomicU64::new(0),
    });
    listener.spawn_accept_loop(move |connection| {
        let sample = sample.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| sample.clone().answer(req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(connection), service)
                .await;
        });
    });
}

struct HttpSample {
    name: Box<str>,
    latency: Latency,
    served: AtomicU64,
}

impl HttpSample {
    async fn answer(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
        let body = if req.uri().path() == "/health" {
            "ok\n".to_owned()
        } else {
            let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::time::sleep(self.latency.next()).await;
            format!(
                "{} answered {} {} (request #{n})\n",
                self.name,
                req.method(),
                req.uri()
            )
        };
        let cacheable = req.uri().path().contains("/static/");
        let cache_control = if cacheable {
            "public, max-age=30"
        } else {
            "no-store"
        };
        let mut response = hyper::Response::builder()
            .header("content-type", "text/plain; charset=utf-8")
            .header("cache-control", cache_control)
            .header("x-demo-backend", &*self.name);
        if cacheable {
            response = response.header("etag", "\"demo-static-1\"");
        }
        let response = response.body(Full::new(Bytes::from(body)));
        Ok(response.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()))))
    }
}
