//! Invalidation hooks: callbacks that see every invalidation the context applies.
//!
//! Typical use: forward the keys to other processes or to HTTP client caches, or log them.

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

    pub fn run(&self, event: &Invalidation<'_>) {
        let hooks = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        for hook in hooks {
            hook(event);
        }
    }
}
