//! The integration tests, one test binary (one link, the fixtures compiled once): each module
//! was a binary of its own under `tests/`. Run one with `cargo test --test it reload::`.
//! `tests/local_resources.rs` stays alone in its binary: it lowers the process's open-file limit.

mod support;

mod access_log_fields;
mod admin;
mod admin_security;
mod backend_health;
mod backend_tls;
mod balancing;
mod binary;
mod blame;
mod buckets;
mod cache;
mod client_abort;
mod control_plane_latency;
mod dashboard;
mod dashboard_lifecycle;
mod dashboard_live;
mod dashboard_pages;
mod demo;
mod dns_discovery;
mod fastcgi;
mod fastcgi_faults;
mod forwarding;
mod haproxy_compat;
mod header_hygiene;
mod health;
mod http2;
mod layering;
mod lifecycle;
mod live_history;
mod maintenance;
mod reload;
mod replicas;
mod request_ids;
mod road_warrior;
mod sendfile;
mod slow_clients;
mod terminate_protection;
mod tls;
mod tls_http2;
mod tls_requests;
mod upstream_integrity;
mod via;
mod websocket;
