//! Storing loaded values: the stale-fill guard (`admits`), the entry record, and the fills of
//! plain keys, text spellings, registered entries (pages) and view instances.

use std::sync::atomic::Ordering::SeqCst;

use super::{keeps, ttl_of, Entry, LocalCache};
use crate::cache::deps::ReadSet;
use crate::cache::{weight, EntryData, Loaded, Token};
use crate::key::CacheKey;
use crate::stats::Counters;

/// How many entries [`LocalCache::bytes`] weighs to estimate a cache bounded by entries.
const BYTES_SAMPLE: usize = 4096;

impl LocalCache {
    /// Whether a value read under `token` may still be stored in a stripe stamped `stamp`.
    pub(crate) fn admits(&self, stamp: u64, token: &Token, key: &CacheKey) -> bool {
        if self.offline.load(SeqCst) != 0 {
            return false;
        }
        let meta = key.namespace();
        !self.protect
            || (stamp < token.seq
                && !self.entity_fenced(meta, key.is_query())
                && token.epoch == self.epoch.load(SeqCst)
                && token.generation == self.generation(meta)
                && (!key.is_query() || token.query_generation == self.query_generation(meta)))
    }

    /// Stores a value read from the database under `token`, unless a commit invalidated the key
    /// since. Returns whether it was stored.
    pub fn fill(&self, key: &CacheKey, data: EntryData, token: &Token) -> bool {
        if !keeps(key, &data) {
            return true;
        }
        if self.too_large(key, &data) {
            return true;
        }
        if let Some(canonical) = self.canonical(key) {
            return self.fill_spelling(key, canonical, data, token);
        }
        let stripe = self.stripe(key);
        let admitted = self.admits(stripe.stamp(), token, key);
        if admitted {
            self.insert(key.clone(), self.entry(key, data, token));
            Counters::add(&self.counters.fills, 1);
        } else {
            Counters::add(&self.counters.stale_fills_rejected, 1);
            crate::metrics::stale_fill_refused(key.namespace().type_name);
            tracing::debug!(target: "cached", %key, "stale fill refused: a commit overtook the load");
        }
        drop(stripe);
        admitted
    }

    /// Fills the main entry of a load and the row entries it carries.
    pub fn fill_loaded(&self, key: &CacheKey, loaded: &Loaded, token: &Token) {
        // Rows first: once the query entry is visible, its rows should be too.
        for (row_key, row) in &loaded.rows {
            self.fill(row_key, EntryData::Row(row.clone()), token);
        }
        match &loaded.reads {
            // A view instance or a page: stored only if nothing it read changed.
            Some(reads) => self.fill_view(key, loaded.data.clone(), reads, token),
            None => self.fill(key, loaded.data.clone(), token),
        };
    }

    /// Whether `data` weighs more than the heaviest entry kept; counted if so.
    pub(super) fn too_large(&self, key: &CacheKey, data: &EntryData) -> bool {
        let heavy = weight::of(key, data) > self.max_entry_bytes;
        if heavy {
            Counters::add(&self.counters.too_large, 1);
        }
        heavy
    }

    /// Stores `entry` under `key`.
    #[inline]
    pub(super) fn insert(&self, key: CacheKey, entry: Entry) {
        self.map.insert(key, entry);
    }

    /// What the entries held weigh in all, in bytes ([`weight::of`]). Bounded by bytes, moka
    /// keeps that sum itself. Bounded by entries, it is estimated: the entry count times the
    /// mean weight of up to [`BYTES_SAMPLE`] entries (moka's iteration follows the keys'
    /// seeded hashes, so they are a random pick), exact for a cache that holds no more.
    /// Either way it lags a removal by moka's pending tasks.
    pub fn bytes(&self) -> u64 {
        if self.by_bytes {
            return self.map.weighted_size();
        }
        let (mut n, mut sum) = (0u64, 0u64);
        for (_, entry) in self.map.iter().take(BYTES_SAMPLE) {
            n += 1;
            sum += u64::from(entry.weight);
        }
        if n == 0 {
            return 0;
        }
        let count = self.map.entry_count().max(n);
        if count == n {
            sum
        } else {
            // Rounded to the nearest byte.
            let scaled = (u128::from(sum) * u128::from(count) + u128::from(n / 2)) / u128::from(n);
            u64::try_from(scaled).unwrap_or(u64::MAX)
        }
    }

