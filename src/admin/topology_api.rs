//! The JSON API's cluster lifecycle and route list (control plane, token-protected like the
//! rest of `/api/v1`):
//! - `POST /api/v1/clusters` with `{"name": "...", ...settings}` creates a cluster (201, its
//!   state); `DELETE /api/v1/clusters/{c}` deletes one no route points at (409 otherwise); its
//!   backends drain;
//! - `GET /api/v1/routes`: the route list in match order, each route with its `index`;
//! - `POST /api/v1/routes` with a route (and optionally `"index": n` to insert it there
//!   instead of at the end): 201, the route with its index;
//! - `PATCH /api/v1/routes/{i}`: set keys of route `i` (`null` removes one); setting
//!   `cluster` drops `backend` and the other way round;
//! - `DELETE /api/v1/routes/{i}`;
//! - `POST /api/v1/routes/{i}/move` with `{"to": j}`: route `i` ends up at index `j` (the
//!   others keep their order); the answer is the whole new list.
//!
//! Each is a [`ChangeTopology`] message: validated like `config.yaml` (a route to an unknown
//! cluster, a bad prefix: 400 with the loader's path and message), persisted in the state file,
//! and refused with `{"error", "detail"}` without changing anything.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::api_support::{object, refusal, state_of};
use super::error::ApiError;
use super::AdminState;
use crate::cluster::director_actor::{ChangeTopology, GetRoutes};
use crate::config::topology_edit::TopologyEdit;

type Data = web::Data<AdminState>;
type ApiResult = Result<HttpResponse, ApiError>;

/// Registers the cluster lifecycle and route routes (inside the `/api/v1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/clusters", web::post().to(create_cluster))
        .route("/clusters/{c}", web::delete().to(delete_cluster))
        .route("/routes", web::get().to(list_routes))
        .route("/routes", web::post().to(add_route))
        .route("/routes/{i}", web::get().to(route))
        .route("/routes/{i}", web::patch().to(patch_route))
        .route("/routes/{i}", web::delete().to(delete_route))
        .route("/routes/{i}/move", web::post().to(move_route));
}

async fn create_cluster(data: Data, body: web::Bytes) -> ApiResult {
    let mut settings = object(&body)?;
    let name = match settings.remove("name") {
        Some(Value::String(name)) if !name.is_empty() => name,
        Some(Value::String(_)) | None => {
            return Err(ApiError::bad_request("invalid_value", "`name` is required"))
        }
        Some(_) => return Err(ApiError::bad_request("invalid_value", "`name` must be a string")),
    };
    change(&data, TopologyEdit::CreateCluster(name.clone(), settings)).await?;
    Ok(HttpResponse::Created().json(state_of(&data, &name).await?))
}

async fn delete_cluster(data: Data, path: web::Path<String>) -> ApiResult {
    let name = path.into_inner();
    change(&data, TopologyEdit::DeleteCluster(name.clone())).await?;
    Ok(HttpResponse::Ok().json(json!({ "name": name, "removed": true })))
}

async fn list_routes(data: Data) -> ApiResult {
    Ok(HttpResponse::Ok().json(indexed(routes_in_force(&data).await?)))
}

async fn route(data: Data, path: web::Path<String>) -> ApiResult {
    let index = index_of(&path)?;
    Ok(HttpResponse::Ok().json(route_at(&data, index).await?))
}

async fn add_route(data: Data, body: web::Bytes) -> ApiResult {
    let mut route = object(&body)?;
    let index = match route.remove("index") {
        None | Some(Value::Null) => None,
        Some(n) => Some(n.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_value", "`index` must be a non-negative integer")
        })?),
    };
    change(&data, TopologyEdit::AddRoute(index, Value::Object(route))).await?;
    let index = match index {
        Some(index) => index,
        None => routes_in_force(&data).await?.len().saturating_sub(1),
    };
    Ok(HttpResponse::Created().json(route_at(&data, index).await?))
}

async fn patch_route(data: Data, path: web::Path<String>, body: web::Bytes) -> ApiResult {
    let index = index_of(&path)?;
    let patch = object(&body)?;
    if patch.contains_key("index") {
        return Err(ApiError::bad_request(
            "invalid_value",
            "`index` can't be patched; use POST /api/v1/routes/{i}/move",
        ));
    }
    change(&data, TopologyEdit::PatchRoute(index, patch)).await?;
    Ok(HttpResponse::Ok().json(route_at(&data, index).await?))
}

async fn delete_route(data: Data, path: web::Path<String>) -> ApiResult {
    let index = index_of(&path)?;
    change(&data, TopologyEdit::RemoveRoute(index)).await?;
    Ok(HttpResponse::Ok().json(json!({ "index": index, "removed": true })))
}

async fn move_route(data: Data, path: web::Path<String>, body: web::Bytes) -> ApiResult {
    let from = index_of(&path)?;
    let to = object(&body)?
        .get("to")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| ApiError::bad_request("invalid_value", "`to` (a non-negative integer) is required"))?;
    change(&data, TopologyEdit::MoveRoute { from, to }).await?;
    Ok(HttpResponse::Ok().json(indexed(routes_in_force(&data).await?)))
}

/// Sends one change to the Director actor; its refusals become 4xx answers.
async fn change(data: &AdminState, edit: TopologyEdit) -> Result<u64, ApiError> {
    refusal(data.director.send(ChangeTopology { edit }).await)
}

async fn routes_in_force(data: &AdminState) -> Result<Vec<Value>, ApiError> {
    data.director
        .send(GetRoutes)
        .await
        .map_err(|_| ApiError::internal("the director actor is not running"))
}

async fn route_at(data: &AdminState, index: usize) -> Result<Value, ApiError> {
    let routes = routes_in_force(data).await?;
    let count = routes.len();
    indexed(routes)
        .into_iter()
        .nth(index)
        .ok_or_else(|| ApiError::not_found(format!("no route {index} (there are {count})")))
}

/// A route index from the path; anything else is no route.
fn index_of(text: &str) -> Result<usize, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no route `{text}` (routes are addressed by index)")))
}

/// Each route with its `index` (its place in the match order).
fn indexed(routes: Vec<Value>) -> Vec<Value> {
    routes
        .into_iter()
        .enumerate()
        .map(|(index, route)| {
            let mut out = Map::new();
            out.insert("index".to_owned(), json!(index));
            if let Value::Object(fields) = route {
                out.extend(fields);
            }
            Value::Object(out)
        })
        .collect()
}
