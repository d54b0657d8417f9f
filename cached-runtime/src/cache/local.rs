//! The in-process cache layer: moka plus the guard that keeps it from ever going stale.
//!
//! # Why a fill can be stale, and how it is refused
//!
//! A reader misses, reads the database, and stores what it read. If a commit changed that row
//! and applied its invalidation between the read and the store, the reader would put the old
//! value back after the invalidation. Every fill therefore carries a [`Token`] taken before
//! the read. Keys hash onto a fixed array of stripes; each stripe keeps the sequence number of
//! the last commit applied to any of its keys. Under the stripe's lock, a fill is stored only
//! if that stamp is older than its token; a commit applies its changes under the same lock
//! and raises the stamp. Applies are serialized, and the sequence number moves once when an
//! apply starts and once when it ends, so a token taken while a commit is half-applied (whose
//! reader could see some of the commit's cache changes but not others) is refused too. Collisions only cause a few refused fills, never a stale one, and
//! every operation costs O(1) whatever the cache holds.
//!
//! Write-through follows the same rule with the transaction's token: if another commit touched
//! the key after this transaction began, the two may apply in either order, so the entry is
//! dropped instead of written.
//!
//! TTLs are checked against the cache's own coarse clock ([`Clock`]): a hit costs one relaxed
//! load instead of moka's per-entry expiry (measured at ~28 ns per read).
//!
//! `clear()` and whole-entity invalidation bump an epoch / the entity's generation; entries
//! and in-flight loads remember the values they started with and are unreadable once those
//! moved. Neither scans the cache.
//!
//! A view instance depends on everything its load read ([`ReadSet`]), not on one key. Its fill
//! is checked against every key it read (each key's stripe stamp older than the load's token,
//! each entity's generations unchanged) while holding the apply lock, and registers the
//! instance in the [`DepIndex`] in the same critical section; an apply drops the instances
//! registered under the keys it changes. So either the apply runs first and the fill is
//! refused, or the fill runs first and the apply finds and drops the instance.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::Mutex;

use moka::sync::Cache;

use super::clock::Clock;
use super::deps::DepIndex;
use super::heat::Heat;
use super::spellings::Spellings;
use super::weight;
use super::{Bump, Change, EntryData, Token};
use crate::entity::Namespace;
use crate::key::CacheKey;
use crate::registry;
use crate::stats::Counters;
pub(crate) use fence::Fence;
pub(crate) use stripe::Stripe;

const STRIPES: usize = 4096;

/// How keys are hashed, for moka's table and for the stripes: foldhash with a random seed
/// per cache. Measured on the hit path (`benches/cache.rs`, `hit`) against the standard
/// library's SipHash; the seed keeps the table's layout unpredictable to whoever picks the
/// keys (ids from requests).
type KeyHasher = foldhash::quality::RandomState;

/// What moka stores: the data, the stamps it was read under, and when it expires.
#[derive(Clone)]
pub(crate) struct Entry {
    data: EntryData,
    /// The epoch, the entity's generation and, for a query key, its query generation, as the
    /// value was read, added up ([`LocalCache::stamp`]): each of them only grows, so the sum
    /// is unchanged exactly when none of them moved (one word where three were).
    stamp: u64,
    /// [`Clock::now_ms`] deadline from the entity's TTL; `u64::MAX` for none.
    deadline: u64,
    /// For a view instance, its registration in the [`DepIndex`]; for a key that is not its
    /// own canonical form, its registration in [`Spellings`]; 0 otherwise.
    reg: u64,
    /// What the entry costs in bytes ([`weight::of`]).
    weight: u32,
    /// When it was filled, in whole seconds of [`Clock::now_ms`] (in what would otherwise be
    /// padding: it costs no memory). Read by the admin router's lookup.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    filled_s: u32,
}

