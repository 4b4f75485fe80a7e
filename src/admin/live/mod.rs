//! Live stats for the admin surface (control plane): the StatsCollector actor samples the
//! published topology's counters once a second ([`collector`]) into the ring buffers of
//! [`history`], which the live page, `/api/v1/history` and the event stream read through the
//! [`LiveStats`] handle; [`persist`] keeps the history in a file between runs. Started only
//! with an admin listener; the data plane never sees it.

pub mod collector;
pub mod history;
pub mod persist;

pub use collector::{LiveStats, Sample};
