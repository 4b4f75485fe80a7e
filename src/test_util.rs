//! Helpers for the crate's own unit tests.

use std::time::Duration;

/// proptest settings for the crate's property tests: `cases` cases from a fixed seed (the same
/// runs every time, so a failure in CI is a failure on every machine) and thorough shrinking.
pub fn proptest_runs(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xB0C4E7),
        max_shrink_iters: 4096,
        ..proptest::test_runner::Config::default()
    }
}

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
