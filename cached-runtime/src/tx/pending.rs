//! The cache changes a transaction has recorded so far, computed from the old and the new row
//! of each write, and applied only when it commits.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::{AnyRow, Bump, Change, EntryData, LocalCache, Token};
use crate::entity::{CachedEntity, EntityMeta};
use crate::graph::{self, views};
use crate::key::CacheKey;
use crate::value::{KeyPart as _, KeyValue, Value};

/// The cache changes recorded so far, last change per key wins, in first-touch order, and
/// whole-entity bumps. Which view instances they reach is decided at apply time, from what
/// each cached instance read.
pub(crate) struct Pending {
    /// Taken after `BEGIN`: a write-through is stored only if no commit touched its key since.
    token: Token,
    order: Vec<CacheKey>,
    changes: HashMap<CacheKey, Change>,
    bumps: Vec<Bump>,
}

impl Pending {
    pub fn new(token: Token) -> Self {
        Pending {
            token,
            order: Vec::new(),
            changes: HashMap::new(),
            bumps: Vec::new(),
        }
    }

    /// The keys recorded so far, in first-touch order.
    pub fn keys(&self) -> &[CacheKey] {
        &self.order
    }

    /// The changes to apply, in first-touch order, and the bumps.
    pub fn into_changes(mut self) -> (Vec<(CacheKey, Change)>, Vec<Bump>) {
        let changes = self
            .order
            .into_iter()
            .filter_map(|key| self.changes.remove(&key).map(|c| (key, c)))
            .collect();
        (changes, self.bumps)
    }

    /// A written row: its entry is rewritten on commit, and the queries whose membership
    /// changed between `old` and `new` are dropped.
    pub fn write<E: CachedEntity>(&mut self, cache: &LocalCache, old: Option<&E>, new: &Arc<E>) {
        let meta = E::meta();
        // With no old row (an update of non-key fields), membership cannot have changed.
        let queries = match old {
            Some(old) => {
                graph::query_keys(meta, Some(&old.index_values()), Some(&new.index_values()))
            }
            None => Vec::new(),
        };
        self.drop_keys(queries);
        let id = new.id().key_value();
        self.wrote(meta, Some(std::slice::from_ref(&id)));
        let key = CacheKey::row(meta, id);
        self.write_row(cache, key, EntryData::Row(AnyRow::row(new.clone())));
    }

    /// An inserted row.
    pub fn insert<E: CachedEntity>(&mut self, cache: &LocalCache, new: &Arc<E>) {
        let meta = E::meta();
        self.drop_keys(graph::query_keys(meta, None, Some(&new.index_values())));
        let id = new.id().key_value();
        self.wrote(meta, Some(std::slice::from_ref(&id)));
        let key = CacheKey::row(meta, id);
        self.write_row(cache, key, EntryData::Row(AnyRow::row(new.clone())));
    }

    /// A deleted row: its entry becomes a negative entry on commit.
    pub fn delete<E: CachedEntity>(&mut self, cache: &LocalCache, old: &E) {
        let meta = E::meta();
        self.drop_keys(graph::query_keys(meta, Some(&old.index_values()), None));
        let id = old.id().key_value();
        self.wrote(meta, Some(std::slice::from_ref(&id)));
        let key = CacheKey::row(meta, id);
        self.write_row(cache, key, EntryData::Missing);
    }

    /// A raw write's declared effect: these rows of `meta` and every query of `meta` (or
    /// every entry of `meta`); the view instances that read any of it follow at apply.
    pub fn touch(&mut self, meta: &'static EntityMeta, ids: Option<Vec<KeyValue>>) {
        match ids {
            Some(ids) => self.cascaded(meta, ids),
            None => {
                Bump::push(&mut self.bumps, Bump::Entity(meta));
                self.wrote(meta, None);
            }
        }
    }

    /// Rows a foreign key's action removes (`ON DELETE CASCADE`) or changes (`SET NULL`,
    /// `null_column`), read before the statement: each drops what a repository write of it
    /// would (its entry, and the queries, counts and pages its old and new values are in),
    /// never every query of the entity. Rows that could not be read (or placed) fall back to
    /// [`Pending::cascaded`].
    pub fn cascaded_rows(
        &mut self,
        meta: &'static EntityMeta,
        ids: Vec<KeyValue>,
        rows: &[Vec<Value>],
        null_column: Option<&str>,
    ) {
        if rows.len() != ids.len() {
            return self.cascaded(meta, ids);
        }
        let mut queries = Vec::new();
        for row in rows {
            let old = graph::row_index_values(meta, row, None);
            let new = match null_column {
                Some(column) => graph::row_index_values(meta, row, Some(column)).map(Some),
                None => Some(None),
            };
            match (old, new) {
                (Some(old), Some(new)) => {
                    queries.extend(graph::query_keys(meta, Some(&old), new.as_deref()));
                }
                _ => return self.cascaded(meta, ids),
            }
        }
        self.drop_keys(queries);
        self.wrote(meta, Some(&ids));
        self.drop_keys(ids.into_iter().map(|id| CacheKey::row(meta, id)).collect());
    }

    /// Rows changed behind the statement (a foreign key's action, a raw write): their entries
    /// are dropped, with every query of their entity (which ones they left is not known
    /// without reading them).
    pub fn cascaded(&mut self, meta: &'static EntityMeta, ids: Vec<KeyValue>) {
        self.wrote(meta, Some(&ids));
        self.drop_keys(ids.into_iter().map(|id| CacheKey::row(meta, id)).collect());
        Bump::push(&mut self.bumps, Bump::Queries(meta));
    }

    /// A write to `meta`'s rows with these ids (`None`: rows not known one by one): views that
    /// declared `reads_all` of it are dropped as a whole, and the other entities over the
    /// same table hear of it.
    fn wrote(&mut self, meta: &'static EntityMeta, ids: Option<&[KeyValue]>) {
        views::coarse_bumps(meta, &mut self.bumps);
        let mut keys = Vec::new();
        match ids {
            Some(ids) => {
                for id in ids {
                    graph::same_table_changes(meta, Some(id), &mut keys, &mut self.bumps);
                }
            }
            None => graph::same_table_changes(meta, None, &mut keys, &mut self.bumps),
        }
        self.drop_keys(keys);
    }

    fn drop_keys(&mut self, keys: Vec<CacheKey>) {
        for key in keys {
            self.record(key, Change::Remove);
        }
    }

    fn write_row(&mut self, cache: &LocalCache, key: CacheKey, data: EntryData) {
        let token = Token {
            generation: cache.generation(key.namespace()),
            query_generation: cache.query_generation(key.namespace()),
            ..self.token
        };
        self.record(key, Change::Write { data, token });
    }

    fn record(&mut self, key: CacheKey, change: Change) {
        if self.changes.insert(key.clone(), change).is_none() {
            self.order.push(key);
        }
    }
}
