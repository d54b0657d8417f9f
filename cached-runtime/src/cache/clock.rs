//! A coarse clock for TTLs: one relaxed atomic load per read instead of a clock call.
//!
//! A background thread (one per process, started on first use) advances a millisecond counter
//! every [`TICK`]. Entry lifetimes are therefore accurate to about one tick, which is plenty for
//! TTLs counted in seconds (they are a safety net: invalidation keeps entries fresh).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often the clock advances.
pub(crate) const TICK: Duration = Duration::from_millis(20);

static NOW_MS: AtomicU64 = AtomicU64::new(0);
static STARTED: OnceLock<()> = OnceLock::new();

/// Starts the ticking thread if it is not running yet.
pub(crate) fn start() {
    STARTED.get_or_init(|| {
        let origin = Instant::now();
        std::thread::Builder::new()
            .name("cached-runtime-clock".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                NOW_MS.store(origin.elapsed().as_millis() as u64, Relaxed);
            })
            .expect("spawn the cache clock thread");
    });
}

/// Milliseconds since the clock started, as of the last tick.
#[inline]
pub(crate) fn now_ms() -> u64 {
    NOW_MS.load(Relaxed)
}

/// The deadline of an entry created now that lives `ttl`, or `u64::MAX` for no TTL.
pub(crate) fn deadline(ttl: Option<Duration>) -> u64 {
    match ttl {
        Some(ttl) => now_ms().saturating_add(ttl.as_millis() as u64),
        None => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_advances_and_deadlines_follow_the_ttl() {
        start();
        let before = now_ms();
        std::thread::sleep(TICK * 5);
        assert!(now_ms() > before, "the clock ticks");
        assert_eq!(deadline(None), u64::MAX);
        let d = deadline(Some(Duration::from_secs(2)));
        assert!(d >= now_ms() + 1_900 && d <= now_ms() + 2_000);
    }
}
