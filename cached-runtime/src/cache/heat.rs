//! How hot each entry of a warmed namespace is: its hits since it was filled, so that warming
//! (`engine::warm`) reloads after an invalidation only what readers actually use.
//!
//! One byte per key hash in a fixed table (a collision only makes a key look hotter), counted
//! only for the namespaces opted in: for the others a hit pays one branch.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crate::key::CacheKey;
use crate::registry;

/// How many counters the hits of warmed namespaces are spread over.
const SLOTS: usize = 1 << 14;

/// A multiply-rotate hash (the shape of rustc's FxHasher): on the hit path of warmed
/// namespaces, where SipHash cost ~12 ns a hit. Nothing depends on it being unpredictable.
#[derive(Default)]
struct Quick(u64);

impl Hasher for Quick {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    #[inline]
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    #[inline]
    fn write_i64(&mut self, word: i64) {
        self.write_u64(word as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The high bits are the well-mixed ones.
        (self.0 >> 32) ^ self.0
    }
}

/// The hit counters of the warmed namespaces.
pub(crate) struct Heat {
    /// Per namespace slot: whether its entries are warmed.
    warm: Box<[bool]>,
    /// Empty when nothing is warmed.
    counters: Box<[AtomicU8]>,
}

impl Heat {
    /// Counters for the namespaces in these slots.
    pub fn new(warm_slots: &[usize]) -> Self {
        let mut warm = vec![false; registry::slot_count()];
        for &slot in warm_slots {
            warm[slot] = true;
        }
        Heat {
            warm: warm.into(),
            counters: match warm_slots.is_empty() {
                true => Box::default(),
                false => (0..SLOTS).map(|_| AtomicU8::new(0)).collect(),
            },
        }
    }

    /// Counts a hit of `key` if its namespace is warmed (one branch otherwise).
    #[inline]
    pub fn hit(&self, key: &CacheKey) {
        if !self.counters.is_empty() {
            self.count(key);
        }
    }

    fn count(&self, key: &CacheKey) {
        if let Some(counter) = self.counter(key) {
            let hits = counter.load(Relaxed);
            if hits < u8::MAX {
                counter.store(hits + 1, Relaxed);
            }
        }
    }

    /// The counter of `key`, if its namespace is warmed.
    fn counter(&self, key: &CacheKey) -> Option<&AtomicU8> {
        if self.counters.is_empty() {
            return None;
        }
        let slot = registry::slot(key.namespace());
        if !self.warm.get(slot).copied().unwrap_or(false) {
            return None;
        }
        let mut hasher = Quick::default();
        key.hash(&mut hasher);
        Some(&self.counters[hasher.finish() as usize % SLOTS])
    }

    /// The hits of `key` since its last fill, set back to zero (0 if not warmed).
    pub fn take(&self, key: &CacheKey) -> u8 {
        self.counter(key)
            .map_or(0, |counter| counter.swap(0, Relaxed))
    }

    /// `key` was filled: its count starts again.
    pub fn filled(&self, key: &CacheKey) {
        if let Some(counter) = self.counter(key) {
            counter.store(0, Relaxed);
        }
    }
}
