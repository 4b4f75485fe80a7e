//! Clusters: backends, schedulers, the bucket tree, admission, and the control-plane actors
//! (Director, Cluster, Backend, HealthMonitor) that own their state and publish the topology
//! snapshot.
//!
//! Two layers. The data plane's views — `admission`, `backend`, `backend_status`, `buckets`,
//! `classify`, `health`, `scheduler`, `topology` — are what a request reads and takes capacity
//! from; they hold no actor addresses and name no actor module (`tests/it/layering.rs` checks).
//! The actors (`*_actor`, `health_monitor`) sit above them: a parent holds its children's
//! addresses, a child reports to its parent through a `Recipient`, and the data plane reaches
//! a Backend actor only through the channel of passive ejections in [`Backend`]. The root
//! re-exports only data-plane items.

pub mod admission;
pub mod arbiters;
pub mod backend;
pub mod backend_actor;
pub mod backend_status;
pub mod buckets;
pub mod classify;
pub mod cluster_actor;
pub mod cluster_state;
pub mod director_actor;
pub mod discovery;
pub mod discovery_actor;
mod discovery_set;
pub mod health;
pub mod health_monitor;
pub mod health_probe;
mod next_config;
pub mod replica_share;
mod road_warrior;
pub mod scheduler;
pub mod topology;

pub use admission::{Admission, Admit, Grant};
pub use backend::Backend;
pub use topology::{ClusterHandle, SharedTopology, Topology};
