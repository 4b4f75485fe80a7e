//! Clusters: backends, schedulers, the bucket tree, admission, and the control-plane actors
//! (Director, Cluster, Backend) that own their state and publish the topology snapshot.

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
pub mod health;
pub mod health_monitor;
pub mod health_probe;
pub mod scheduler;
pub mod topology;

pub use admission::{Admission, Admit, Grant};
pub use backend::Backend;
pub use topology::{ClusterHandle, SharedTopology, Topology};
