//! Writes and transactional reads on a [`Transaction`]: run the statement, then record the
//! cache changes the old and the new row imply.

use std::sync::Arc;

use std::collections::HashSet;

use crate::entity::{CachedEntity, EntityMeta, Patch};
use crate::error::{Error, Result};
use crate::key::Predicate;
use crate::schema::Action;
use crate::store::id_of;
use crate::tx::Transaction;
use crate::value::{KeyPart, KeyValue, Value};

fn not_found<E: CachedEntity>(id: &E::Id) -> Error {
    Error::NotFound {
        entity: E::meta().type_name,
        id: id.key_value().to_string(),
    }
}

impl Transaction {
    /// One row, read through this transaction (sees its own writes; fills nothing).
    pub(crate) async fn read_one<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        let result = self.exec().fetch_by_id::<E>(id).await;
        self.check(result)
    }

    /// A row that must exist, read before a write to compute the old row's tags: locked
    /// (`FOR UPDATE`; SQLite's write transaction is exclusive already), so no other writer can
    /// change it before this one does.
    async fn read_existing<E: CachedEntity>(&mut self, id: &E::Id) -> Result<E> {
        let result = self.exec().fetch_by_id_locked::<E>(id).await;
        self.check(result)?.ok_or_else(|| not_found::<E>(id))
    }

    pub(crate) async fn read_many<E: CachedEntity>(
        &mut self,
        ids: &[E::Id],
    ) -> Result<Vec<Option<Arc<E>>>> {
        let keys: Vec<KeyValue> = ids.iter().map(KeyPart::key_value).collect();
        let result = self.exec().fetch_by_ids::<E>(&keys).await;
        let rows = self.check(result)?;
        Ok(keys
            .iter()
            .map(|id| {
                rows.iter()
                    .find(|row| row.id().key_value() == *id)
                    .map(|row| Arc::new(row.clone()))
            })
            .collect())
    }

    pub(crate) async fn read_where<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
    ) -> Result<Vec<Arc<E>>> {
        let result = self.exec().fetch_where::<E>(predicate).await;
        Ok(self.check(result)?.into_iter().map(Arc::new).collect())
    }

    pub(crate) async fn count_where<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
    ) -> Result<i64> {
        let result = self.exec().count_where::<E>(predicate).await;
        self.check(result)
    }

    /// Inserts rows (one statement per chunk) and records them for write-through.
    pub(crate) async fn insert_rows<E: CachedEntity>(&mut self, rows: &[E]) -> Result<Vec<Arc<E>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.exec().insert(rows).await;
        let stored: Vec<Arc<E>> = self.check(result)?.into_iter().map(Arc::new).collect();
        if stored.len() != rows.len() {
            self.fail();
            return Err(Error::ReadBack {
                entity: E::meta().type_name,
                expected: rows.len(),
                found: stored.len(),
            });
        }
        for row in &stored {
            self.record_insert(row);
        }
        Ok(stored)
    }

    /// Applies a patch. The old row is read first only when the patch assigns a key-forming
    /// field; otherwise no query can have changed and one `UPDATE ... RETURNING` suffices.
    pub(crate) async fn update_row<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        patch: &E::Update,
    ) -> Result<Arc<E>> {
        let assignments = patch.assignments();
        if assignments.is_empty() {
            return Ok(Arc::new(self.read_existing::<E>(id).await?));
        }
        if patch.touches_keys() {
            // Both rows: the old one's tags say which queries the row leaves.
            let result = self.exec().update_keeping_old::<E>(id, assignments).await;
            let (old, new) = self.check(result)?.ok_or_else(|| not_found::<E>(id))?;
            let new = Arc::new(new);
            self.record_write(Some(&old), &new);
            return Ok(new);
        }
        let result = self.exec().update::<E>(id, assignments).await;
        let new = Arc::new(self.check(result)?.ok_or_else(|| not_found::<E>(id))?);
        self.record_write(None, &new);
        Ok(new)
    }

    /// Adds `delta` to an integer column in one statement; the row entry is rewritten with the
    /// returned row, and queries are touched only if the column is key-forming.
    pub(crate) async fn add_to<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        delta: i64,
    ) -> Result<Arc<E>> {
        let old = match E::meta().index_position(column) {
            Some(_) => Some(self.read_existing::<E>(id).await?),
            None => None,
        };
        let result = self.exec().add::<E>(id, column, delta).await;
        let new = Arc::new(self.check(result)?.ok_or_else(|| not_found::<E>(id))?);
        self.record_write(old.as_ref(), &new);
        Ok(new)
    }

    /// Applies a patch to every row matching `predicate`: the matching rows are read (locked)
    /// first, so each updated row invalidates exactly the queries its old and new values
    /// belong to; the rows are read back and written through. Returns them, ordered by id.
    pub(crate) async fn update_where<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
        patch: &E::Update,
    ) -> Result<Vec<Arc<E>>> {
        let result = self.exec().fetch_where_locked::<E>(predicate).await;
        let old = self.check(result)?;
        let assignments = patch.assignments();
        if old.is_empty() || assignments.is_empty() {
            return Ok(old.into_iter().map(Arc::new).collect());
        }
        let ids: Vec<KeyValue> = old.iter().map(id_of).collect();
        let result = self.exec().update_ids::<E>(&ids, assignments).await;
        self.check(result)?;
        let result = self.exec().fetch_by_ids::<E>(&ids).await;
        let mut new = self.check(result)?;
        new.sort_by_key(id_of);
        let before: std::collections::HashMap<KeyValue, &E> =
            ids.into_iter().zip(old.iter()).collect();
        let mut updated = Vec::with_capacity(new.len());
        for row in new {
            let row = Arc::new(row);
            self.record_write(before.get(&id_of(&*row)).copied(), &row);
            updated.push(row);
        }
        Ok(updated)
    }

    /// Appends an item to (or removes it from) a list field in one operation; the cached row
    /// is rewritten with the row as updated.
    pub(crate) async fn list_op<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        item: Value,
        append: bool,
    ) -> Result<Arc<E>> {
        let result = self.exec().list_op::<E>(id, column, item, append).await;
        let new = Arc::new(self.check(result)?.ok_or_else(|| not_found::<E>(id))?);
        // A list is never key-forming: no query can have changed.
        self.record_write(None, &new);
        Ok(new)
    }

    /// Deletes rows by id; returns the rows that existed. Rows that the database changes in
    /// the same statement through foreign keys (`ON DELETE CASCADE` / `SET NULL` / `SET
    /// DEFAULT`, learned from the catalog) are found first and dropped on commit too.
    pub(crate) async fn delete_rows<E: CachedEntity>(&mut self, ids: &[E::Id]) -> Result<Vec<E>> {
        let keys: Vec<KeyValue> = ids.iter().map(KeyPart::key_value).collect();
        let result = self.follow_cascades(E::meta(), keys.clone()).await;
        self.check(result)?;
        let result = self.exec().delete::<E>(&keys).await;
        let deleted = self.check(result)?;
        for row in &deleted {
            self.record_delete(row);
        }
        Ok(deleted)
    }

    /// Locks and records the rows a delete of `meta`'s rows with these ids reaches through
    /// foreign keys, level by level (a cascade's cascades), before the delete runs.
    async fn follow_cascades(
        &mut self,
        meta: &'static EntityMeta,
        ids: Vec<KeyValue>,
    ) -> Result<()> {
        let schema = self.schema.clone();
        let mut work = vec![(meta, ids)];
        let mut seen: HashSet<(usize, KeyValue)> = HashSet::new();
        while let Some((parent, ids)) = work.pop() {
            for cascade in schema.cascades(parent) {
                let found = self
                    .exec()
                    .fetch_ids_where_in(cascade.child, &cascade.column, &ids)
                    .await?;
                let child = std::ptr::from_ref(cascade.child) as usize;
                let fresh: Vec<KeyValue> = found
                    .into_iter()
                    .filter(|id| seen.insert((child, id.clone())))
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                self.record_cascaded(cascade.child, &fresh);
                if cascade.action == Action::Cascade {
                    work.push((cascade.child, fresh));
                }
            }
        }
        Ok(())
    }

    /// Deletes one row that must exist.
    pub(crate) async fn delete_one<E: CachedEntity>(&mut self, id: &E::Id) -> Result<E> {
        let mut deleted = self.delete_rows::<E>(std::slice::from_ref(id)).await?;
        deleted.pop().ok_or_else(|| not_found::<E>(id))
    }
}
