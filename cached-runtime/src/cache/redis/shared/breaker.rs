//! The shared cache's circuit breaker: after a few failed or slow calls in a row, reads and
//! stores skip Redis for a cool-down and go straight to the database; then one call tries
//! again. Invalidations never pass through it (they are the broadcast's, with its own rules).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A breaker's state, shared by every reader of one context.
pub(crate) struct Breaker {
    /// Failures in a row (reset by a success).
    failures: AtomicU32,
    /// While open: until when (µs since `epoch`); 0 when closed.
    open_until: AtomicU64,
    /// How often it opened.
    pub opened: AtomicU64,
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            threshold: threshold.max(1),
            cooldown,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Whether a call may go to Redis now: the breaker is closed, or its cool-down is over
    /// (the next call is the trial).
    pub fn allows(&self) -> bool {
        let until = self.open_until.load(Relaxed);
        until == 0 || self.now() >= until
    }

    /// A call answered in time.
    pub fn success(&self) {
        self.failures.store(0, Relaxed);
        self.open_until.store(0, Relaxed);
    }

    /// A call failed or timed out; the threshold-th in a row opens the breaker (again, after
    /// a failed trial).
    pub fn failure(&self) {
        let trial = self.open_until.load(Relaxed) != 0;
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if trial || failures >= self.threshold {
            self.failures.store(0, Relaxed);
            let until = self.now() + self.cooldown.as_micros() as u64;
            self.open_until.store(until.max(1), Relaxed);
            self.opened.fetch_add(1, Relaxed);
            tracing::warn!(
                target: "cached",
                cooldown_ms = self.cooldown.as_millis() as u64,
                "shared cache: circuit open, reads go to the database"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_after_a_good_trial() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        breaker.failure();
        breaker.failure();
        assert!(breaker.allows(), "two failures: still closed");
        breaker.success();
        breaker.failure();
        breaker.failure();
        assert!(breaker.allows(), "a success reset the count");
        breaker.failure();
        assert!(!breaker.allows());
        assert_eq!(breaker.opened.load(Relaxed), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allows(), "the cool-down is over: one trial");
        breaker.failure();
        assert!(!breaker.allows(), "a failed trial opens it at once");
        std::thread::sleep(Duration::from_millis(40));
        breaker.success();
        assert!(breaker.allows());
        assert_eq!(breaker.opened.load(Relaxed), 2);
    }
}
