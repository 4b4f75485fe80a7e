//! Copying a response into the cache while it streams to the client.
//!
//! Hot path on misses only. Each piece of the backend's body is copied into an owned buffer
//! (never a slice of the connection's read buffer, which would pin the whole buffer and make
//! `max_memory` a lie), sized once from `Content-Length` when the backend announced it. A body
//! that grows past `max_object_size` abandons the fill at once and streams on unstored; a cut
//! or aborted response stores nothing. Dropping the fill releases the key's fill lock, which
//! wakes the requests waiting for it.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::HeaderMap;
use bytes::Bytes;

use super::object::Object;
use super::policy::Freshness;
use super::{CacheStats, ClusterCache, FillGuard, PrimaryKey};

/// A response on its way into the cache.
pub struct Fill {
    cache: Arc<ClusterCache>,
    key: PrimaryKey,
    status: u16,
    response: HeaderMap,
    /// The request's headers, for the `Vary` values.
    request: HeaderMap,
    freshness: Freshness,
    body: Vec<u8>,
    /// The announced length, when there was one.
    expected: Option<usize>,
    limit: usize,
    _lock: Option<FillGuard>,
    done: bool,
}

impl Fill {
    /// Starts filling `key` with a response of `status` and `response` headers; `length` is
    /// the announced body length. `None` when the announced length is already too large.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        cache: Arc<ClusterCache>,
        key: PrimaryKey,
        status: u16,
        response: HeaderMap,
        request: HeaderMap,
        freshness: Freshness,
        length: Option<u64>,
        lock: Option<FillGuard>,
    ) -> Option<Fill> {
        let limit = usize::try_from(cache.config.max_object_size).unwrap_or(usize::MAX);
        if length.is_some_and(|n| n > limit as u64) {
            CacheStats::count(&cache.stats.abandoned);
            return None;
        }
        let capacity = length.map_or(0, |n| n as usize);
        Some(Fill {
            cache,
            key,
            status,
            response,
            request,
            freshness,
            body: Vec::with_capacity(capacity),
            expected: length.map(|n| n as usize),
            limit,
            _lock: lock,
            done: false,
        })
    }

    /// Copies the next piece; `false` when the object became too large (drop the fill).
    pub fn push(&mut self, data: &[u8]) -> bool {
        if self.body.len() + data.len() > self.limit {
            return false;
        }
        self.body.extend_from_slice(data);
        true
    }

    /// Whether the announced length has arrived: the object can be stored before the client
    /// has the last piece, so a request right after it finds the object.
    pub fn is_whole(&self) -> bool {
        self.expected == Some(self.body.len())
    }

    /// The body ended cleanly: store the object.
    pub fn complete(mut self) {
        self.done = true;
        let mut body = std::mem::take(&mut self.body);
        body.shrink_to_fit();
        let object = Object::new(
            self.status,
            &self.response,
            Bytes::from(body),
            &self.request,
            self.freshness,
            Instant::now(),
        );
        CacheStats::count(&self.cache.stats.stores);
        self.cache.store.insert(self.key.clone(), Arc::new(object));
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if !self.done {
            CacheStats::count(&self.cache.stats.abandoned);
        }
    }
}