/// Whether `data` is cached under `key` at all: not a negative entry of an entity declared
/// with `negative_ttl = 0`.
fn keeps(key: &CacheKey, data: &EntryData) -> bool {
    !matches!(data, EntryData::Missing)
        || key.namespace().negative_ttl != Some(std::time::Duration::ZERO)
}

/// How long `data` lives under `key`: a negative entry by its namespace's `negative_ttl` when
/// it has one, anything else by its `ttl`.
fn ttl_of(key: &CacheKey, data: &EntryData) -> Option<std::time::Duration> {
    let namespace = key.namespace();
    match data {
        EntryData::Missing => namespace.negative_ttl.or(namespace.ttl),
        _ => namespace.ttl,
    }
}

/// One entry as [`LocalCache::describe`] shows it.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Described {
    /// Whether a read would be served from it now (not expired, not outdated by an
    /// invalidation of its entity or a clear).
    pub readable: bool,
    /// How long ago it was filled (to the second).
    pub age: std::time::Duration,
    /// How long until its TTL ends; `None`: no TTL.
    pub expires_in: Option<std::time::Duration>,
    /// What it costs in bytes.
    pub bytes: u32,
    /// What it holds.
    pub data: EntryData,
}

/// A way this instance hears of commits made elsewhere. While one is down the cache refuses
/// fills (see [`LocalCache::set_link`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[cfg_attr(not(any(feature = "redis", feature = "feed")), allow(dead_code))]
pub(crate) enum Link {
    /// The Redis broadcast from the other instances.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Broadcast = 1,
    /// The database's change feed.
    #[cfg_attr(not(feature = "feed"), allow(dead_code))]
    Feed = 2,
    /// The broadcast's outbox, read by this instance's relay.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Outbox = 4,
}

/// The in-process layer.
pub(crate) struct LocalCache {
    map: Cache<CacheKey, Entry, KeyHasher>,
    stripes: Box<[Mutex<Stripe>]>,
    hasher: KeyHasher,
    seq: AtomicU64,
    epoch: AtomicU64,
    /// Serializes applies, so that "the sequence number moved since my token" means "an apply
    /// started since my token" and every apply is seen whole.
    apply_lock: Mutex<()>,
    /// Per entity slot: `[2 * slot]` the generation, `[2 * slot + 1]` the query generation.
    generations: Box<[AtomicU64]>,
    /// Per entity slot, like `generations`: another instance's commits under way that bump
    /// the entity (or its queries) ([`Fence`]).
    fenced: Box<[AtomicU32]>,
    protect: bool,
    /// One bit per [`Link`] that is down (a lost broadcast subscription, a change feed that
    /// disconnected): while any is set nothing may be filled, because a commit elsewhere may
    /// have gone unheard.
    offline: AtomicU8,
    /// What each cached view instance read.
    deps: DepIndex,
    /// The cached non-canonical spellings of text keys.
    spellings: Spellings,
    /// The last registration id handed out (views and spellings).
    regs: AtomicU64,
    /// Whether text keys are folded for invalidation (off only to prove, in a test, what the
    /// folding prevents).
    fold_text: bool,
    /// The heaviest entry kept ([`CacheSettings::max_entry_bytes`]).
    max_entry_bytes: u32,
    /// What TTL deadlines are read against.
    clock: Clock,
    /// Hits since their last fill of the entries of warmed namespaces.
    pub heat: Heat,
    /// Whether moka bounds the entries by their weights ([`weight::of`]), and so keeps their
    /// sum.
    by_bytes: bool,
    pub counters: Counters,
}

/// How a [`LocalCache`] is set up.
pub(crate) struct CacheSettings {
    /// The most entries moka holds before it evicts (when not bounded by bytes).
    pub max_entries: u64,
    /// Bound the cache by the entries' weights in bytes instead of their number.
    pub max_bytes: Option<u64>,
    /// The heaviest entry kept.
    pub max_entry_bytes: u32,
    /// Whether stale fills are refused (off only to prove, in a test, what the guard prevents).
    pub protect_fills: bool,
    /// Whether text keys are folded for invalidation (off only in a test, likewise).
    pub fold_text: bool,
    /// What TTL deadlines are read against; `None`: a ticking clock of the cache's own,
    /// started when the cache is built (not before, and not at all for a test's clock).
    pub clock: Option<Clock>,
    /// The slots of the namespaces whose entries are warmed after an invalidation (their
    /// hits are counted).
    pub warm: Vec<usize>,
}

