//! Helpers for the crate's own unit tests.

use std::time::Duration;

/// A fresh directory under the system temp dir named after `tag`, removed with everything in
/// it when dropped (the integration tests' `support::temp_dir` is the same).
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("director-{tag}-"))
        .tempdir()
        .expect("create a temp dir")
}

/// Waits until `condition` holds, checking every few milliseconds; panics after 5 s.
pub async fn eventually_sync(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
