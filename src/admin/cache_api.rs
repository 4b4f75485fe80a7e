//! The cache endpoints of the JSON API (control plane, token-protected like the rest):
//! - `GET /api/v1/cache`: every cluster's cache counters and their total;
//! - `GET /api/v1/clusters/{c}/cache`: one cluster's;
//! - `POST /api/v1/clusters/{c}/cache/purge` with one of `{"all": true}`,
//!   `{"url": "http://host/path?query"}` (or `{"url": "/path?query", "host": "h"}`),
//!   `{"prefix": "/static/", "host": "h"?}`, `{"tag": "t"}`: `{"purged": N}` objects;
//! - `DELETE /api/v1/clusters/{c}/cache`: purge everything.
//!
//! With `cluster_state` configured, a purge is passed on to the other replicas (the answer
//! then says `"shared": true`, or `false` while etcd is unreachable and the purge stays here).
//!
//! Settings change through `PATCH /api/v1/clusters/{c}` with `cache: {...}`, like every other
//! cluster setting.

use std::collections::BTreeMap;

use actix_web::http::Uri;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::AdminState;
use crate::cache::key::{normal_host, KeyText};
use crate::cache::{CacheSnapshot, Purge};
use crate::cluster::ClusterHandle;
use crate::proto::path;
use crate::replicas::sync_actor::PublishPurge;

type Data = web::Data<AdminState>;
type ApiResult = Result<HttpResponse, ApiError>;

/// Registers the cache routes (inside the `/api/v1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cache", web::get().to(all))
        .route("/clusters/{c}/cache", web::get().to(one))
        .route("/clusters/{c}/cache", web::delete().to(purge_all))
        .route("/clusters/{c}/cache/purge", web::post().to(purge));
}

/// A cluster's cache counters, with `enabled: false` while it is off.
pub fn snapshot_of(cluster: &ClusterHandle) -> CacheSnapshot {
    cluster.cache_snapshot().unwrap_or_default()
}

async fn all(data: Data) -> ApiResult {
    let clusters: BTreeMap<String, CacheSnapshot> = data
        .clusters()
        .iter()
        .map(|c| (c.name.clone(), snapshot_of(c)))
        .collect();
    let total = CacheSnapshot::sum(clusters.values());
    Ok(HttpResponse::Ok().json(json!({ "total": total, "clusters": clusters })))
}

fn cluster_of(data: &AdminState, name: &str) -> Result<std::sync::Arc<ClusterHandle>, ApiError> {
    data.cluster(name)
        .ok_or_else(|| ApiError::not_found(format!("no cluster `{name}`")))
}

async fn one(data: Data, path: web::Path<String>) -> ApiResult {
    let cluster = cluster_of(&data, &path)?;
    Ok(HttpResponse::Ok().json(snapshot_of(&cluster)))
}

async fn purge_all(data: Data, path: web::Path<String>) -> ApiResult {
    purged(&data, &path, Purge::All)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    all: Option<bool>,
    url: Option<String>,
    prefix: Option<String>,
    host: Option<String>,
    tag: Option<String>,
}

async fn purge(data: Data, path: web::Path<String>, body: web::Bytes) -> ApiResult {
    let request: PurgeRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let cluster = cluster_of(&data, &path)?;
    let Some(cache) = cluster.cache.load_full() else {
        return Err(ApiError::conflict(format!(
            "cluster `{}` has no cache enabled",
            cluster.name
        )));
    };
    let invalid = |m: &str| ApiError::bad_request("invalid_value", m.to_owned());
    let purge = match (request.all, request.url, request.prefix, request.tag) {
        (Some(true), None, None, None) => Purge::All,
        (None, Some(url), None, None) => {
            let uri: Uri = url.parse().map_err(|_| invalid("`url` is not a URL"))?;
            let host = uri.authority().map(|a| a.as_str().to_owned()).or(request.host);
            let normal = path::normalize(uri.path()).map_err(|_| invalid("`url` has a bad path"))?;
            let key = KeyText::new(
                &cache.config.key,
                "GET",
                host.as_deref(),
                &normal,
                uri.query().unwrap_or(""),
            );
            Purge::Key(key.as_str().into())
        }
        (None, None, Some(prefix), None) if prefix.starts_with('/') => Purge::Prefix {
            host: request.host.as_deref().map(normal_host),
            prefix,
        },
        (None, None, None, Some(tag)) if !tag.trim().is_empty() => Purge::Tag(tag.trim().to_owned()),
        _ => {
            return Err(invalid(
                "give exactly one of `all: true`, `url`, `prefix` (starting with /) or `tag`",
            ))
        }
    };
    purged(&data, &cluster.name, purge)
}

fn purged(data: &AdminState, name: &str, purge: Purge) -> ApiResult {
    let cluster = cluster_of(data, name)?;
    let Some(cache) = cluster.cache.load_full() else {
        return Err(ApiError::conflict(format!(
            "cluster `{name}` has no cache enabled"
        )));
    };
    let n = cache.purge(&purge);
    log::info!("cluster '{name}': cache purge {purge:?} removed {n} object(s)");
    let Some(replication) = &data.replication else {
        return Ok(HttpResponse::Ok().json(json!({ "purged": n })));
    };
    // The other replicas purge too; `shared` says whether etcd could be told.
    let shared = replication.status.load().connected;
    replication.sync.do_send(PublishPurge {
        cluster: name.to_owned(),
        purge,
    });
    Ok(HttpResponse::Ok().json(json!({ "purged": n, "shared": shared })))
}
