//! Concurrent torture test on every backend (the harness is `tests/common/torture.rs`): with
//! the stale-fill guard on there must be no stale read, and the consistency auditor sampling
//! the cache throughout must find no mismatch; with the guard switched off (test-only) the
//! same run must find stale reads, which proves the test can fail (what the auditor finds
//! then is in the summary).

use crate::common;

use common::torture::{self, Instances};

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_read_after_a_commit_returns_older_data(backend) {
        let (ctx, _db) = seeded!(backend, torture::configure(true));
        let outcome =
            torture::run_audited(&format!("{backend:?}"), true, Instances::one(ctx), true).await;
        assert_eq!(outcome.violations, 0, "{}", outcome.summary);
        assert_eq!(outcome.audit_mismatches, 0, "{}", outcome.summary);
        assert!(outcome.audited > 0, "the auditor checked nothing: {}", outcome.summary);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_torture_test_finds_stale_reads_when_the_guard_is_off(backend) {
        let (ctx, _db) = seeded!(backend, torture::configure(false));
        let outcome =
            torture::run_audited(&format!("{backend:?}"), false, Instances::one(ctx), true).await;
        assert!(
            outcome.violations > 0,
            "the test could not detect the race it exists for: {}",
            outcome.summary
        );
    }
}
