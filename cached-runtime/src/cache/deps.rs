//! What each cached view instance read, and which instances a change reaches.
//!
//! A view loader may read anything its `ViewCtx` offers: rows of other keys, shop-wide counts,
//! queries it builds from what it read before. Which instances a write changes therefore cannot
//! be derived from the types alone. Instead every view load records its [`ReadSet`] (the row,
//! query and count keys it read, and the generation of each entity when it first read it), and
//! the [`DepIndex`] maps each of those keys back to the instances that read it. An apply that
//! changes a key (a commit, a manual call, a broadcast) drops exactly the instances registered
//! under it; a whole-entity bump drops every instance that read the entity.
//!
//! The index holds the instances that are cached, and for a while some that moka evicted: a
//! registration is released when its entry is dropped by an apply or replaced by a newer load,
//! and an evicted one when a later registration comes across it. moka runs no eviction
//! listener (one would put a per-key lock on every removal, half of an invalidation's cost);
//! instead the registrations wait in a queue, and each new registration first checks the
//! next [`CHECKS`] of them: a live one goes to the back, an evicted one is released. That is
//! O(1) per registration with no pause, and an evicted registration is found within a third
//! of a turn of the queue, so the index holds at most about 1.5 times what the cached
//! instances registered. A leftover registration only makes a change drop a key that is no
//! longer cached. A view hit never touches the index.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::Bump;
use crate::entity::Namespace;
use crate::key::CacheKey;

/// The keys one view load read, and the generations it read each entity under.
#[derive(Clone, Default, Debug)]
pub(crate) struct ReadSet {
    /// Row, query and count keys, without duplicates.
    keys: Vec<CacheKey>,
    /// Each entity read, with its generation and query generation when first read.
    entities: Vec<EntityRead>,
}

/// An entity a view load read, and the generations it read it under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntityRead {
    pub meta: &'static Namespace,
    pub generation: u64,
    pub query_generation: u64,
}

impl ReadSet {
    /// Notes that the load is about to read `meta`; `generations` gives its current
    /// `(generation, query generation)`, taken only the first time.
    pub fn entity(&mut self, meta: &'static Namespace, generations: impl FnOnce() -> (u64, u64)) {
        if !self.entities.iter().any(|e| std::ptr::eq(e.meta, meta)) {
            let (generation, query_generation) = generations();
            self.entities.push(EntityRead {
                meta,
                generation,
                query_generation,
            });
        }
    }

    /// Notes that the load read `key` (in its canonical form, see `CacheKey::canonical`:
    /// every apply stamps and looks up the canonical form of each key it changes).
    pub fn key(&mut self, key: CacheKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// The keys read.
    pub fn keys(&self) -> &[CacheKey] {
        &self.keys
    }

    /// The entities read, with their generations.
    pub fn entities(&self) -> &[EntityRead] {
        &self.entities
    }
}

/// One cached view instance's registration.
struct Registration {
    /// Matches the `reg` of the cache entry it was made for (see [`DepIndex::release`]).
    id: u64,
    keys: Box<[CacheKey]>,
    /// Addresses of the entities it read rows of, and of those it read queries of.
    row_entities: Box<[usize]>,
    query_entities: Box<[usize]>,
}

#[derive(Default)]
struct Index {
    /// Dependency key -> the instances that read it.
    by_key: HashMap<CacheKey, HashSet<CacheKey>>,
    /// Entity -> the instances that read any of its rows (dropped by a whole-entity bump).
    by_rows_of: HashMap<usize, HashSet<CacheKey>>,
    /// Entity -> the instances that read any of its queries or counts (dropped by a
    /// whole-entity or a query bump).
    by_queries_of: HashMap<usize, HashSet<CacheKey>>,
    /// Instance -> what it registered.
    views: HashMap<CacheKey, Registration>,
    /// Every registration (instance and id), in the order they are checked for eviction;
    /// ids no longer registered are skipped and dropped.
    queue: VecDeque<(CacheKey, u64)>,
}

/// How many queued registrations each new registration checks for eviction: more than one,
/// so that the queue also drains the entries of registrations an apply released.
pub(crate) const CHECKS: usize = 3;

/// The reverse index from what view instances read to the instances.
#[derive(Default)]
pub(crate) struct DepIndex {
    index: Mutex<Index>,
}

fn addr(meta: &'static Namespace) -> usize {
    std::ptr::from_ref(meta) as usize
}

// A key hashes its entity by address, never through the entity's mutable state.
#[allow(clippy::mutable_key_type)]
fn unlink(map: &mut HashMap<CacheKey, HashSet<CacheKey>>, dep: &CacheKey, view: &CacheKey) {
    if let Some(set) = map.get_mut(dep) {
        set.remove(view);
        if set.is_empty() {
            map.remove(dep);
        }
    }
}

fn unlink_entity(map: &mut HashMap<usize, HashSet<CacheKey>>, entity: usize, view: &CacheKey) {
    if let Some(set) = map.get_mut(&entity) {
        set.remove(view);
        if set.is_empty() {
            map.remove(&entity);
        }
    }
}

impl Index {
    fn unregister(&mut self, view: &CacheKey) -> bool {
        let Some(reg) = self.views.remove(view) else {
            return false;
        };
        for dep in reg.keys.iter() {
            unlink(&mut self.by_key, dep, view);
        }
        for &entity in reg.row_entities.iter() {
            unlink_entity(&mut self.by_rows_of, entity, view);
        }
        for &entity in reg.query_entities.iter() {
            unlink_entity(&mut self.by_queries_of, entity, view);
        }
        true
    }
}

impl DepIndex {
    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `view` as having read `reads`, replacing any earlier registration of it;
    /// `id` is the registration id stored in its cache entry.
    pub fn register(&self, view: &CacheKey, reads: &ReadSet, id: u64) {
        let mut index = self.lock();
        index.unregister(view);
        index.queue.push_back((view.clone(), id));
        let mut row_entities: Vec<usize> = Vec::new();
        let mut query_entities: Vec<usize> = Vec::new();
        for dep in reads.keys() {
            index
                .by_key
                .entry(dep.clone())
                .or_default()
                .insert(view.clone());
            let (list, map) = if dep.is_query() {
                (&mut query_entities, &mut index.by_queries_of)
            } else {
                (&mut row_entities, &mut index.by_rows_of)
            };
            let entity = addr(dep.namespace());
            if !list.contains(&entity) {
                list.push(entity);
                map.entry(entity).or_default().insert(view.clone());
            }
        }
        index.views.insert(
            view.clone(),
            Registration {
                id,
                keys: reads.keys().into(),
                row_entities: row_entities.into(),
                query_entities: query_entities.into(),
            },
        );
    }

