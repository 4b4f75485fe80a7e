//! The objects of one cluster cache, bounded by `max_memory`: a `quick_cache` map from primary
//! key to the key's variants (by `Vary`), each entry weighed as its key plus its objects.
//!
//! Why `quick_cache`: a sharded, weight-aware map whose S3-FIFO eviction keeps one-hit wonders
//! from flushing popular objects, with no background threads and a read path of one shard
//! read-lock and an `Arc` clone; moka offers more (TTL, listeners) that the cache does not
//! need, at a higher per-hit cost. The total weight never exceeds the capacity, so
//! `max_memory` holds for everything counted (keys, headers, bodies, per-object overhead).
//!
//! Hot path for lookups; inserts and purges happen on fills and admin requests.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::key::PrimaryKey;
use super::object::Object;

/// A key's variants, oldest first.
#[derive(Debug)]
pub struct Entry {
    pub key: PrimaryKey,
    pub variants: Box<[Arc<Object>]>,
}

impl Entry {
    fn weight(&self) -> u64 {
        let objects: usize = self.variants.iter().map(|o| o.size()).sum();
        (self.key.text.len() * 2 + objects) as u64
    }
}

#[derive(Clone)]
struct EntryWeight;

impl Weighter<Arc<str>, Arc<Entry>> for EntryWeight {
    fn weight(&self, _key: &Arc<str>, entry: &Arc<Entry>) -> u64 {
        entry.weight()
    }
}

/// Counts evictions (objects, not entries).
#[derive(Clone)]
struct Evictions(Arc<AtomicU64>);

impl Lifecycle<Arc<str>, Arc<Entry>> for Evictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _: &mut Self::RequestState, _key: Arc<str>, entry: Arc<Entry>) {
        self.0.fetch_add(entry.variants.len() as u64, Relaxed);
    }
}

/// What a purge removes (serialisable: replicas sharing runtime state pass purges on).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purge {
    All,
    /// One primary key (every variant).
    Key(Box<str>),
    /// Keys whose path starts with `prefix`, for `host` (normalised) or any host.
    Prefix {
        host: Option<String>,
        prefix: String,
    },
    /// Objects tagged `tag` by `Surrogate-Key` or `Cache-Tag`.
    Tag(String),
}

/// The bounded object map.
pub struct Store {
    map: Cache<Arc<str>, Arc<Entry>, EntryWeight, DefaultHashBuilder, Evictions>,
    max_memory: u64,
    max_variants: usize,
    evictions: Arc<AtomicU64>,
}

impl Store {
    /// A store of at most `max_memory` bytes for objects of at most `max_object_size`.
    pub fn new(max_memory: u64, max_object_size: u64, max_variants: usize) -> Store {
        // A shard holds max_memory / shards: never less than one largest object.
        let fit = (max_memory / max_object_size.max(1)).clamp(1, 64);
        let shards = 1usize << (63 - fit.leading_zeros()); // the largest power of two <= fit
        let options = OptionsBuilder::new()
            .estimated_items_capacity(((max_memory / 4096).max(16)) as usize)
            .weight_capacity(max_memory)
            .shards(shards)
            .build()
            .expect("valid cache options");
        let evictions = Arc::new(AtomicU64::new(0));
        let map = Cache::with_options(
            options,
            EntryWeight,
            DefaultHashBuilder::default(),
            Evictions(evictions.clone()),
        );
        Store {
            map,
            max_memory,
            max_variants: max_variants.max(1),
            evictions,
        }
    }

    /// The variant of `key` stored for requests like `request`.
    pub fn lookup(&self, key: &str, request: &HeaderMap) -> Option<Arc<Object>> {
        let entry = self.map.get(key)?;
        entry.variants.iter().rev().find(|o| o.matches(request)).cloned()
    }

    /// Stores `object` under `key`, replacing the variant it matches; variants that vary on
    /// other fields (the backend changed its `Vary`) and the oldest beyond `max_variants` go.
    pub fn insert(&self, key: PrimaryKey, object: Arc<Object>) {
        let mut variants: Vec<Arc<Object>> = match self.map.get(&*key.text) {
            Some(entry) => entry
                .variants
                .iter()
                .filter(|o| o.same_vary_names(&object) && !o.same_variant(&object))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        variants.push(object);
        if variants.len() > self.max_variants {
            let surplus = variants.len() - self.max_variants;
            variants.drain(..surplus);
            self.evictions.fetch_add(surplus as u64, Relaxed);
        }
        let text: Arc<str> = key.text.clone().into();
        let entry = Arc::new(Entry {
            key,
            variants: variants.into_boxed_slice(),
        });
        self.map.insert(text, entry);
    }

    /// Replaces `old` (a variant of `key`) with `new` if it is still stored.
    pub fn replace(&self, key: &PrimaryKey, old: &Arc<Object>, new: Arc<Object>) {
        let Some(entry) = self.map.get(&*key.text) else {
            return;
        };
        if !entry.variants.iter().any(|o| Arc::ptr_eq(o, old)) {
            return;
        }
        self.insert(key.clone(), new);
    }

    /// Removes what `purge` names; returns the number of objects removed.
    pub fn purge(&self, purge: &Purge) -> u64 {
        match purge {
            Purge::All => {
                let n = self.map.iter().map(|(_, e)| e.variants.len() as u64).sum();
                self.map.clear();
                n
            }
            Purge::Key(key) => self
                .map
                .remove(&**key)
                .map_or(0, |(_, e)| e.variants.len() as u64),
            Purge::Prefix { host, prefix } => self.remove_where(|e| {
                e.key.path().starts_with(prefix.as_str()) && host.as_deref().is_none_or(|h| e.key.host() == h)
            }),
            Purge::Tag(tag) => {
                self.remove_where(|e| e.variants.iter().any(|o| o.tags.iter().any(|t| &**t == tag)))
            }
        }
    }

    fn remove_where(&self, matches: impl Fn(&Entry) -> bool) -> u64 {
        let removed = AtomicU64::new(0);
        self.map.retain(|_, e| {
            let hit = matches(e);
            if hit {
                removed.fetch_add(e.variants.len() as u64, Relaxed);
            }
            !hit
        });
        removed.into_inner()
    }

    /// Keys stored.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes stored (the weight of every entry).
    pub fn bytes(&self) -> u64 {
        self.map.weight()
    }

    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    /// Objects evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }
}
