//! The cache step of the request pipeline: look the request up, answer it from a stored object
//! (304, 206 and HEAD included), coalesce concurrent misses, and tell the forwarder how to
//! fill, revalidate or fall back to a stale object.
//!
//! Hot path. A fresh hit takes no backend capacity and no bucket token; it is counted in the
//! cluster's response statistics with no backend. Every answer carries an RFC 9211
//! `Cache-Status` (`director; hit`, `fwd=miss`, `fwd=stale`, `fwd=request`, `ttl=`, `stored`,
//! `detail=`) and, from the cache, `Age`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::{self as ax, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{HttpRequest, HttpResponse};

use super::access_log::AccessRecord;
use super::relay_body::{record_status, RelayBody};
use super::sendfile::conditional::{self, Precondition, Validators};
use super::sendfile::ranges::{self, RangeRequest};
use super::upstream::{Response, Rewrite};
use crate::cache::fill::Fill;
use crate::cache::key::KeyText;
use crate::cache::policy::{self, RequestUse};
use crate::cache::{CacheStats, ClusterCache, FillGuard, Lock, Object, PrimaryKey, Purge, StaleUse};
use crate::cluster::ClusterHandle;
use crate::config::CacheUpdate;
use crate::proto::header_lines::{HeaderLines, LinesBuilder};

/// What the cache step decided. Lives on the stack for one request: a hit's response is not
/// boxed (no allocation on the hit path).
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// The cache is off for this request.
    Bypass,
    /// Answered from the cache; `refresh` is a background refresh to start.
    Served {
        response: HttpResponse<RelayBody>,
        refresh: Option<Box<CachePlan>>,
    },
    /// Forward, and handle the answer as the plan says.
    Forward(Box<CachePlan>),
}

/// A forwarded request the cache takes an interest in.
pub struct CachePlan {
    cache: Arc<ClusterCache>,
    key: PrimaryKey,
    /// The stored object the request found (stale, or fresh but the client revalidates).
    stored: Option<Arc<Object>>,
    /// This request fetches the key for the others waiting.
    lock: Option<FillGuard>,
    pub rewrite: Rewrite,
    /// The `fwd` of `Cache-Status`.
    fwd: &'static str,
}

/// The `Cache-Status` entry of an answer.
const NAME: &str = "director";
/// `Cache-Status` of a fresh hit (its freshness shows in `Age` and `Cache-Control`).
const HIT: &str = "director; hit";
/// How long a key whose response could not be stored bypasses the cache (Varnish's
/// hit-for-pass): concurrent requests for an uncacheable URL must not queue behind one
/// another, and pay nothing for the cache meanwhile.
const UNCACHEABLE_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// Looks the request up in the cluster's cache; a request that asks to upgrade (`upgrade`)
/// bypasses it: its answer is a tunnel, never stored.
pub async fn lookup(
    cluster: &Arc<ClusterHandle>,
    req: &HttpRequest,
    host: Option<&str>,
    path: &str,
    log: &mut Option<Box<AccessRecord>>,
    upgrade: bool,
) -> Step {
    let Some(cache) = cluster.cache.load_full().filter(|_| !upgrade) else {
        return Step::Bypass;
    };
    let (key, found, request_use) = match first_look(&cache, req, host, path) {
        FirstLook::Bypass => return Step::Bypass,
        FirstLook::Fresh(object) => {
            let response = serve(&object, req, HIT, cluster, log.take());
            return Step::Served {
                response,
                refresh: None,
            };
        }
        FirstLook::WhileRevalidate { object, refresh } => {
            let status = format!(
                "{NAME}; hit; ttl={}; detail=stale-while-revalidate",
                object.ttl_secs(Instant::now())
            );
            let response = serve(&object, req, &status, cluster, log.take());
            return Step::Served { response, refresh };
        }
        FirstLook::Missed {
            key,
            found,
            request_use,
        } => (key, found, request_use),
    };
    let config = &cache.config;
    let method = req.method();
    let found = found.filter(|o| !o.is_pass_marker());
    let fwd = match (&found, request_use) {
        (_, RequestUse::Revalidate) => "request",
        (Some(_), _) => "stale",
        (None, _) => "miss",
    };
    let lock = if *method == Method::HEAD && config.key.method {
        None
    } else {
        match cache.locks.acquire(&key.text) {
            Lock::Leader(guard) => Some(guard),
            Lock::Follower(wait) => {
                CacheStats::count(&cache.stats.coalesced);
                // Boxed: only followers pay for the wait's state, not every lookup.
                Box::pin(wait.wait(config.lock_timeout)).await;
                let now = Instant::now();
                if let Some(object) = cache
                    .store
                    .lookup(&key.text, req.headers())
                    .filter(|o| !o.is_pass_marker() && o.is_fresh(now))
                {
                    CacheStats::count(&cache.stats.hits);
                    let status = format!("{NAME}; hit; ttl={}; detail=coalesced", object.ttl_secs(now));
                    let response = serve(&object, req, &status, cluster, log.take());
                    return Step::Served {
                        response,
                        refresh: None,
                    };
                }
                // Timed out, or the answer could not be stored: go to the backend.
                None
            }
        }
    };
    CacheStats::count(&cache.stats.misses);
    Step::Forward(Box::new(plan(&cache, key, found, lock, fwd, req)))
}

