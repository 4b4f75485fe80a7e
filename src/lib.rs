//! director: a reverse-proxy load balancer for HTTP application clusters.
//!
//! `docs/architecture.md` is the map: a data plane that stays on the worker that accepted a
//! request (and why it takes capacity under a short lock instead of asking an actor), a
//! control plane of actix actors that own all state and publish immutable snapshots, and the
//! layering rules `tests/it/layering.rs` enforces.

pub mod admin;
pub mod app;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod listener;
pub mod proto;
pub mod proxy;
pub mod replicas;
pub mod stats;
pub mod transport;

#[cfg(test)]
pub(crate) mod test_util;