impl LocalCache {
    pub fn new(settings: CacheSettings) -> Self {
        // No eviction listener: with one, moka takes a per-key lock around every removal and
        // insert and calls it in the caller's thread (measured: half of an invalidation).
        // What it would do is done otherwise: an apply releases the registrations it drops
        // itself, registrations release evicted ones as they come across them (see
        // `check_evicted`), and the weight held is moka's own (`bytes`).
        let builder = match settings.max_bytes {
            Some(bytes) => Cache::builder()
                .max_capacity(bytes)
                .weigher(|_key: &CacheKey, entry: &Entry| entry.weight),
            None => Cache::builder().max_capacity(settings.max_entries),
        };
        let map = builder.build_with_hasher(KeyHasher::default());
        LocalCache {
            map,
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            hasher: KeyHasher::default(),
            // Tokens start at 1, above the stripes' initial stamp of 0.
            seq: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            apply_lock: Mutex::new(()),
            generations: (0..2 * registry::slot_count())
                .map(|_| AtomicU64::new(0))
                .collect(),
            fenced: (0..2 * registry::slot_count())
                .map(|_| AtomicU32::new(0))
                .collect(),
            protect: settings.protect_fills,
            offline: AtomicU8::new(0),
            deps: DepIndex::default(),
            spellings: Spellings::default(),
            regs: AtomicU64::new(0),
            fold_text: settings.fold_text,
            max_entry_bytes: settings.max_entry_bytes,
            clock: settings.clock.unwrap_or_else(Clock::ticking),
            heat: Heat::new(&settings.warm),
            by_bytes: settings.max_bytes.is_some(),
            counters: Counters::default(),
        }
    }

    /// The entry under `key`, if present and not outdated by a clear or an entity invalidation.
    #[inline]
    pub fn get(&self, key: &CacheKey) -> Option<EntryData> {
        let entry = self.map.get(key)?;
        let now = self.clock.now_ms();
        let live = entry.deadline == u64::MAX || entry.deadline > now;
        if !live && entry.reg != 0 && self.servable_until(key, &entry) <= now {
            // An expired view instance or text spelling (past any stale-while-revalidate
            // window): drop it now, and what it registered (unless registered again since).
            self.map.invalidate(key);
            self.release(key, entry.reg);
            return None;
        }
        (live && entry.stamp == self.stamp_now(key)).then_some(entry.data)
    }

    /// The value under `key` if it is past its TTL but within its namespace's
    /// stale-while-revalidate window, and nothing else made it unreadable (an invalidated
    /// entry is gone or carries an old generation, so it is never served stale). Views have
    /// no window.
    pub fn stale(&self, key: &CacheKey) -> Option<EntryData> {
        key.namespace().stale_while_revalidate?;
        let entry = self.map.get(key)?;
        (entry.deadline != u64::MAX
            && self.servable_until(key, &entry) > self.clock.now_ms()
            && entry.stamp == self.stamp_now(key))
        .then_some(entry.data)
    }

    /// What an entry of `key` read under `token` is stamped with: the token's epoch and
    /// generation, plus its query generation for a query key. All three counters only grow
    /// and a token holds earlier readings of them (or 0), so an entry's stamp equals
    /// [`LocalCache::stamp_now`] exactly when none moved since its read.
    #[inline]
    pub(super) fn stamp(&self, key: &CacheKey, token: &Token) -> u64 {
        let query = if key.is_query() {
            token.query_generation
        } else {
            0
        };
        token
            .epoch
            .wrapping_add(token.generation)
            .wrapping_add(query)
    }