/// What the lookup found before any waiting.
enum FirstLook {
    Bypass,
    /// A fresh object to answer with.
    Fresh(Arc<Object>),
    /// A stale object to answer with at once, and the background refresh to start, if this
    /// request leads it.
    WhileRevalidate {
        object: Arc<Object>,
        refresh: Option<Box<CachePlan>>,
    },
    /// Nothing fresh for this request: the owned key, and a stored object that may still serve
    /// (stale, or to revalidate).
    Missed {
        key: PrimaryKey,
        found: Option<Arc<Object>>,
        request_use: RequestUse,
    },
}

/// The part of the lookup that never waits: the key is built on the stack, and only a miss
/// makes an owned copy of it. A URL known to be uncacheable is recognised before the request's
/// fields are read: it goes to the backend whatever they say, so they need not be.
fn first_look(cache: &Arc<ClusterCache>, req: &HttpRequest, host: Option<&str>, path: &str) -> FirstLook {
    let config = &cache.config;
    let method = req.method();
    if !policy::cacheable_method(method) {
        if !is_safe(method) {
            // An unsafe request invalidates what the cache holds for its URL (RFC 9111 §4.4).
            let key = KeyText::new(&config.key, "GET", host, path, req.query_string()).into_key();
            cache.purge(&Purge::Key(key.text));
        }
        return FirstLook::Bypass;
    }
    let key = KeyText::new(&config.key, method.as_str(), host, path, req.query_string());
    let now = Instant::now();
    let found = cache.store.lookup(key.as_str(), req.headers());
    if found
        .as_ref()
        .is_some_and(|o| o.is_pass_marker() && o.is_fresh(now))
    {
        // Known uncacheable: straight to the backend, as if the cache were off.
        CacheStats::count(&cache.stats.lookups);
        CacheStats::count(&cache.stats.misses);
        return FirstLook::Bypass;
    }
    let request_use = policy::request_use(method, req.headers(), config.ignore_client_no_cache);
    if request_use == RequestUse::Bypass {
        return FirstLook::Bypass;
    }
    CacheStats::count(&cache.stats.lookups);
    let Some(object) = found else {
        return FirstLook::Missed {
            key: key.into_key(),
            found: None,
            request_use,
        };
    };
    if request_use == RequestUse::Lookup && object.is_fresh(now) {
        CacheStats::count(&cache.stats.hits);
        return FirstLook::Fresh(object);
    } else if request_use == RequestUse::Lookup
        && config.update == CacheUpdate::Shadowed
        && object.usable_stale(now, StaleUse::WhileRevalidate, config.stale_while_revalidate)
    {
        CacheStats::count(&cache.stats.stale_while_revalidate);
        let refresh = cache.locks.try_lead(key.as_str()).map(|lock| {
            CacheStats::count(&cache.stats.background_refreshes);
            let stored = Some(object.clone());
            Box::new(plan(cache, key.into_key(), stored, Some(lock), "stale", req))
        });
        return FirstLook::WhileRevalidate { object, refresh };
    }
    FirstLook::Missed {
        key: key.into_key(),
        found: Some(object),
        request_use,
    }
}

