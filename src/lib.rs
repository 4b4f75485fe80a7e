//! director: a reverse-proxy load balancer for HTTP application clusters.
//!
//! See `DESIGN.md` in the project's shared docs and the README for the architecture: a data
//! plane that stays on the worker that accepted a request, and a control plane of actix actors
//! that own all state and publish immutable snapshots.

pub mod admin;
pub mod app;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod listener;
pub mod proto;
pub mod proxy;
pub mod stats;
pub mod transport;

#[cfg(test)]
pub(crate) mod test_util;
