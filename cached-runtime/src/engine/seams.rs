//! Test seams: the points where a test can pause the runtime to widen a race window on
//! demand (a slow reader, a slow commit). Set through the builder's test-only methods; a
//! production context has none, and the pause points cost one `None` check.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

/// Where the runtime can pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// A load has read the database and is about to fill the cache.
    Fill,
    /// A commit has resolved its changes and announced them (a broadcast's checks, its
    /// outbox row, its fence) and is about to commit in the database.
    Commit,
}

/// Which pause points pause, and for how long.
#[derive(Debug, Default)]
pub(crate) struct Pauses {
    /// Every `.0`-th load pauses `.1` before its fill.
    pub fill: Option<(u64, Duration)>,
    /// Every commit pauses this long before the database commit.
    pub commit: Option<Duration>,
    loads: AtomicU64,
    /// How many loads have reached their pause (their database read is done).
    paused: AtomicU64,
}

impl Pauses {
    /// How long to pause at `point` this time, if at all.
    pub fn at(&self, point: Point) -> Option<Duration> {
        match point {
            Point::Commit => self.commit,
            Point::Fill => {
                let (every, delay) = self.fill?;
                let pause = self.loads.fetch_add(1, SeqCst) % every == 0;
                if pause {
                    self.paused.fetch_add(1, SeqCst);
                }
                pause.then_some(delay)
            }
        }
    }

    /// How many loads have paused before their fill so far.
    #[cfg(any(test, feature = "__testing"))]
    pub fn paused_loads(&self) -> u64 {
        self.paused.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_load_pauses_and_is_counted() {
        let pauses = Pauses {
            fill: Some((3, Duration::from_millis(5))),
            ..Pauses::default()
        };
        let paused: Vec<bool> = (0..7).map(|_| pauses.at(Point::Fill).is_some()).collect();
        assert_eq!(paused, [true, false, false, true, false, false, true]);
        assert_eq!(pauses.paused_loads(), 3);
        assert_eq!(pauses.at(Point::Commit), None);
    }
}