fn plan(
    cache: &Arc<ClusterCache>,
    key: PrimaryKey,
    stored: Option<Arc<Object>>,
    lock: Option<FillGuard>,
    fwd: &'static str,
    req: &HttpRequest,
) -> CachePlan {
    let validator = |name: &str| stored.as_ref().and_then(|o| o.header(name)).cloned();
    let rewrite = Rewrite {
        get_for_head: *req.method() == Method::HEAD && !cache.config.key.method,
        if_none_match: validator("etag"),
        if_modified_since: validator("last-modified"),
    };
    CachePlan {
        cache: cache.clone(),
        key,
        stored,
        lock,
        rewrite,
        fwd,
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl CachePlan {
    /// Decides on a backend's response head before it is relayed: a 304 that revalidated the
    /// stored object, or a status the cluster treats as a failure while a stale object may
    /// stand in, is answered from the object. `None`: relay the response.
    pub fn answer_from_store(
        &self,
        status: u16,
        headers: impl FnOnce() -> HeaderMap,
        req: &HttpRequest,
        cluster: &Arc<ClusterHandle>,
        log: &mut Option<Box<AccessRecord>>,
    ) -> Option<HttpResponse<RelayBody>> {
        let stored = self.stored.as_ref()?;
        let now = Instant::now();
        if status == 304 {
            let object = self.cache.revalidated(&self.key, stored, &headers());
            let object = object.as_ref().unwrap_or(stored);
            let text = format!(
                "{NAME}; fwd={}; fwd-status=304; ttl={}",
                self.fwd,
                object.ttl_secs(now)
            );
            return Some(serve(object, req, &text, cluster, log.take()));
        }
        let config = &self.cache.config;
        if config.stale_on_status.contains(&status)
            && stored.usable_stale(now, StaleUse::IfError, config.stale_if_error)
        {
            CacheStats::count(&self.cache.stats.stale_if_error);
            let text = format!(
                "{NAME}; fwd={}; fwd-status={status}; ttl={}; detail=stale-if-error",
                self.fwd,
                stored.ttl_secs(now)
            );
            return Some(serve(stored, req, &text, cluster, log.take()));
        }
        None
    }

    /// The stale object as the answer when the backend could not be reached or nothing could
    /// take the request, if `stale_if_error` still allows it.
    pub fn stale_if_error(
        &self,
        req: &HttpRequest,
        cluster: &Arc<ClusterHandle>,
        log: Option<Box<AccessRecord>>,
    ) -> Result<HttpResponse<RelayBody>, Option<Box<AccessRecord>>> {
        let now = Instant::now();
        let configured = self.cache.config.stale_if_error;
        match self
            .stored
            .as_ref()
            .filter(|o| o.usable_stale(now, StaleUse::IfError, configured))
        {
            Some(stored) => {
                CacheStats::count(&self.cache.stats.stale_if_error);
                let text = format!(
                    "{NAME}; fwd={}; ttl={}; detail=stale-if-error",
                    self.fwd,
                    stored.ttl_secs(now)
                );
                Ok(serve(stored, req, &text, cluster, log))
            }
            None => Err(log),
        }
    }

    /// Whether `upstream` will not be stored whatever its other fields say (its status, or
    /// `Cache-Control: no-store` or `private`): [`fill`](Self::fill) then reads nothing of
    /// the relayed head, so it needs no header map.
    pub fn never_stores(&self, upstream: &Response) -> bool {
        policy::never_storable(upstream.status, upstream.values(b"cache-control"))
    }

    /// Attaches a fill to a relayed response when it may be stored, and says what the cache
    /// did in `Cache-Status`. An answer that can't be stored marks the key uncacheable for a
    /// while, so later requests for it don't wait on one another.
    pub fn fill(
        self,
        response: HttpResponse<RelayBody>,
        req: &HttpRequest,
        content_length: Option<u64>,
        may_store: bool,
    ) -> HttpResponse<RelayBody> {
        let CachePlan {
            cache,
            key,
            lock,
            fwd,
            rewrite,
            ..
        } = self;
        let status = response.status().as_u16();
        // A HEAD sent as HEAD (the method is part of the key) has no body to store.
        let has_body = *req.method() != Method::HEAD || rewrite.get_for_head;
        let freshness = if may_store && has_body && response.body().is_backend_body() {
            let config = &cache.config;
            policy::storable(
                status,
                response.headers(),
                false,
                config.default_ttl,
                SystemTime::now(),
            )
        } else {
            None
        };
        let fill = freshness.and_then(|freshness| {
            Fill::start(
                cache.clone(),
                key.clone(),
                status,
                response.headers().clone(),
                req.headers().clone(),
                freshness,
                content_length,
                lock,
            )
        });
        let mut response = match fill {
            Some(fill) => response.map_body(|_, body| body.with_fill(fill)),
            None => {
                if has_body && freshness.is_none() && is_final(status) {
                    cache
                        .store
                        .insert(key, Arc::new(Object::pass_marker(UNCACHEABLE_FOR)));
                }
                response
            }
        };
        let stored = if freshness.is_some() { "; stored" } else { "" };
        set_status(
            response.headers_mut(),
            &format!("{NAME}; fwd={fwd}; fwd-status={status}{stored}"),
        );
        response
    }
}

/// Statuses that say something about the URL (not a transient failure).
fn is_final(status: u16) -> bool {
    (200..500).contains(&status)
}

const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

fn set_status(headers: &mut HeaderMap, text: &str) {
    if let Ok(v) = HeaderValue::from_str(text) {
        headers.insert(CACHE_STATUS, v);
    }
}

/// A full answer's head fields for an HTTP/1 client: the object's rendered lines, then
/// `Age`, the cluster's `Via` entry and `Cache-Status`.
fn answer_lines(object: &HeaderLines, age: u64, via: &[u8], cache_status: &str) -> HeaderLines {
    let added = "age: \r\nvia: \r\ncache-status: \r\n".len() + 20 + via.len() + cache_status.len();
    let mut lines = LinesBuilder::with_capacity(object.bytes.len() + added);
    lines.push_lines(object);
    lines.push(b"age", itoa::Buffer::new().format(age).as_bytes());
    lines.push(b"via", via);
    lines.push(CACHE_STATUS.as_str().as_bytes(), cache_status.as_bytes());
    lines.finish()
}

/// Object fields a 304 does not carry (RFC 9110 §15.4.5).
fn not_in_304(name: &str) -> bool {
    name.starts_with("content-") && name != "content-location"
}

/// Answers `req` from `object`: its conditionals (304, 412) and a single `Range` (206, 416)
/// evaluated against it, HEAD without the body.
pub fn serve(
    object: &Object,
    req: &HttpRequest,
    cache_status: &str,
    cluster: &Arc<ClusterHandle>,
    log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    let full = || {
        (
            StatusCode::from_u16(object.status).unwrap_or(StatusCode::OK),
            object.body.clone(),
            None,
        )
    };
    let ok = (200..300).contains(&object.status);
    if !ok || !asks_conditionally(req.headers()) {
        // The common hit: nothing to evaluate.
        let (status, body, range) = full();
        return respond(object, req, cache_status, cluster, log, status, body, range);
    }
    let validators = Validators::of_response(
        object.header("etag").map(HeaderValue::as_bytes),
        object.header("last-modified").map(HeaderValue::as_bytes),
    );
    let (status, body, content_range) = match ok.then(|| conditional::evaluate(req.headers(), &validators)) {
        Some(Precondition::NotModified) => (StatusCode::NOT_MODIFIED, bytes::Bytes::new(), None),
        Some(Precondition::Failed) => (StatusCode::PRECONDITION_FAILED, bytes::Bytes::new(), None),
        _ => ranged(object, req, &validators),
    };
    respond(
        object,
        req,
        cache_status,
        cluster,
        log,
        status,
        body,
        content_range,
    )
}

/// Whether a request carries conditionals or a range the object must be checked against.
fn asks_conditionally(headers: &HeaderMap) -> bool {
    Rewrite::REPLACED.iter().any(|name| headers.contains_key(name))
}

#[allow(clippy::too_many_arguments)]
fn respond(
    object: &Object,
    req: &HttpRequest,
    cache_status: &str,
    cluster: &Arc<ClusterHandle>,
    mut log: Option<Box<AccessRecord>>,
    status: StatusCode,
    body: bytes::Bytes,
    content_range: Option<String>,
) -> HttpResponse<RelayBody> {
    record_status(cluster, None, status.as_u16());
    if let Some(l) = log.as_mut() {
        l.set_status(status.as_u16());
    }
    let mut response = HttpResponse::with_body(status, RelayBody::cached(body, cluster.clone(), log));
    // A full answer to an HTTP/1 client (the common hit) writes the object's fields as it
    // rendered them when stored; the others pick fields from them.
    let full = content_range.is_none()
        && !matches!(status, StatusCode::NOT_MODIFIED | StatusCode::PRECONDITION_FAILED);
    let age = object.age(Instant::now()).as_secs();
    let settings = cluster.settings.load();
    if full && req.version() < Version::HTTP_2 {
        // The fields this answer adds go into the lines too: copying the object's lines
        // once costs less than three header-map inserts.
        let lines = answer_lines(object.lines(), age, &settings.via, cache_status);
        response.head_mut().set_raw_headers(lines.bytes, lines.has_date);
        return response;
    }
    let headers = response.headers_mut();
    headers.reserve(object.headers.len() + 4);
    for (name, value) in &object.headers {
        let skip = match status {
            StatusCode::NOT_MODIFIED => not_in_304(name.as_str()),
            StatusCode::PRECONDITION_FAILED => true,
            _ => name.as_str() == "content-range",
        };
        if !skip {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(range) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        headers.insert(ax::CONTENT_RANGE, range);
    }
    headers.insert(ax::AGE, HeaderValue::from(age));
    if let Ok(via) = HeaderValue::from_maybe_shared(settings.via.clone()) {
        headers.insert(ax::VIA, via);
    }
    if cache_status == HIT {
        headers.insert(CACHE_STATUS, HeaderValue::from_static(HIT));
    } else {
        set_status(headers, cache_status);
    }
    response
}

/// The body to send for a GET: a single satisfiable range as 206, an unsatisfiable one as 416,
/// else the whole object.
fn ranged(
    object: &Object,
    req: &HttpRequest,
    validators: &Validators,
) -> (StatusCode, bytes::Bytes, Option<String>) {
    let full = (
        StatusCode::from_u16(object.status).unwrap_or(StatusCode::OK),
        object.body.clone(),
        None,
    );
    let Some(range) = req.headers().get(ax::RANGE) else {
        return full;
    };
    if object.status != 200
        || *req.method() != Method::GET
        || !conditional::if_range_holds(req.headers(), validators)
    {
        return full;
    }
    let size = object.body.len() as u64;
    match ranges::resolve(range.as_bytes(), size) {
        RangeRequest::Satisfiable(r) if r.len() == 1 => {
            let (first, last) = (r[0].first as usize, r[0].last as usize);
            (
                StatusCode::PARTIAL_CONTENT,
                object.body.slice(first..=last),
                Some(r[0].content_range(size)),
            )
        }
        RangeRequest::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            bytes::Bytes::new(),
            Some(ranges::unsatisfied_content_range(size)),
        ),
        // Several ranges: the whole object is a valid answer too.
        _ => full,
    }
}

/// A `PURGE` request on the proxy listener: `None` when the cluster's cache does not take
/// them (the request is forwarded like any other).
pub fn purge_method(
    cluster: &Arc<ClusterHandle>,
    req: &HttpRequest,
    host: Option<&str>,
    path: &str,
) -> Option<(StatusCode, String)> {
    let cache = cluster.cache.load_full()?;
    let config = &cache.config;
    if !config.purge_method.enabled {
        return None;
    }
    let allowed = req.peer_addr().is_some_and(|peer| {
        config
            .purge_method
            .allow
            .iter()
            .any(|net| net.contains(peer.ip()))
    });
    if !allowed {
        return Some((
            StatusCode::FORBIDDEN,
            "purging is not allowed from this address\n".into(),
        ));
    }
    let key = KeyText::new(&config.key, "GET", host, path, req.query_string()).into_key();
    let n = cache.purge(&Purge::Key(key.text));
    Some((StatusCode::OK, format!("{{\"purged\":{n}}}\n")))
}