    /// [`LocalCache::stamp`] of a value of `key` read now.
    #[inline]
    fn stamp_now(&self, key: &CacheKey) -> u64 {
        let meta = key.namespace();
        let query = if key.is_query() {
            self.query_generation(meta)
        } else {
            0
        };
        self.epoch
            .load(SeqCst)
            .wrapping_add(self.generation(meta))
            .wrapping_add(query)
    }

    /// Until when `entry` may be served at all: its deadline, plus its namespace's
    /// stale-while-revalidate window if it has one.
    fn servable_until(&self, key: &CacheKey, entry: &Entry) -> u64 {
        let window = key
            .namespace()
            .stale_while_revalidate
            .map_or(0, |w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
        entry.deadline.saturating_add(window)
    }

    /// Whether a load of `key` is in flight (a refresh need not start another).
    pub fn loading(&self, key: &CacheKey) -> bool {
        self.stripe(key).flights.contains_key(key)
    }

    /// A token to take before reading the database for `meta`'s keys.
    pub fn token(&self, meta: &Namespace) -> Token {
        Token {
            generation: self.generation(meta),
            query_generation: self.query_generation(meta),
            ..self.token_now()
        }
    }

    /// The entity's generation in this cache: bumped by a whole-entity invalidation, it makes
    /// every entry of the entity filled before the bump unreadable at once, without a scan.
    #[inline]
    pub fn generation(&self, meta: &Namespace) -> u64 {
        self.generations[2 * registry::slot(meta)].load(SeqCst)
    }

    /// The entity's query generation: bumped when any of its queries may have changed (a raw
    /// write); its rows stay readable.
    #[inline]
    pub fn query_generation(&self, meta: &Namespace) -> u64 {
        self.generations[2 * registry::slot(meta) + 1].load(SeqCst)
    }

    /// A token for a transaction that may write several entities; each write sets the
    /// generation of its own entity.
    pub fn token_now(&self) -> Token {
        Token {
            seq: self.seq.load(SeqCst),
            epoch: self.epoch.load(SeqCst),
            generation: 0,
            query_generation: 0,
        }
    }

    /// [`LocalCache::apply_fencing`] without a fence.
    #[cfg(test)]
    pub fn apply(&self, changes: &[(CacheKey, Change)], bumps: &[Bump]) -> Vec<CacheKey> {
        self.apply_fencing(changes, bumps, None)
    }

    /// Applies a committed transaction's changes, then drops the view instances that read
    /// anything changed, then the generation bumps (whole-entity and whole-view invalidations,
    /// last so that a load that sees the new generation also sees every rewritten row).
    /// Queries should come before rows in `changes`. Returns the view instances dropped
    /// because they read something changed. With `fence`, also raises a fence over
    /// everything it touches (every stripe it stamps, every entity it bumps) and records it
    /// there (see [`fence`]).
    pub fn apply_fencing(
        &self,
        changes: &[(CacheKey, Change)],
        bumps: &[Bump],
        mut fence: Option<&mut Fence>,
    ) -> Vec<CacheKey> {
        let _serial = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.seq.fetch_add(1, SeqCst) + 1;
        let spellings = self.other_spellings(changes);
        // Each change and its stripe's stamp move together, under the stripe's lock: a fill
        // that reads the stamp after the change finds it raised and is refused (setting the
        // stamps after all of the changes let such a fill put an old value back). A write is
        // checked against the stamps of *other* commits only, the stripe's stamp before this
        // commit first touched it, so that a key of this commit sharing the stripe cannot turn
        // its write-through into a drop.
        for (key, change) in changes {
            let mut stripe = self.fence_stripe(key, fence.as_deref_mut());
            let others = stripe.before(seq);
            match change {
                // Not kept (absence never cached, or too heavy): the old entry goes.
                Change::Write { data, .. } if !keeps(key, data) || self.too_large(key, data) => {
                    self.map.invalidate(key)
                }
                Change::Write { data, token } if self.admits(others, token, key) => {
                    let mut entry = self.entry(key, data.clone(), token);
                    if let Some(canonical) = self.canonical(key) {
                        self.check_evicted();
                        entry.reg = self.regs.fetch_add(1, SeqCst) + 1;
                        entry.weight = entry.weight.saturating_add(weight::spelling(key));
                        self.spellings.register(canonical, key, entry.reg);
                    }
                    self.insert(key.clone(), entry);
                }
                Change::Write { .. } | Change::Remove => self.map.invalidate(key),
            }
            stripe.raise(seq);
        }
        for key in &spellings {
            let mut stripe = self.fence_stripe(key, fence.as_deref_mut());
            self.map.invalidate(key);
            stripe.raise(seq);
        }
        let changed = changes.iter().map(|(key, _)| key).chain(&spellings);
        let dependents = self.deps.take_dependents(changed, bumps);
        for key in &dependents {
            let mut stripe = self.fence_stripe(key, fence.as_deref_mut());
            self.map.invalidate(key);
            stripe.raise(seq);
        }
        for bump in bumps {
            let i = match bump {
                Bump::Entity(meta) => 2 * registry::slot(meta),
                Bump::Queries(meta) => 2 * registry::slot(meta) + 1,
            };
            // Fenced before the bump: a load whose token has the new generation finds the
            // fence up when it stores.
            if let Some(fence) = fence.as_deref_mut() {
                self.fenced[i].fetch_add(1, SeqCst);
                fence.slots.push(i);
            }
            self.generations[i].fetch_add(1, SeqCst);
        }
        self.seq.fetch_add(1, SeqCst);
        dependents
    }

    /// The other keys a change to `changes` reaches through text folding: the canonical form of
    /// each changed key, and every spelling cached under it, minus the changed keys themselves.
    fn other_spellings(&self, changes: &[(CacheKey, Change)]) -> Vec<CacheKey> {
        let mut out: Vec<CacheKey> = Vec::new();
        if !self.fold_text {
            return out;
        }
        let changed = |key: &CacheKey| changes.iter().any(|(k, _)| k == key);
        // A key without text has no other spellings, nor wide forms: nothing to look up (an
        // integer row's invalidation skips the spellings' lock and table).
        for (key, _) in changes.iter().filter(|(key, _)| key.has_text()) {
            let canonical = key.canonical();
            let mut forms = vec![canonical.clone().unwrap_or_else(|| key.clone())];
            forms.extend(key.wide_forms());
            let spelled: Vec<CacheKey> =
                forms.iter().flat_map(|f| self.spellings.take(f)).collect();
            // The forms themselves too: a view that read a spelling is registered under its
            // form, and a fill of one in flight checks its form's stamp.
            for other in forms
                .into_iter()
                .skip(usize::from(canonical.is_none()))
                .chain(spelled)
            {
                if !changed(&other) && !out.contains(&other) {
                    out.push(other);
                }
            }
        }
        out
    }

    /// The bumps that changes with text outside the plain class imply (see
    /// [`crate::collation`]): which spellings of such a value the database calls equal cannot
    /// be listed, so every query of the entity is dropped, and for a text id every entry.
    pub fn wide_bumps(&self, changes: &[(CacheKey, Change)]) -> Vec<Bump> {
        let mut out: Vec<Bump> = Vec::new();
        if !self.fold_text {
            return out;
        }
        for (key, _) in changes.iter().filter(|(key, _)| key.has_wide_text()) {
            let bump = match key.is_query() {
                true => Bump::Queries(key.namespace()),
                false => Bump::Entity(key.namespace()),
            };
            Bump::push(&mut out, bump);
        }
        out
    }

    /// Drops every entry; loads in flight when this is called will not be stored.
    pub fn clear(&self) {
        let _serial = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, SeqCst);
        self.deps.clear();
        self.spellings.clear();
        self.map.invalidate_all();
    }