    pub(super) fn entry(&self, key: &CacheKey, data: EntryData, token: &Token) -> Entry {
        // A new entry starts cold: warming counts the hits of this fill.
        self.heat.filled(key);
        Entry {
            weight: weight::of(key, &data),
            deadline: self.clock.deadline(ttl_of(key, &data)),
            data,
            stamp: self.stamp(key, token),
            reg: 0,
            filled_s: u32::try_from(self.clock.now_ms() / 1000).unwrap_or(u32::MAX),
        }
    }

    /// The canonical form of `key` for invalidation, if it differs from `key` (see
    /// [`CacheKey::canonical`]).
    #[inline]
    pub(crate) fn canonical(&self, key: &CacheKey) -> Option<CacheKey> {
        if self.fold_text {
            key.canonical()
        } else {
            None
        }
    }

    /// The form under which a view load's read of `key` is recorded: the canonical one.
    pub(crate) fn dependency(&self, key: CacheKey) -> CacheKey {
        self.canonical(&key).unwrap_or(key)
    }

    /// Whether a value of `key` read under `token` is still current: neither `key` nor its
    /// canonical form was changed by an apply since. Locks one stripe at a time.
    pub(crate) fn admits_key(&self, key: &CacheKey, token: &Token) -> bool {
        let canonical_ok = self.canonical(key).is_none_or(|canonical| {
            let stamp = self.stripe(&canonical).stamp();
            self.admits(stamp, token, key)
        });
        let stamp = self.stripe(key).stamp();
        canonical_ok && self.admits(stamp, token, key)
    }

    /// Stores a value under a non-canonical text key (`user?email=Bob@X.com`) and registers it
    /// as a spelling of its canonical key, unless either key changed since `token`.
    fn fill_spelling(
        &self,
        key: &CacheKey,
        canonical: CacheKey,
        data: EntryData,
        token: &Token,
    ) -> bool {
        let index = weight::spelling(key);
        self.fill_registered(
            key,
            data,
            token,
            index,
            || self.admits_key(key, token),
            |reg| self.spellings.register(canonical, key, reg),
        )
    }

    /// Stores an entry that must be registered somewhere (a view instance's reads, a spelling)
    /// atomically with respect to applies: under the apply lock, `current` decides whether
    /// nothing changed since `token`, then `register` records the entry's registration id.
    /// `index` is what the registration costs in its index: the entry weighs it too, so a
    /// cache bounded by bytes bounds its indexes (they are released with the entry).
    fn fill_registered(
        &self,
        key: &CacheKey,
        data: EntryData,
        token: &Token,
        index: u32,
        current: impl FnOnce() -> bool,
        register: impl FnOnce(u64),
    ) -> bool {
        let _serial = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        if !current() {
            Counters::add(&self.counters.stale_fills_rejected, 1);
            crate::metrics::stale_fill_refused(key.namespace().type_name);
            tracing::debug!(target: "cached", %key, "stale fill refused: something it read changed");
            return false;
        }
        self.check_evicted();
        let reg = self.regs.fetch_add(1, SeqCst) + 1;
        register(reg);
        let entry = self.entry(key, data, token);
        let entry = Entry {
            reg,
            weight: entry.weight.saturating_add(index),
            ..entry
        };
        self.insert(key.clone(), entry);
        Counters::add(&self.counters.fills, 1);
        true
    }

    /// Whether nothing a view load read has changed since `token` was taken: no apply touched
    /// any key it read, and no entity it read was bumped since it read it.
    pub(crate) fn reads_current(&self, reads: &ReadSet, token: &Token) -> bool {
        reads.entities().iter().all(|e| {
            e.generation == self.generation(e.meta)
                && e.query_generation == self.query_generation(e.meta)
                && !self.entity_fenced(e.meta, true)
        }) && reads.keys().iter().all(|key| {
            // Recorded in canonical form: the form every apply stamps.
            let stamp = self.stripe(key).stamp();
            stamp < token.seq && self.offline.load(SeqCst) == 0
        })
    }

    /// Stores a view instance if nothing it read changed since `token`, and registers what it
    /// read. Returns whether it was stored.
    fn fill_view(&self, key: &CacheKey, data: EntryData, reads: &ReadSet, token: &Token) -> bool {
        if self.too_large(key, &data) {
            return true;
        }
        let current = || {
            let stamp = self.stripe(key).stamp();
            self.admits(stamp, token, key) && self.reads_current(reads, token)
        };
        let index = weight::dependencies(reads.keys());
        self.fill_registered(key, data, token, index, current, |reg| {
            self.deps.register(key, reads, reg)
        })
    }
}
