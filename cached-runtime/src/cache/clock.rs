//! The clock TTLs are read against: coarse, per cache, and replaceable in tests.
//!
//! A hit costs one relaxed atomic load instead of a clock call. A [`Clock::ticking`] clock is
//! advanced by a thread of its own every [`TICK`], which stops once the last cache using it
//! is dropped; entry lifetimes are therefore accurate to about one tick, plenty for TTLs
//! counted in seconds (they are a safety net: invalidation keeps entries fresh). A
//! [`ManualClock`] moves only when a test advances it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often a ticking clock advances.
pub(crate) const TICK: Duration = Duration::from_millis(20);

/// Milliseconds since the clock started, shared between a cache and whatever advances it.
#[derive(Clone, Debug)]
pub(crate) struct Clock(Arc<AtomicU64>);

impl Clock {
    /// A clock advanced by a thread of its own, which exits once every copy of the clock is
    /// dropped.
    pub fn ticking() -> Self {
        let now = Arc::new(AtomicU64::new(0));
        tick(Arc::downgrade(&now));
        Clock(now)
    }

    /// Milliseconds since the clock started, as of the last tick.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// The deadline of an entry created now that lives `ttl`, or `u64::MAX` for no TTL.
    pub fn deadline(&self, ttl: Option<Duration>) -> u64 {
        match ttl {
            Some(ttl) => self.now_ms().saturating_add(ttl.as_millis() as u64),
            None => u64::MAX,
        }
    }
}

/// Advances `now` every [`TICK`] until nothing else holds it.
fn tick(now: Weak<AtomicU64>) -> std::thread::JoinHandle<()> {
    let origin = Instant::now();
    std::thread::Builder::new()
        .name("cached-runtime-clock".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            let Some(now) = now.upgrade() else { return };
            now.store(origin.elapsed().as_millis() as u64, Relaxed);
        })
        .expect("spawn the cache clock thread")
}

/// A clock that moves only when told to, for tests of TTLs: pass it to
/// [`ContextBuilder::clock`](crate::ContextBuilder::clock) and [`advance`](ManualClock::advance)
/// it past an entity's TTL instead of sleeping.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # async fn demo(pool: sqlx::SqlitePool) {
/// use std::time::Duration;
/// let clock = cached_runtime::ManualClock::new();
/// let ctx = cached_runtime::Context::builder(pool).clock(clock.clone()).build();
/// // ... cache a row of an entity with `ttl = 60` ...
/// clock.advance(Duration::from_secs(61)); // the row has expired
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Relaxed);
    }

    pub(crate) fn clock(&self) -> Clock {
        Clock(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticking_clock_advances_and_deadlines_follow_the_ttl() {
        let clock = Clock::ticking();
        let before = clock.now_ms();
        std::thread::sleep(TICK * 5);
        assert!(clock.now_ms() > before, "the clock ticks");
        assert_eq!(clock.deadline(None), u64::MAX);
        let d = clock.deadline(Some(Duration::from_secs(2)));
        assert!(d >= clock.now_ms() + 1_900 && d <= clock.now_ms() + 2_000);
    }

    #[test]
    fn a_ticking_clock_stops_its_thread_once_dropped() {
        let now = Arc::new(AtomicU64::new(0));
        let ticker = tick(Arc::downgrade(&now));
        std::thread::sleep(TICK * 3);
        assert!(
            now.load(Relaxed) > 0,
            "the thread ticks while the clock lives"
        );
        assert!(!ticker.is_finished());
        drop(now);
        ticker
            .join()
            .expect("the ticker exits once the clock is dropped");
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        std::thread::sleep(TICK * 2);
        assert_eq!(clock.now_ms(), 0);
        manual.advance(Duration::from_secs(3));
        assert_eq!(clock.now_ms(), 3_000);
        assert_eq!(clock.deadline(Some(Duration::from_secs(1))), 4_000);
    }
}