    /// How many view instances are registered in the dependency index, and how many distinct
    /// keys they read.
    #[cfg(feature = "__testing")]
    pub fn dependency_index_size(&self) -> (usize, usize) {
        self.deps.size()
    }

    /// Marks one link down (everything dropped, nothing filled while any link is down) or
    /// back up (everything dropped again: loads that began while it was down are refused by
    /// the new epoch).
    #[cfg_attr(not(any(feature = "redis", feature = "feed")), allow(dead_code))]
    pub fn set_link(&self, link: Link, up: bool) {
        if up {
            self.clear();
            let was = self.offline.fetch_and(!(link as u8), SeqCst);
            if was & link as u8 != 0 {
                tracing::info!(target: "cached", ?link, "link back: the cache fills again");
            }
        } else {
            let was = self.offline.fetch_or(link as u8, SeqCst);
            self.clear();
            if was & link as u8 == 0 {
                tracing::warn!(
                    target: "cached",
                    ?link,
                    "link lost: cleared, and reads go to the database until it is back"
                );
            }
        }
    }

    /// Up to `n` keys of the entries held, picked evenly at random (reservoir sampling over
    /// one pass, `seed` choosing which).
    pub fn sample_keys(&self, n: usize, seed: u64) -> Vec<CacheKey> {
        let mut seed = seed | 1;
        let mut next = move || {
            // xorshift64: enough to spread a sample, no dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut picked: Vec<CacheKey> = Vec::with_capacity(n);
        for (i, (key, _)) in self.map.iter().enumerate() {
            if picked.len() < n {
                picked.push((*key).clone());
            } else if let Some(slot) = usize::try_from(next() % (i as u64 + 1))
                .ok()
                .filter(|&slot| slot < n)
            {
                picked[slot] = (*key).clone();
            }
        }
        picked
    }

    /// What is cached under `key`, for a debugger: whether it would be served, its data,
    /// its age and time to live, and its weight.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub fn describe(&self, key: &CacheKey) -> Option<Described> {
        let entry = self.map.get(key)?;
        let now = self.clock.now_ms();
        let age_ms = now.saturating_sub(u64::from(entry.filled_s) * 1000);
        Some(Described {
            readable: self.get(key).is_some(),
            age: std::time::Duration::from_millis(age_ms),
            expires_in: (entry.deadline != u64::MAX)
                .then(|| std::time::Duration::from_millis(entry.deadline.saturating_sub(now))),
            bytes: entry.weight,
            data: entry.data,
        })
    }

