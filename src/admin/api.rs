//! The JSON API under `/api/v1` (control plane): state and stats of clusters, buckets and
//! backends; runtime changes; reload; status.
//!
//! A change is a typed [`ChangeCluster`] (or [`Reload`]) message to the Director actor, which
//! validates the whole resulting configuration before anything changes; the answer is the new
//! state, read from the cluster actor afterwards (its mailbox runs the change first). Bad
//! input — malformed JSON, unknown fields, bad values, unknown names, conflicts — is a 4xx with
//! `{"error", "detail"}` and changes nothing.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::api_support::{invalid_config, object, refusal, state_of};
use super::error::ApiError;
use super::AdminState;
use crate::cluster::cluster_state::ClusterState;
use crate::cluster::director_actor::{ChangeCluster, Reload};
use crate::config::edit::ClusterEdit;

type Data = web::Data<AdminState>;
type ApiResult = Result<HttpResponse, ApiError>;

/// Registers the API routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/status", web::get().to(status))
            .route("/reload", web::post().to(reload))
            .route("/clusters", web::get().to(clusters))
            .route("/clusters/{c}", web::get().to(cluster))
            .route("/clusters/{c}", web::patch().to(patch_cluster))
            .route("/clusters/{c}/backends", web::get().to(backends))
            .route("/clusters/{c}/backends", web::post().to(add_backend))
            .route("/clusters/{c}/backends/{b}", web::get().to(backend))
            .route("/clusters/{c}/backends/{b}", web::patch().to(patch_backend))
            .route("/clusters/{c}/backends/{b}", web::delete().to(remove_backend))
            .route("/clusters/{c}/buckets", web::get().to(buckets))
            .route("/clusters/{c}/buckets", web::post().to(add_bucket))
            .route("/clusters/{c}/buckets/{n}", web::get().to(bucket))
            .route("/clusters/{c}/buckets/{n}", web::patch().to(patch_bucket))
            .route("/clusters/{c}/buckets/{n}", web::delete().to(remove_bucket))
            .configure(super::topology_api::routes)
            .configure(super::cache_api::routes)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::not_found("no such endpoint"))
            })),
    );
}

async fn status(data: Data) -> ApiResult {
    let status = data.status.load();
    Ok(HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": data.started.elapsed().as_secs_f64(),
        "generation": status.generation,
        "config_path": status.config_path,
        "state_file": status.state_file,
        "state_file_error": status.state_file_error,
        "last_reload": status.last_reload,
        "cluster_state": data.replication.as_ref().map(|r| {
            let shared = r.status.load();
            let mut view = json!(**shared);
            view["summary"] = json!(shared.summary());
            view["apply_error"] = json!(status.shared_state_error);
            view
        }),
        "discovery": status.discovery,
        "tls": crate::listener::tls::status(&data.tls),
    })))
}

async fn reload(data: Data) -> ApiResult {
    match data.director.send(Reload { trigger: "api" }).await {
        Ok(Ok(generation)) => Ok(HttpResponse::Ok().json(json!({ "ok": true, "generation": generation }))),
        Ok(Err(errors)) => Err(invalid_config(StatusCode::UNPROCESSABLE_ENTITY, errors)),
        Err(_) => Err(ApiError::internal("the director actor is not running")),
    }
}

async fn clusters(data: Data) -> ApiResult {
    Ok(HttpResponse::Ok().json(data.cluster_states().await))
}

async fn cluster(data: Data, path: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state_of(&data, &path).await?))
}

async fn patch_cluster(data: Data, path: web::Path<String>, body: web::Bytes) -> ApiResult {
    let patch = object(&body)?;
    change(&data, &path, ClusterEdit::Patch(patch)).await?;
    Ok(HttpResponse::Ok().json(state_of(&data, &path).await?))
}

async fn backends(data: Data, path: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state_of(&data, &path).await?.backends))
}

async fn backend(data: Data, path: web::Path<(String, String)>) -> ApiResult {
    let (c, b) = path.into_inner();
    Ok(HttpResponse::Ok().json(backend_of(&state_of(&data, &c).await?, &b)?))
}

async fn add_backend(data: Data, path: web::Path<String>, body: web::Bytes) -> ApiResult {
    let backend = Value::Object(object(&body)?);
    let name = backend
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    change(&data, &path, ClusterEdit::AddBackend(backend)).await?;
    let state = state_of(&data, &path).await?;
    Ok(HttpResponse::Created().json(backend_of(&state, &name)?))
}

