//! What the JSON API's handler modules (`api`, `topology_api`) share: reading a request body
//! as a JSON object, turning a refused runtime change into its 4xx answer, and a cluster's
//! state from its actor (control plane).

use actix_web::http::StatusCode;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::AdminState;
use crate::cluster::cluster_state::ClusterState;
use crate::cluster::director_actor::ChangeError;
use crate::config::edit::EditError;
use crate::config::ConfigErrors;

/// The Director's answer to a runtime change: its refusals become 4xx answers.
pub fn refusal(answer: Result<Result<u64, ChangeError>, actix::MailboxError>) -> Result<u64, ApiError> {
    match answer {
        Ok(Ok(generation)) => Ok(generation),
        Ok(Err(ChangeError::UnknownCluster(name))) => {
            Err(ApiError::not_found(format!("no cluster `{name}`")))
        }
        Ok(Err(ChangeError::Edit(EditError::NotFound(detail)))) => Err(ApiError::not_found(detail)),
        Ok(Err(ChangeError::Edit(EditError::Conflict(detail)))) => Err(ApiError::conflict(detail)),
        Ok(Err(ChangeError::Edit(EditError::Forbidden(detail)))) => Err(ApiError::forbidden(detail)),
        Ok(Err(ChangeError::Edit(EditError::Invalid(detail)))) => {
            Err(ApiError::bad_request("invalid_value", detail))
        }
        Ok(Err(ChangeError::Invalid(errors))) => Err(invalid_config(StatusCode::BAD_REQUEST, errors)),
        Ok(Err(ChangeError::Interrupted(detail))) => Err(ApiError::internal(detail)),
        Err(_) => Err(ApiError::internal("the director actor is not running")),
    }
}

/// Configuration errors as `[{path, message}]`.
pub fn invalid_config(status: StatusCode, errors: ConfigErrors) -> ApiError {
    let detail: Vec<Value> = errors
        .0
        .iter()
        .map(|e| json!({ "path": e.path, "message": e.message }))
        .collect();
    ApiError::new(status, "invalid_config", detail)
}

/// The request body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad_request(
            "invalid_json",
            format!("expected a JSON object, found {}", json_kind(&other)),
        )),
        Err(e) => Err(ApiError::bad_request("invalid_json", e.to_string())),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The state of cluster `name`, from its actor.
pub async fn state_of(data: &AdminState, name: &str) -> Result<ClusterState, ApiError> {
    let cluster = data
        .running(name)
        .ok_or_else(|| ApiError::not_found(format!("no cluster `{name}`")))?;
    data.cluster_state(&cluster)
        .await
        .ok_or_else(|| ApiError::internal("the cluster actor is not running"))
}
