//! Live stats for the dashboard: `GET /api/v1/events` (server-sent events, one sample a second)
//! and `GET /api/v1/history?window=15m` (the recorded series).
//!
//! Control plane. Both read what the StatsCollector publishes through [`LiveStats`]; an event
//! stream is a broadcast receiver, so a slow client skips samples instead of holding up the
//! collector. At most `admin.max_event_streams` streams are open at once ([`EventStreams`]):
//! each holds a connection, a task and a receiver for as long as the client keeps it, so
//! without a cap a few clients could pile them up. The handlers take `web::Data<Arc<LiveStats>>`
//! and `web::Data<EventStreams>` and nothing else from the admin state.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::{error::RecvError, Receiver};

use super::error::ApiError;
use super::live::LiveStats;
use crate::config::{parse_duration, SharedAdmin, DEFAULT_MAX_EVENT_STREAMS};

/// How long a browser waits before reconnecting a dropped stream (the `retry:` field).
const RETRY_MS: u32 = 2000;
/// A comment is sent when no sample came for this long, so that proxies keep the stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The window of `/api/v1/history` without `?window=`.
const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest window kept.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The open event streams, counted against `admin.max_event_streams` as it is now (a lowered
/// limit refuses new streams and leaves the open ones be).
pub struct EventStreams {
    open: Arc<AtomicUsize>,
    settings: SharedAdmin,
}

impl EventStreams {
    pub fn new(settings: SharedAdmin) -> EventStreams {
        EventStreams {
            open: Arc::new(AtomicUsize::new(0)),
            settings,
        }
    }

    /// How many streams may be open at once.
    pub fn limit(&self) -> usize {
        self.settings
            .load()
            .as_ref()
            .map_or(DEFAULT_MAX_EVENT_STREAMS, |s| s.max_event_streams)
    }

    /// How many streams are open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A place for one more stream, held until the slot drops; `None` when all are taken.
    fn try_open(&self) -> Option<StreamSlot> {
        let limit = self.limit();
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(StreamSlot(self.open.clone()))
    }
}

/// One stream's place; dropped with the stream's body (the client left, or the collector
/// stopped), which frees it.
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /api/v1/events`: `text/event-stream` with the newest sample at once, then each new one
/// as `data: <json>`. 503 when `admin.max_event_streams` streams are open already, or once the
/// collector has stopped.
pub async fn events(
    live: web::Data<Arc<LiveStats>>,
    streams: web::Data<EventStreams>,
) -> Result<HttpResponse, ApiError> {
    let slot = streams.try_open().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} event streams are open already (admin.max_event_streams); close one and retry",
                streams.limit()
            ),
        )
    })?;
    let subscription = live.subscribe().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the stats collector has stopped",
        )
    })?;
    let mut first = format!("retry: {RETRY_MS}\n\n");
    if let Some(latest) = &subscription.latest {
        first.push_str(&data_frame(latest));
    }
    let body =
        stream::once(async move { Ok(Bytes::from(first)) }).chain(samples(subscription.receiver, slot));
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        // nginx and similar front proxies would otherwise buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// One server-sent event carrying `json` (a single line: serde_json writes no newlines).
fn data_frame(json: &str) -> String {
    format!("data: {json}\n\n")
}

/// The receiver's samples as events, keep-alive comments in quiet spells; ends when the
/// collector stops. Skipped samples (a lagging client) are simply not sent. The stream holds
/// `slot` for as long as it lives.
fn samples(receiver: Receiver<Arc<str>>, slot: StreamSlot) -> impl Stream<Item = Result<Bytes, Infallible>> {
    stream::unfold((receiver, slot), |(mut receiver, slot)| async move {
        loop {
            let frame = match tokio::time::timeout(KEEP_ALIVE, receiver.recv()).await {
                Ok(Ok(json)) => Bytes::from(data_frame(&json)),
                Ok(Err(RecvError::Lagged(_))) => continue,
                Ok(Err(RecvError::Closed)) => return None,
                Err(_) => Bytes::from_static(b": keep-alive\n\n"),
            };
            return Some((Ok(frame), (receiver, slot)));
        }
    })
}

/// The query of `/api/v1/history`.
#[derive(Debug, Deserialize)]
struct HistoryQuery {
    window: Option<String>,
}

/// `GET /api/v1/history?window=15m`: `{"step": 1, "samples": [...]}`, one-second samples for
/// windows up to an hour, minute aggregates (`"step": 60`) up to a day.
pub async fn history(live: web::Data<Arc<LiveStats>>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HistoryQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let window = parse_window(query.window.as_deref())?;
    Ok(HttpResponse::Ok().json(live.window(window)))
}

fn parse_window(text: Option<&str>) -> Result<Duration, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_WINDOW);
    };
    let invalid = |message: String| ApiError::bad_request("invalid_value", format!("window: {message}"));
    let window = parse_duration(text).map_err(invalid)?;
    if window.is_zero() || window > MAX_WINDOW {
        return Err(invalid(format!("`{text}` is outside 1s..24h")));
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::test::{call_and_read_body_json, call_service, init_service, read_body_json, TestRequest};
    use actix_web::App;
    use arc_swap::ArcSwapOption;

    use crate::config::{AdminConfig, ListenAddr, DEFAULT_SESSION_TTL};

    fn live() -> Arc<LiveStats> {
        LiveStats::start_in(
            Arc::new(ArcSwapOption::empty()),
            &actix::Arbiter::current(),
            Duration::from_millis(20),
        )
    }

    /// Admin settings with at most `max_event_streams` streams.
    fn settings(max_event_streams: usize) -> SharedAdmin {
        Arc::new(ArcSwapOption::from_pointee(AdminConfig {
            listen: ListenAddr::Tcp(([127, 0, 0, 1], 8081).into()),
            token: None,
            session_ttl: DEFAULT_SESSION_TTL,
            max_event_streams,
            max_connections: 64,
            tls: None,
        }))
    }

    /// The two handlers as the admin server routes them (with the default stream limit, or
    /// the limit of `settings`).
    macro_rules! app {
        ($live:expr) => {
            app!($live, settings(DEFAULT_MAX_EVENT_STREAMS))
        };
        ($live:expr, $settings:expr) => {
            init_service(
                App::new()
                    .app_data(web::Data::new($live.clone()))
                    .app_data(web::Data::new(EventStreams::new($settings)))
                    .route("/api/v1/events", web::get().to(events))
                    .route("/api/v1/history", web::get().to(history)),
            )
            .await
        };
    }

    #[actix_web::test]
    async fn streams_beyond_the_limit_get_503_until_one_closes() {
        let live = live();
        let settings = settings(2);
        let app = app!(live, settings.clone());
        let get_events = || TestRequest::get().uri("/api/v1/events").to_request();
        let first = call_service(&app, get_events()).await;
        let second = call_service(&app, get_events()).await;
        assert_eq!(
            (first.status(), second.status()),
            (StatusCode::OK, StatusCode::OK)
        );
        let refused = call_service(&app, get_events()).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = read_body_json(refused).await;
        assert_eq!(body["error"], "too_many_streams", "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("max_event_streams")),
            "{body}"
        );

        drop(first);
        let third = call_service(&app, get_events()).await;
        assert_eq!(third.status(), StatusCode::OK, "a closed stream frees its place");

        // A raised limit (a reload) lets one more in at once.
        let mut raised = AdminConfig::clone(&settings.load_full().expect("settings"));
        raised.max_event_streams = 3;
        settings.store(Some(Arc::new(raised)));
        let fourth = call_service(&app, get_events()).await;
        assert_eq!(fourth.status(), StatusCode::OK);
        assert_eq!(
            call_service(&app, get_events()).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop((second, third, fourth));
    }

    #[actix_web::test]
    async fn event_stream_sends_retry_then_data_lines() {
        let live = live();
        let app = app!(live);
        let res = call_service(&app, TestRequest::get().uri("/api/v1/events").to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers().get(CONTENT_TYPE).unwrap(), "text/event-stream");
        assert_eq!(res.headers().get(CACHE_CONTROL).unwrap(), "no-cache");

        let mut body = std::pin::pin!(res.into_body());
        let mut received = String::new();
        let read = async {
            while received.matches("data: ").count() < 2 {
                let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
                let chunk = chunk.expect("the stream goes on").expect("no body error");
                received.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("two samples in time");
        assert!(received.starts_with("retry: 2000\n\n"), "{received}");
        for event in received.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
            let sample: serde_json::Value = serde_json::from_str(event).expect("JSON sample");
            assert!(sample["at"].is_u64() && sample["clusters"].is_array(), "{sample}");
        }

        live.stop();
        let rest = async {
            while std::future::poll_fn(|cx| body.as_mut().poll_next(cx))
                .await
                .is_some()
            {}
        };
        tokio::time::timeout(Duration::from_secs(5), rest)
            .await
            .expect("the stream ends with the collector");
        let res = call_service(&app, TestRequest::get().uri("/api/v1/events").to_request()).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    /// Reads the body's events until `wanted` accepts one; that sample.
    async fn sample_where<B: MessageBody>(
        body: &mut std::pin::Pin<&mut B>,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value
    where
        B::Error: std::fmt::Debug,
    {
        let mut received = String::new();
        let read = async {
            loop {
                while let Some(end) = received.find("\n\n") {
                    let event: String = received.drain(..end + 2).collect();
                    if let Some(json) = event.strip_prefix("data: ") {
                        let sample: serde_json::Value =
                            serde_json::from_str(json.trim_end()).expect("JSON sample");
                        if wanted(&sample) {
                            return sample;
                        }
                    }
                }
                let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
                let chunk = chunk.expect("the stream goes on").expect("no body error");
                received.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the sample in time")
    }

    #[actix_web::test]
    async fn samples_carry_the_cache_numbers() {
        let yaml =
            "proxy: { listen: \"127.0.0.1:0\" }\nclusters:\n  shop:\n    cache: { enabled: true }\n    \
            backends: [{ name: a, url: \"http://127.0.0.1:1\" }]\n  plain:\n    \
            backends: [{ name: b, url: \"http://127.0.0.1:1\" }]\n";
        let config = crate::config::load_str(yaml).expect("valid config");
        let handle = |name: &str| {
            let cluster = crate::cluster::ClusterHandle::new(name, &config.clusters[name]);
            cluster.configure_cache(&config.clusters[name].cache);
            cluster
        };
        let (shop, plain) = (handle("shop"), handle("plain"));
        let topology = Arc::new(ArcSwapOption::from_pointee(crate::cluster::Topology {
            routes: Vec::new(),
            clusters: vec![shop.clone(), plain],
        }));
        let live = LiveStats::start_in(topology, &actix::Arbiter::current(), Duration::from_millis(20));
        let app = app!(live);
        let res = call_service(&app, TestRequest::get().uri("/api/v1/events").to_request()).await;
        let mut body = std::pin::pin!(res.into_body());
        let cluster = |sample: &serde_json::Value, name: &str| {
            let clusters = sample["clusters"].as_array().expect("clusters").clone();
            clusters
                .into_iter()
                .find(|c| c["name"] == name)
                .expect("the cluster")
        };
        // Seen once, then one hit in four lookups.
        sample_where(&mut body, |s| cluster(s, "shop")["cache"].is_object()).await;
        let stats = &shop.cache.load_full().expect("enabled").stats;
        for counter in [
            &stats.lookups,
            &stats.lookups,
            &stats.lookups,
            &stats.lookups,
            &stats.hits,
        ] {
            crate::cache::CacheStats::count(counter);
        }
        let sample = sample_where(&mut body, |s| !cluster(s, "shop")["cache"]["hit_ratio"].is_null()).await;
        let cache = &cluster(&sample, "shop")["cache"];
        assert_eq!(cache["hit_ratio"], 0.25, "{cache}");
        for field in ["lookups", "hits", "misses", "stale", "objects", "bytes"] {
            assert!(cache[field].is_number(), "{field}: {cache}");
        }
        assert_eq!(cache["max_memory"], 256 << 20);
        assert!(
            cluster(&sample, "plain").get("cache").is_none(),
            "no cache: no numbers"
        );

        let history: serde_json::Value = call_and_read_body_json(
            &app,
            TestRequest::get().uri("/api/v1/history?window=1m").to_request(),
        )
        .await;
        let samples = history["samples"].as_array().expect("samples");
        assert!(
            samples
                .iter()
                .any(|s| cluster(s, "shop")["cache"]["hit_ratio"] == 0.25),
            "the history keeps the ratio"
        );
        live.stop();
    }

    #[actix_web::test]
    async fn history_returns_the_window_or_400() {
        let live = live();
        let app = app!(live);
        let mut receiver = live.subscribe().unwrap().receiver;
        tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap()
            .unwrap();

        let get = |uri: &str| TestRequest::get().uri(uri).to_request();
        let body: serde_json::Value = call_and_read_body_json(&app, get("/api/v1/history?window=15m")).await;
        assert_eq!(body["step"], 1);
        assert!(!body["samples"].as_array().unwrap().is_empty());
        let body: serde_json::Value = call_and_read_body_json(&app, get("/api/v1/history?window=2h")).await;
        assert_eq!(body["step"], 60);
        let body: serde_json::Value = call_and_read_body_json(&app, get("/api/v1/history")).await;
        assert_eq!(body["step"], 1);

        for bad in [
            "window=25h",
            "window=0s",
            "window=10",
            "window=soon",
            "window=%ZZ",
        ] {
            let res = call_service(&app, get(&format!("/api/v1/history?{bad}"))).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
            let body: serde_json::Value = read_body_json(res).await;
            assert!(
                body["error"].is_string() && body["detail"].is_string(),
                "{bad}: {body}"
            );
        }
    }

    #[test]
    fn window_bounds() {
        assert_eq!(parse_window(None).unwrap(), DEFAULT_WINDOW);
        assert_eq!(parse_window(Some("24h")).unwrap(), MAX_WINDOW);
        assert_eq!(parse_window(Some("90s")).unwrap(), Duration::from_secs(90));
        assert_eq!(parse_window(Some("24.5h")).unwrap_err().error, "invalid_value");
    }
}