async fn patch_backend(data: Data, path: web::Path<(String, String)>, body: web::Bytes) -> ApiResult {
    let (c, b) = path.into_inner();
    let patch = object(&body)?;
    // Setting `enabled` applies also when the configuration already said so: an operator
    // re-enabling a backend that sticky offline mode disabled.
    change(&data, &c, ClusterEdit::PatchBackend(b.clone(), patch)).await?;
    Ok(HttpResponse::Ok().json(backend_of(&state_of(&data, &c).await?, &b)?))
}

async fn remove_backend(data: Data, path: web::Path<(String, String)>) -> ApiResult {
    let (c, b) = path.into_inner();
    change(&data, &c, ClusterEdit::RemoveBackend(b.clone())).await?;
    // The answer shows it draining (or gone already when nothing was in flight).
    let state = state_of(&data, &c).await?;
    match backend_of(&state, &b) {
        Ok(draining) => Ok(HttpResponse::Ok().json(draining)),
        Err(_) => Ok(HttpResponse::Ok().json(json!({ "name": b, "removed": true }))),
    }
}

async fn buckets(data: Data, path: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state_of(&data, &path).await?.buckets))
}

async fn bucket(data: Data, path: web::Path<(String, String)>) -> ApiResult {
    let (c, n) = path.into_inner();
    Ok(HttpResponse::Ok().json(bucket_of(&state_of(&data, &c).await?, &n)?))
}

async fn add_bucket(data: Data, path: web::Path<String>, body: web::Bytes) -> ApiResult {
    let mut bucket = object(&body)?;
    let parent = match bucket.remove("parent") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_value",
                "`parent` must be a bucket name",
            ))
        }
    };
    let name = bucket
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    change(
        &data,
        &path,
        ClusterEdit::AddBucket(parent, Value::Object(bucket)),
    )
    .await?;
    let state = state_of(&data, &path).await?;
    Ok(HttpResponse::Created().json(bucket_of(&state, &name)?))
}

async fn patch_bucket(data: Data, path: web::Path<(String, String)>, body: web::Bytes) -> ApiResult {
    let (c, n) = path.into_inner();
    let patch = object(&body)?;
    change(&data, &c, ClusterEdit::PatchBucket(n.clone(), patch)).await?;
    Ok(HttpResponse::Ok().json(bucket_of(&state_of(&data, &c).await?, &n)?))
}

async fn remove_bucket(data: Data, path: web::Path<(String, String)>) -> ApiResult {
    let (c, n) = path.into_inner();
    change(&data, &c, ClusterEdit::RemoveBucket(n.clone())).await?;
    Ok(HttpResponse::Ok().json(json!({ "name": n, "removed": true })))
}

/// Sends one change to the Director actor; its refusals become 4xx answers.
async fn change(data: &AdminState, cluster: &str, edit: ClusterEdit) -> Result<u64, ApiError> {
    let msg = ChangeCluster {
        cluster: cluster.to_owned(),
        edit,
    };
    refusal(data.director.send(msg).await)
}

/// Backend `name` of `state`, or the `discover:` entry of that name (its status: what it
/// asks, its records and the backends they stand for).
fn backend_of(state: &ClusterState, name: &str) -> Result<Value, ApiError> {
    // A name may appear twice while a replaced backend drains: the live one comes first.
    let backend = state
        .backends
        .iter()
        .filter(|b| b.status.name == name)
        .min_by_key(|b| b.status.draining);
    let json = match (backend, state.discovery.iter().find(|d| d.entry == name)) {
        (Some(backend), _) => serde_json::to_value(backend),
        (None, Some(entry)) => serde_json::to_value(entry),
        (None, None) => {
            let detail = format!("no backend `{name}` in cluster `{}`", state.name);
            return Err(ApiError::not_found(detail));
        }
    };
    json.map_err(|e| ApiError::internal(e.to_string()))
}

fn bucket_of(state: &ClusterState, name: &str) -> Result<Value, ApiError> {
    let bucket = state
        .buckets
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no bucket `{name}` in cluster `{}`", state.name)))?;
    serde_json::to_value(bucket).map_err(|e| ApiError::internal(e.to_string()))
}
