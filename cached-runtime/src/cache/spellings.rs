//! The cached spellings of each folded key, so that a change drops all of them.
//!
//! An entry is keyed by the exact text asked for (`user?email=Bob@X.com`), while a database
//! with a case-insensitive collation matches it against `bob@x.com` too. Every entry whose key
//! is not its own canonical form ([`CacheKey::canonical`]) is registered here under that form;
//! an apply that changes any spelling takes every registered spelling of the same canonical
//! key and drops it. Registrations go with their entries when those are dropped or replaced,
//! and after an eviction when a later registration comes across them in the queue, as in the
//! dependency index ([`DepIndex::check_evicted`](super::deps::DepIndex::check_evicted)): the
//! index holds about the cached non-canonical keys (usually none).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::deps::CHECKS;
use crate::key::CacheKey;

/// Canonical key -> its cached spellings, each with the registration id of its entry.
type ByCanonical = HashMap<CacheKey, HashMap<CacheKey, u64>>;

/// Every registration (canonical key, spelling, id), in the order they are checked for
/// eviction.
type Queue = VecDeque<(CacheKey, CacheKey, u64)>;

/// The registered spellings, and the queue they are checked for eviction in.
#[derive(Default)]
pub(crate) struct Spellings {
    map: Mutex<(ByCanonical, Queue)>,
}

// A key hashes its entity by address, never through the entity's mutable state.
#[allow(clippy::mutable_key_type)]
impl Spellings {
    fn lock(&self) -> MutexGuard<'_, (ByCanonical, Queue)> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `key` as a spelling of `canonical`, for the entry with registration `id`.
    pub fn register(&self, canonical: CacheKey, key: &CacheKey, id: u64) {
        let mut guard = self.lock();
        let (map, queue) = &mut *guard;
        queue.push_back((canonical.clone(), key.clone(), id));
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

    /// Checks the next queued registrations for eviction, releasing those whose spelling is
    /// no longer `cached`; called as
    /// [`DepIndex::check_evicted`](super::deps::DepIndex::check_evicted).
    pub fn check_evicted(&self, cached: impl Fn(&CacheKey) -> bool) {
        let mut guard = self.lock();
        let (map, queue) = &mut *guard;
        for _ in 0..CHECKS {
            let Some((canonical, key, id)) = queue.pop_front() else {
                return;
            };
            let Some(spellings) = map.get_mut(&canonical) else {
                continue;
            };
            if spellings.get(&key) != Some(&id) {
                continue;
            }
            if cached(&key) {
                queue.push_back((canonical, key, id));
            } else {
                spellings.remove(&key);
                if spellings.is_empty() {
                    map.remove(&canonical);
                }
            }
        }
    }

    /// Forgets everything (the cache was cleared).
    pub fn clear(&self) {
        *self.lock() = Default::default();
    }
}
