//! Concurrent torture test on every backend (the harness is `tests/common/torture.rs`): with
//! the stale-fill guard on there must be no stale read; with it switched off (test-only) the
//! same run must find some, which proves the test can fail.

#[macro_use]
mod common;

use common::torture::{self, Instances};

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_read_after_a_commit_returns_older_data(backend) {
        let (ctx, _db) = seeded!(backend, torture::configure(true));
        let (violations, summary) =
            torture::run(&format!("{backend:?}"), true, Instances::one(ctx)).await;
        assert_eq!(violations, 0, "{summary}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_torture_test_finds_stale_reads_when_the_guard_is_off(backend) {
        let (ctx, _db) = seeded!(backend, torture::configure(false));
        let (violations, summary) =
            torture::run(&format!("{backend:?}"), false, Instances::one(ctx)).await;
        assert!(
            violations > 0,
            "the test could not detect the race it exists for: {summary}"
        );
    }
}
