//! Invalidation hooks: callbacks that see every invalidation the context applies.
//!
//! Typical use: forward the keys to other processes or to HTTP client caches, or log them.
//! Hooks run after the change is applied and its broadcast queued; a hook that panics is
//! caught and counted (`Stats::hook_panics`), and changes nothing of what was applied.

use std::sync::{Arc, RwLock};

use crate::key::CacheKey;

/// What caused an invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A committed transaction (or a write through the context, which commits on its own).
    Commit,
    /// A manual call (`invalidate`, `invalidate_key`, `refresh`, ...).
    Manual,
    /// A commit whose outcome is unknown (the `COMMIT` statement failed): the keys it would
    /// have touched are dropped to keep the cache from diverging.
    FailedCommit,
    /// Another instance's invalidation, received over the broadcast.
    Remote,
    /// A commit made outside the application, heard through the change feed.
    Feed,
}

/// One applied invalidation, as hooks receive it.
#[derive(Debug, Clone)]
pub struct Invalidation<'a> {
    /// Why the keys were invalidated.
    pub source: Source,
    /// The keys dropped or rewritten, queries first.
    pub keys: &'a [CacheKey],
    /// Entity types invalidated as a whole (`invalidate_entity`), by type name.
    pub entities: &'a [&'static str],
}

type Hook = Arc<dyn Fn(&Invalidation<'_>) + Send + Sync>;

/// The registered hooks of a context.
#[derive(Default)]
pub(crate) struct Hooks(RwLock<Vec<Hook>>);

impl Hooks {
    pub fn add(&self, hook: Hook) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).push(hook);
    }

    /// Runs every hook on `event`; returns how many panicked. A panic is caught, so that one
    /// hook cannot stop the others, the caller's commit or the broadcast's listener.
    pub fn run(&self, event: &Invalidation<'_>) -> u64 {
        let hooks = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut panics = 0;
        for hook in hooks {
            // The event is borrowed and read-only, and a hook that panicked is run again on the
            // next event as it is: nothing is observed half-updated.
            let run = std::panic::AssertUnwindSafe(|| hook(event));
            if std::panic::catch_unwind(run).is_err() {
                panics += 1;
            }
        }
        panics
    }
}
