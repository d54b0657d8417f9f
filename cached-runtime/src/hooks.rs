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

/// What the invalidations applied while serving one HTTP request dropped, collected for the
/// response's `Cache-Invalidate` header (see `headers`).
#[cfg(feature = "axum")]
#[derive(Default)]
pub(crate) struct Collected {
    pub keys: Vec<CacheKey>,
    /// The namespaces invalidated as a whole, by name (unique, where type names need not be).
    pub namespaces: Vec<&'static str>,
}

#[cfg(feature = "axum")]
tokio::task_local! {
    /// Set by the header layer around a request's handler.
    pub(crate) static REQUEST: Arc<std::sync::Mutex<Collected>>;
}

/// Adds an invalidation applied in this task to its request's collection, if the task is
/// serving a request under the header layer (a no-op otherwise).
#[inline]
pub(crate) fn note_for_request(keys: &[CacheKey], namespaces: &[&'static str]) {
    #[cfg(feature = "axum")]
    let _ = REQUEST.try_with(|collected| {
        let mut collected = collected.lock().unwrap_or_else(|e| e.into_inner());
        collected.keys.extend_from_slice(keys);
        for namespace in namespaces {
            if !collected.namespaces.contains(namespace) {
                collected.namespaces.push(namespace);
            }
        }
    });
    #[cfg(not(feature = "axum"))]
    let _ = (keys, namespaces);
}
