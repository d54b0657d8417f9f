//! The cached spellings of each folded key, so that a change drops all of them.
//!
//! An entry is keyed by the exact text asked for (`user?email=Bob@X.com`), while a database
//! with a case-insensitive collation matches it against `bob@x.com` too. Every entry whose key
//! is not its own canonical form ([`CacheKey::canonical`]) is registered here under that form;
//! an apply that changes any spelling takes every registered spelling of the same canonical
//! key and drops it. Registrations go with their entries when those are dropped or replaced,
//! and after an eviction by a sweep, as in the dependency index ([`Sweeps`]): the index holds
//! about the cached non-canonical keys at most (usually none).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::deps::Sweeps;
use crate::key::CacheKey;

/// Canonical key -> its cached spellings, each with the registration id of its entry.
type ByCanonical = HashMap<CacheKey, HashMap<CacheKey, u64>>;

/// The registered spellings, and when they are next swept.
#[derive(Default)]
pub(crate) struct Spellings {
    map: Mutex<(ByCanonical, Sweeps)>,
}

// A key hashes its entity by address, never through the entity's mutable state.
#[allow(clippy::mutable_key_type)]
impl Spellings {
    fn lock(&self) -> MutexGuard<'_, (ByCanonical, Sweeps)> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `key` as a spelling of `canonical`, for the entry with registration `id`.
    pub fn register(&self, canonical: CacheKey, key: &CacheKey, id: u64) {
        let mut guard = self.lock();
        let (map, sweeps) = &mut *guard;
        sweeps.registered();
        map.entry(canonical).or_default().insert(key.clone(), id);
    }

    /// Removes and returns every spelling registered under `canonical`.
    pub fn take(&self, canonical: &CacheKey) -> Vec<CacheKey> {
        self.lock()
            .0
            .remove(canonical)
            .map(|spellings| spellings.into_keys().collect())
            .unwrap_or_default()
    }

    /// Forgets `key` under `canonical` if it is still registered with `id` (its entry was
    /// evicted; a newer entry may have registered it again).
    pub fn release(&self, canonical: &CacheKey, key: &CacheKey, id: u64) {
        let mut guard = self.lock();
        let map = &mut guard.0;
        if let Some(spellings) = map.get_mut(canonical) {
            if spellings.get(key) == Some(&id) {
                spellings.remove(key);
                if spellings.is_empty() {
                    map.remove(canonical);
                }
            }
        }
    }

    /// Whether enough spellings registered since the last sweep to pay for another.
    pub fn sweep_due(&self) -> bool {
        self.lock().1.due()
    }

    /// Forgets every spelling that is no longer `cached` (evicted); called where no fill can
    /// be between its registration and its store, as [`DepIndex::sweep`](super::deps::DepIndex::sweep).
    pub fn sweep(&self, cached: impl Fn(&CacheKey) -> bool) {
        let mut guard = self.lock();
        let (map, sweeps) = &mut *guard;
        map.retain(|_, spellings| {
            spellings.retain(|key, _| cached(key));
            !spellings.is_empty()
        });
        sweeps.swept(map.values().map(HashMap::len).sum());
    }

    /// Forgets everything (the cache was cleared).
    pub fn clear(&self) {
        *self.lock() = Default::default();
    }
}
