//! The data plane: the request pipeline, the HTTP and FastCGI forwarders and X-Sendfile.
//!
//! Reads the topology snapshot and the admission state only; never awaits a control-plane
//! actor.

pub mod access_log;
pub mod error;
pub mod fcgi_forward;
pub mod fcgi_params;
pub mod fcgi_pool;
pub mod h1_client;
pub mod handler;
pub mod http_forward;
pub mod relay_body;
pub mod request_body;
pub mod response;
pub mod sendfile;

use std::sync::Arc;

use crate::cluster::SharedTopology;

/// What every worker's proxy service shares.
pub struct ProxyState {
    pub topology: SharedTopology,
    pub access_log: Option<Arc<access_log::AccessLog>>,
}
