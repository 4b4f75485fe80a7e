//! A cluster's (or a single-backend route's) `cache:` section in `config.yaml` (control
//! plane); a child of `load`.
//!
//! Rules: absent or `null` = disabled with every default; a map checks each key:
//! - `enabled` (false); `max_memory` (256MiB) and `max_object_size` (8MiB) are sizes (whole
//!   bytes or `KiB`/`MiB`/`GiB`/`KB`/`MB`/`GB`), `max_memory` at least 1MiB and
//!   `max_object_size` at most `max_memory`;
//! - `default_ttl` (0s), `stale_if_error` (5m), `stale_while_revalidate` (30s) are durations
//!   (0 allowed); `lock_timeout` (5s) is greater than 0;
//! - `update`: `locked` (default) or `shadowed`; `max_variants` (16) at least 1;
//! - `stale_on_status`: distinct status codes in 500..=599;
//! - `key`: `{ method: false, host: true, query: full | sorted | ignore }`;
//! - `ignore_client_no_cache` (false);
//! - `purge_method`: `{ enabled: false, allow: [NETWORK, ...] }`, networks as `10.0.0.0/8`,
//!   `::1/128` or bare addresses; enabled needs at least one.

use serde::Deserialize;
use serde_json::Value;

use super::super::duration::DurationValue;
use super::super::model::{CacheConfig, CacheKeyConfig, CacheQuery, CacheUpdate, IpNet, PurgeMethodConfig};
use super::super::size::SizeValue;
use super::{index_path, key_path, kind, Loader};

const CACHE_KEYS: &[&str] = &[
    "enabled",
    "max_memory",
    "max_object_size",
    "default_ttl",
    "update",
    "lock_timeout",
    "stale_if_error",
    "stale_while_revalidate",
    "stale_on_status",
    "max_variants",
    "key",
    "ignore_client_no_cache",
    "purge_method",
];
const KEY_KEYS: &[&str] = &["method", "host", "query"];
const PURGE_KEYS: &[&str] = &["enabled", "allow"];

const UPDATES: &[(&str, CacheUpdate)] = &[
    ("locked", CacheUpdate::Locked),
    ("shadowed", CacheUpdate::Shadowed),
];
const QUERIES: &[(&str, CacheQuery)] = &[
    ("full", CacheQuery::Full),
    ("sorted", CacheQuery::Sorted),
    ("ignore", CacheQuery::Ignore),
];

/// The smallest `max_memory`: below it the per-object overhead dominates.
const MIN_MAX_MEMORY: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    enabled: Option<bool>,
    max_memory: Option<SizeValue>,
    max_object_size: Option<SizeValue>,
    default_ttl: Option<DurationValue>,
    update: Option<String>,
    lock_timeout: Option<DurationValue>,
    stale_if_error: Option<DurationValue>,
    stale_while_revalidate: Option<DurationValue>,
    stale_on_status: Option<Vec<u16>>,
    max_variants: Option<usize>,
    ignore_client_no_cache: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    method: Option<bool>,
    host: Option<bool>,
    query: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurge {
    enabled: Option<bool>,
    /// A list of networks; checked element by element.
    allow: Option<Value>,
}

impl Loader<'_> {
    /// `cache:`; absent or `null` gives the defaults (disabled).
    pub(super) fn cache(&mut self, value: Option<Value>, path: &str) -> Option<CacheConfig> {
        let mut value = match value {
            None | Some(Value::Null) => return Some(CacheConfig::default()),
            Some(value) => value,
        };
        let mut take = |k: &str| value.as_object_mut().and_then(|map| map.remove(k));
        let (key, purge) = (take("key"), take("purge_method"));
        let raw: RawCache = self.piece(Some(value), path, CACHE_KEYS, "a cache section")?;
        let key = self.cache_key(key, &key_path(path, "key"));
        let purge = self.purge_method(purge, &key_path(path, "purge_method"));
        let d = CacheConfig::default();
        let max_memory = raw.max_memory.map_or(d.max_memory, |s| s.0);
        if max_memory < MIN_MAX_MEMORY {
            self.error(key_path(path, "max_memory"), "must be at least 1MiB");
        }
        let max_object_size = raw.max_object_size.map_or(d.max_object_size, |s| s.0);
        if max_object_size > max_memory {
            self.error(key_path(path, "max_object_size"), "must not exceed max_memory");
        }
        let update = self.choice(
            key_path(path, "update"),
            raw.update,
            d.update,
            UPDATES,
            "update mode",
        );
        let lock_timeout = self.positive(key_path(path, "lock_timeout"), raw.lock_timeout, d.lock_timeout);
        let stale_on_status = raw.stale_on_status.unwrap_or_default();
        let mut seen = Vec::new();
        for (i, status) in stale_on_status.iter().enumerate() {
            if !(500..=599).contains(status) || seen.contains(status) {
                let at = index_path(&key_path(path, "stale_on_status"), i);
                self.error(at, format!("{status}: list distinct status codes in 500..=599"));
            }
            seen.push(*status);
        }
        let max_variants = raw.max_variants.unwrap_or(d.max_variants);
        if max_variants == 0 {
            self.error(key_path(path, "max_variants"), "must be at least 1");
        }
        let duration = |v: Option<DurationValue>, default| v.map_or(default, |d| d.0);
        if self.has_error_under(path) {
            return None;
        }
        Some(CacheConfig {
            enabled: raw.enabled.unwrap_or(false),
            max_memory,
            max_object_size,
            default_ttl: duration(raw.default_ttl, d.default_ttl),
            update: update?,
            lock_timeout,
            stale_if_error: duration(raw.stale_if_error, d.stale_if_error),
            stale_while_revalidate: duration(raw.stale_while_revalidate, d.stale_while_revalidate),
            stale_on_status,
            max_variants,
            key: key?,
            ignore_client_no_cache: raw.ignore_client_no_cache.unwrap_or(false),
            purge_method: purge?,
        })
    }

    fn cache_key(&mut self, value: Option<Value>, path: &str) -> Option<CacheKeyConfig> {
        let raw: RawKey = self.piece(value, path, KEY_KEYS, "`{ method, host, query }`")?;
        let d = CacheKeyConfig::default();
        let query = self.choice(key_path(path, "query"), raw.query, d.query, QUERIES, "query mode");
        Some(CacheKeyConfig {
            method: raw.method.unwrap_or(d.method),
            host: raw.host.unwrap_or(d.host),
            query: query?,
        })
    }

    fn purge_method(&mut self, value: Option<Value>, path: &str) -> Option<PurgeMethodConfig> {
        let raw: RawPurge = self.piece(value, path, PURGE_KEYS, "`{ enabled, allow }`")?;
        let allow_path = key_path(path, "allow");
        let items = match raw.allow {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                let found = kind(&other);
                self.error(allow_path, format!("expected a list of networks, found {found}"));
                return None;
            }
        };
        let mut allow = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.into_iter().enumerate() {
            let parsed = match &item {
                Value::String(s) => IpNet::parse(s),
                other => Err(format!("expected a network string, found {}", kind(other))),
            };
            match parsed {
                Ok(net) => allow.iter_mut().for_each(|a| a.push(net)),
                Err(message) => {
                    self.error(index_path(&allow_path, i), message);
                    allow = None;
                }
            }
        }
        let allow = allow?;
        let enabled = raw.enabled.unwrap_or(false);
        if enabled && allow.is_empty() {
            self.error(allow_path, "list the client networks allowed to purge");
            return None;
        }
        Some(PurgeMethodConfig { enabled, allow })
    }
}
