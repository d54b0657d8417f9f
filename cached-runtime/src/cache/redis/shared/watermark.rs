//! How far this instance has applied the shared cache's invalidations: the run they were
//! numbered in and the number of the last one (runs: see `scripts`).
//!
//! Numbers compare only within one run. After a failover or a restart from an older snapshot
//! on disk, Redis numbers again from where its copy of the counter stood, which may be below
//! numbers this instance already applied: "applied up to 100" says nothing of the new run's
//! 99. An instance that meets another run than its own (in a message or in a snapshot) treats
//! it as a lost subscription: it clears and counts from the new run's last number.

use std::sync::Mutex;

/// The run and the number of the last shared-cache invalidation applied here.
pub(crate) struct Watermark {
    mark: Mutex<Mark>,
    /// Test only (else true): runs are not compared, only numbers (the design this replaced).
    runs_checked: bool,
}

struct Mark {
    run: String,
    n: u64,
}

/// What a message's number did to the watermark.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Advance {
    /// It is the highest applied here so far.
    Raised,
    /// An earlier number of the same run (a duplicate or a late message), or a number
    /// without a run.
    Behind,
    /// Numbered in another run than this instance counts in.
    OtherRun,
}

impl Watermark {
    /// Everything up to `n` of `run` applied (or predating this instance's subscription).
    pub fn new(run: String, n: u64, runs_checked: bool) -> Watermark {
        Watermark {
            mark: Mutex::new(Mark { run, n }),
            runs_checked,
        }
    }

    /// Whether runs are compared: the shared cache's stamps name the Redis process (else its
    /// run is kept in a key).
    pub fn runs_checked(&self) -> bool {
        self.runs_checked
    }

    /// Starts over at `n` of `run` (after subscribing again, with the cache cleared).
    pub fn reset(&self, run: String, n: u64) {
        *self.lock() = Mark { run, n };
    }

    /// A message numbered `n` in `run` is applied here. A number without a run (from an
    /// instance whose Redis user may not run `INFO`, or of an earlier version) vouches for
    /// nothing here: this instance's stores wait for numbers it can compare, or skip.
    pub fn heard(&self, run: &str, n: u64) -> Advance {
        let mut mark = self.lock();
        if self.runs_checked && run.is_empty() {
            return Advance::Behind;
        }
        if self.runs_checked && run != mark.run {
            return Advance::OtherRun;
        }
        if n > mark.n {
            mark.n = n;
            Advance::Raised
        } else {
            Advance::Behind
        }
    }

    /// Whether every invalidation of `run` up to `n` is applied here; `None` if this instance
    /// counts in another run.
    pub fn covers(&self, run: &str, n: u64) -> Option<bool> {
        let mark = self.lock();
        if self.runs_checked && run != mark.run {
            return None;
        }
        Some(mark.n >= n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mark> {
        self.mark.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_of_another_run_neither_raise_nor_vouch() {
        let mark = Watermark::new("a".into(), 100, true);
        assert_eq!(mark.heard("a", 101), Advance::Raised);
        assert_eq!(mark.heard("a", 99), Advance::Behind);
        // Run b numbers from below: its 99 is not a's 99.
        assert_eq!(mark.heard("b", 99), Advance::OtherRun);
        assert_eq!(mark.covers("b", 99), None);
        assert_eq!(mark.covers("a", 101), Some(true));
        assert_eq!(mark.covers("a", 102), Some(false));
        mark.reset("b".into(), 98);
        assert_eq!(mark.covers("b", 99), Some(false));
        assert_eq!(mark.heard("b", 99), Advance::Raised);
        assert_eq!(mark.covers("b", 99), Some(true));
        assert_eq!(mark.heard("a", 200), Advance::OtherRun);
        assert_eq!(mark.heard("", 200), Advance::Behind);
        assert_eq!(mark.covers("b", 100), Some(false));
    }

    #[test]
    fn unchecked_runs_compare_numbers_only() {
        let mark = Watermark::new("a".into(), 100, false);
        assert_eq!(mark.covers("b", 99), Some(true));
        assert_eq!(mark.heard("", 101), Advance::Raised);
    }
}
