//! Warming after invalidation: an entry of an opted-in entity or view that readers hit often
//! is reloaded in the background as soon as an invalidation drops it, so that the next reader
//! hits instead of waiting for the database.
//!
//! "Often" is counted per entry since its last fill (`cache::heat`, counted only for
//! the namespaces opted in). The reload is the ordinary load of a miss: single flight (a
//! reader arriving meanwhile waits for it instead of loading again), guarded (a commit that
//! lands while it reads makes the cache refuse its fill), and started only after the
//! invalidation was applied, so it never serves or stores the old value. At most
//! [`MAX_WARMING`] reloads run at once; an invalidation that finds them all busy leaves its
//! keys to the next reader.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use super::Engine;
use crate::key::CacheKey;
use crate::stats::Counters;

/// The most reloads in flight at once.
pub(crate) const MAX_WARMING: usize = 4;

/// Hits since its last fill that make an entry worth reloading, unless the builder says
/// otherwise.
pub(crate) const DEFAULT_WARM_AFTER: u8 = 2;

/// Reloads one key of a namespace (an entity's row, query or count; a view instance).
pub(crate) type Warmer =
    Arc<dyn Fn(Arc<Engine>, CacheKey) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The warmers of a context, by namespace slot.
pub(crate) struct Warming {
    warmers: HashMap<usize, Warmer>,
    after: u8,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Warming {
    pub fn new(warmers: Vec<(usize, Warmer)>, after: u8) -> Self {
        Warming {
            warmers: warmers.into_iter().collect(),
            after: after.max(1),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_WARMING)),
        }
    }

    /// Starts a reload of each key of `keys` that was hot enough; called once the
    /// invalidation that dropped them is applied.
    pub fn after_apply(&self, engine: &Weak<Engine>, keys: &[CacheKey]) {
        if self.warmers.is_empty() {
            return;
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for key in keys {
            let Some(warmer) = self.warmers.get(&crate::registry::slot(key.namespace())) else {
                continue;
            };
            if engine.cache.heat.take(key) < self.after {
                continue;
            }
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                return;
            };
            let reload = warmer(engine.clone(), key.clone());
            let (engine, key) = (engine.clone(), key.clone());
            runtime.spawn(async move {
                // Counted if the reloaded entry was stored (not refused by a later commit).
                if reload.await && engine.cache.get(&key).is_some() {
                    Counters::add(&engine.cache.counters.warmed, 1);
                }
                drop(permit);
            });
        }
    }
}