    /// The number of entries moka holds (including ones not yet evicted after a clear).
    pub fn entry_count(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }

    /// Releases `reg`, the registration of `key`'s entry, which was just dropped outside an
    /// apply: a view instance's reads, or a spelling. A newer registration of the key has
    /// another id and stays.
    fn release(&self, key: &CacheKey, reg: u64) {
        self.deps.release(key, reg);
        if let Some(canonical) = key.canonical() {
            self.spellings.release(&canonical, key, reg);
        }
    }

    /// Checks a few queued registrations of each index for eviction (O(1)). Call it under the
    /// apply lock, before a registration: every registered entry is then stored (fills
    /// register and store under it), so a missing entry is an evicted one.
    pub(super) fn check_evicted(&self) {
        let cached = |key: &CacheKey| self.map.contains_key(key);
        self.deps.check_evicted(cached);
        self.spellings.check_evicted(cached);
    }

    /// Lets moka evict what it is due to, then releases the registrations of every view
    /// instance it no longer holds, at once (for tests of what the index holds).
    #[cfg(any(test, feature = "__testing"))]
    pub fn settle(&self) {
        self.map.run_pending_tasks();
        let _serial = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.deps.sweep(|key| self.map.contains_key(key));
    }
}

mod fence;
mod fill;
mod stripe;
#[cfg(test)]
mod tests;
