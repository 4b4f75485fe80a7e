//! The data plane: the request pipeline, the HTTP and FastCGI forwarders, X-Sendfile and
//! upgrade tunnels.
//!
//! Reads the topology snapshot and the admission state only; never awaits a control-plane
//! actor.

pub mod access_log;
mod blame;
pub mod cached;
pub mod error;
pub mod fcgi_params;
pub mod handler;
pub mod relay_body;
pub mod request_body;
pub mod response;
pub mod sendfile;
pub mod trace;
pub mod tunnel;
pub mod upstream;

use std::sync::Arc;

use crate::cluster::SharedTopology;

/// What every worker's proxy service shares.
pub struct ProxyState {
    pub topology: SharedTopology,
    pub access_log: Option<Arc<access_log::AccessLog>>,
    /// Request IDs and trace context (`proxy.request_id`, `proxy.traceparent`).
    pub tracing: Option<trace::Tracing>,
}
