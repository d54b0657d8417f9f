//! The cached spellings of each folded key, so that a change drops all of them.
//!
//! An entry is keyed by the exact text asked for (`user?email=Bob@X.com`), while a database
//! with a case-insensitive collation matches it against `bob@x.com` too. Every entry whose key
//! is not its own canonical form ([`CacheKey::canonical`]) is registered here under that form;
//! an apply that changes any spelling takes every registered spelling of the same canonical
//! key and drops it. Registrations go with their entries (dropped, replaced or evicted), so the
//! index holds only cached non-canonical keys: usually none.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::key::CacheKey;

/// Canonical key -> its cached spellings, each with the registration id of its entry.
#[derive(Default)]
pub(crate) struct Spellings {
    map: Mutex<HashMap<CacheKey, HashMap<CacheKey, u64>>>,
}

impl Spellings {
    // A key hashes its entity by address, never through the entity's mutable state.
    #[allow(clippy::mutable_key_type)]
    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, HashMap<CacheKey, u64>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `key` as a spelling of `canonical`, for the entry with registration `id`.
    pub fn register(&self, canonical: CacheKey, key: &CacheKey, id: u64) {
        self.lock()
            .entry(canonical)
            .or_default()
            .insert(key.clone(), id);
    }

    /// Removes and returns every spelling registered under `canonical`.
    pub fn take(&self, canonical: &CacheKey) -> Vec<CacheKey> {
        self.lock()
            .remove(canonical)
            .map(|spellings| spellings.into_keys().collect())
            .unwrap_or_default()
    }

    /// Forgets `key` under `canonical` if it is still registered with `id` (its entry was
    /// evicted; a newer entry may have registered it again).
    pub fn release(&self, canonical: &CacheKey, key: &CacheKey, id: u64) {
        let mut map = self.lock();
        if let Some(spellings) = map.get_mut(canonical) {
            if spellings.get(key) == Some(&id) {
                spellings.remove(key);
                if spellings.is_empty() {
                    map.remove(canonical);
                }
            }
        }
    }

    /// Forgets everything (the cache was cleared).
    pub fn clear(&self) {
        self.lock().clear();
    }
}