    /// Removes and returns the instances that read any of `changed` or anything a bump
    /// reaches. Instances that are themselves in `changed` are unregistered, not returned.
    pub fn take_dependents<'a>(
        &self,
        changed: impl IntoIterator<Item = &'a CacheKey>,
        bumps: &[Bump],
    ) -> Vec<CacheKey> {
        let mut index = self.lock();
        if index.views.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<CacheKey> = Vec::new();
        let mut direct: Vec<&CacheKey> = Vec::new();
        for key in changed {
            direct.push(key);
            if let Some(readers) = index.by_key.get(key) {
                found.extend(readers.iter().cloned());
            }
        }
        for bump in bumps {
            let (meta, maps) = match bump {
                Bump::Entity(meta) => (meta, [true, true]),
                Bump::Queries(meta) => (meta, [false, true]),
            };
            if maps[0] {
                if let Some(readers) = index.by_rows_of.get(&addr(meta)) {
                    found.extend(readers.iter().cloned());
                }
            }
            if let Some(readers) = index.by_queries_of.get(&addr(meta)) {
                found.extend(readers.iter().cloned());
            }
        }
        for key in direct {
            index.unregister(key);
        }
        found.retain(|view| index.unregister(view));
        found
    }

    /// Releases `view`'s registration if it is still the one with this id (its entry was
    /// evicted; a newer load may have registered again meanwhile).
    pub fn release(&self, view: &CacheKey, id: u64) {
        let mut index = self.lock();
        if index.views.get(view).is_some_and(|r| r.id == id) {
            index.unregister(view);
        }
    }

    /// Checks the next [`CHECKS`] queued registrations: one whose instance is still `cached`
    /// goes to the back of the queue, one whose instance is not (evicted) is released. Call
    /// it where no fill can be between its registration and its store (under the cache's
    /// apply lock, before a new registration): such an instance would look evicted.
    pub fn check_evicted(&self, cached: impl Fn(&CacheKey) -> bool) {
        let mut index = self.lock();
        for _ in 0..CHECKS {
            let Some((view, id)) = index.queue.pop_front() else {
                return;
            };
            if index.views.get(&view).is_some_and(|r| r.id == id) {
                if cached(&view) {
                    index.queue.push_back((view, id));
                } else {
                    index.unregister(&view);
                }
            }
        }
    }

    /// Releases the registration of every instance that is no longer `cached`, at once (a
    /// test's way to see what the index holds for what is cached; the cache itself checks a
    /// few at a time, [`DepIndex::check_evicted`]). Same condition as that.
    #[cfg(any(test, feature = "__testing"))]
    pub fn sweep(&self, cached: impl Fn(&CacheKey) -> bool) {
        let mut index = self.lock();
        let gone: Vec<CacheKey> = index
            .views
            .keys()
            .filter(|view| !cached(view))
            .cloned()
            .collect();
        for view in &gone {
            index.unregister(view);
        }
    }

    /// Forgets every registration (the cache was cleared).
    pub fn clear(&self) {
        *self.lock() = Index::default();
    }

    /// Whether `view` is registered.
    #[cfg(test)]
    pub fn registered(&self, view: &CacheKey) -> bool {
        self.lock().views.contains_key(view)
    }

    /// How many instances are registered and how many dependency keys they hold.
    #[cfg(any(test, feature = "__testing"))]
    pub fn size(&self) -> (usize, usize) {
        let index = self.lock();
        (index.views.len(), index.by_key.len())
    }
}
