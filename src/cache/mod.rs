//! The object cache (being built).

pub mod lock;
