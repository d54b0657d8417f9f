//! What a store does for the repository and the view graph, one entity-level operation per
//! method ("the rows of scene where status = draft", "set these columns of scene 42"): built
//! as SQL for the dialect and run through the driver layer, or handed to the MongoDB store.

use super::driver::DbExec;
#[cfg(feature = "mongo")]
use super::mongo;
use super::sql::{Dialect, SqlBuilder};
use super::{id_of, Exec, Store, StoreKind, TxConn};
use crate::entity::{CachedEntity, EntityMeta};
#[cfg(feature = "mongo")]
use crate::error::Error;
use crate::error::Result;
use crate::key::Predicate;
#[cfg(feature = "mongo")]
use crate::value::KeyPart;
use crate::value::{KeyValue, ToValue, Value};

/// The bind parameters of a predicate (none for `All` and for `IS NULL`).
fn predicate_values(predicate: &Predicate) -> Vec<Value> {
    match predicate {
        Predicate::All | Predicate::Eq(_, KeyValue::Null) => Vec::new(),
        Predicate::Eq(_, value) => vec![value.to_value()],
    }
}

/// SQLite allows 32766 bind parameters per statement, PostgreSQL and MySQL 65535.
const MAX_PARAMS: usize = 30_000;

impl Exec<'_> {
    /// The MongoDB executor, when the store is MongoDB.
    #[cfg(feature = "mongo")]
    fn mongo(&mut self) -> Option<mongo::MongoExec<'_>> {
        match self {
            Exec::Pool(Store(StoreKind::Mongo(db))) => Some(mongo::MongoExec::Pool(db)),
            Exec::Tx(TxConn::Mongo(tx)) => Some(mongo::MongoExec::Session(tx)),
            _ => None,
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Exec::Pool(store) => store.dialect(),
            Exec::Tx(tx) => tx.dialect(),
        }
    }

    fn sql<E: CachedEntity>(&self) -> SqlBuilder {
        SqlBuilder::new(E::meta(), self.dialect())
    }

    async fn one<E: CachedEntity>(
        &mut self,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
    ) -> Result<Option<E>> {
        let entity = E::meta().type_name;
        dispatch!(self, x => x.fetch_optional::<E>(entity, sql, values).await)
    }

    async fn all<E: CachedEntity>(
        &mut self,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
    ) -> Result<Vec<E>> {
        let entity = E::meta().type_name;
        dispatch!(self, x => x.fetch_all::<E>(entity, sql, values).await)
    }

    /// The first column of every row, as key values.
    async fn keys(
        &mut self,
        entity: &'static str,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
    ) -> Result<Vec<KeyValue>> {
        dispatch!(self, x => x.fetch_keys(entity, sql, values).await)
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute(
        &mut self,
        entity: &'static str,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
    ) -> Result<u64> {
        #[cfg(feature = "mongo")]
        if self.mongo().is_some() {
            return Err(Error::Unsupported {
                operation: "a raw SQL write",
                store: "MongoDB",
                hint: "write through the generated repository, or use the driver directly and \
                       then invalidate with `ctx.invalidate::<E>(id)`",
            });
        }
        dispatch!(self, x => x.execute(entity, sql, values).await)
    }

    /// The row with this id.
    pub async fn fetch_by_id<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        on_mongo!(self, m => m.fetch_by_id::<E>(&id.key_value()).await);
        let sql = self.sql::<E>().select_by_id();
        self.one(sql, vec![id.to_value()]).await
    }

    /// The row with this id, locked for the rest of the transaction (the old row of a write).
    /// On MongoDB the read is in the transaction's snapshot: a concurrent change of the document
    /// makes this transaction's write of it fail with a retryable `WriteConflict`.
    pub async fn fetch_by_id_locked<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        on_mongo!(self, m => m.fetch_by_id::<E>(&id.key_value()).await);
        let sql = self.sql::<E>().select_by_id_locked();
        self.one(sql, vec![id.to_value()]).await
    }

    /// The rows with these ids, in no particular order (locked if `locked`).
    async fn rows_by_ids<E: CachedEntity>(
        &mut self,
        ids: &[KeyValue],
        locked: bool,
    ) -> Result<Vec<E>> {
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = self.sql::<E>().select_by_ids(chunk.len(), locked);
            let values = chunk.iter().map(KeyValue::to_value).collect();
            rows.extend(self.all::<E>(sql, values).await?);
        }
        Ok(rows)
    }

    /// The rows with these ids, in no particular order.
    pub async fn fetch_by_ids<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        on_mongo!(self, m => m.fetch_by_ids::<E>(ids).await);
        self.rows_by_ids(ids, false).await
    }

    /// The ids of the rows of `meta` whose `column` is one of `values`, locked: the rows a
    /// cascade from the parents with these ids reaches.
    pub async fn fetch_ids_where_in(
        &mut self,
        meta: &'static EntityMeta,
        column: &str,
        values: &[KeyValue],
    ) -> Result<Vec<KeyValue>> {
        // MongoDB has no foreign keys, so nothing cascades.
        on_mongo!(self, _m => Ok(Vec::new()));
        let mut ids = Vec::new();
        for chunk in values.chunks(MAX_PARAMS) {
            let sql =
                SqlBuilder::new(meta, self.dialect()).select_ids_where_in(column, chunk.len());
            let values = chunk.iter().map(KeyValue::to_value).collect();
            ids.extend(self.keys(meta.type_name, sql, values).await?);
        }
        Ok(ids)
    }

    /// The rows matching `predicate`, ordered by id.
    pub async fn fetch_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<Vec<E>> {
        on_mongo!(self, m => m.fetch_where::<E>(predicate).await);
        let sql = self.sql::<E>().select(predicate);
        self.all(sql, predicate_values(predicate)).await
    }

    /// The number of rows matching `predicate`.
    pub async fn count_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<i64> {
        on_mongo!(self, m => m.count_where::<E>(predicate).await);
        let sql = self.sql::<E>().count(predicate);
        let values = predicate_values(predicate);
        let entity = E::meta().type_name;
        dispatch!(self, x => x.fetch_count(entity, sql, values).await)
    }

    /// Inserts rows and returns them as stored.
    pub async fn insert<E: CachedEntity>(&mut self, rows: &[E]) -> Result<Vec<E>> {
        on_mongo!(self, m => m.insert::<E>(rows).await);
        let width = E::meta().columns.len().max(1);
        let mut stored = Vec::with_capacity(rows.len());
        for chunk in rows.chunks((MAX_PARAMS / width).max(1)) {
            let sql = self.sql::<E>().insert(chunk.len());
            let values = chunk.iter().flat_map(CachedEntity::values).collect();
            if self.dialect().has_returning() {
                stored.extend(self.all::<E>(sql, values).await?);
            } else {
                self.execute(E::meta().type_name, sql, values).await?;
                let ids: Vec<KeyValue> = chunk.iter().map(id_of).collect();
                stored.extend(self.rows_by_ids::<E>(&ids, false).await?);
            }
        }
        Ok(stored)
    }

    /// Runs an `UPDATE` of one row and returns the row as updated, or `None` if it is absent.
    async fn update_returning<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
    ) -> Result<Option<E>> {
        if self.dialect().has_returning() {
            return self.one(sql, values).await;
        }
        // No RETURNING: update, then read the row back inside the same transaction.
        self.execute(E::meta().type_name, sql, values).await?;
        self.fetch_by_id::<E>(id).await
    }

    /// Assigns columns of one row and returns the row as updated, or `None` if it is absent.
    pub async fn update<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<Option<E>> {
        on_mongo!(self, m => m.update::<E>(&id.key_value(), assignments).await);
        let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
        let sql = self.sql::<E>().update(&columns);
        let mut values: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
        values.push(id.to_value());
        self.update_returning(id, sql, values).await
    }

    /// Assigns columns of one row and returns the row before and after, or `None` if it is
    /// absent. SQL: the old row is read `FOR UPDATE`, then updated. MongoDB: one
    /// `findOneAndUpdate` returning the document before the `$set`, which is then applied to
    /// it locally (a `$set` of known values is exactly reproducible), so one round trip.
    pub async fn update_keeping_old<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<Option<(E, E)>> {
        on_mongo!(self, m => m.update_keeping_old::<E>(&id.key_value(), assignments).await);
        let Some(old) = self.fetch_by_id_locked::<E>(id).await? else {
            return Ok(None);
        };
        let new = self.update::<E>(id, assignments).await?;
        Ok(new.map(|new| (old, new)))
    }

    /// Adds `delta` to an integer column in one statement; returns the updated row.
    pub async fn add<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        delta: i64,
    ) -> Result<Option<E>> {
        on_mongo!(self, m => m.add::<E>(&id.key_value(), column, delta).await);
        let sql = self.sql::<E>().add(column);
        let values = vec![Value::Int(delta), id.to_value()];
        self.update_returning(id, sql, values).await
    }

    /// The rows matching `predicate`, locked for the rest of the transaction (the old rows of
    /// a bulk update). Rows that stopped matching before the lock was taken are left out.
    pub async fn fetch_where_locked<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
    ) -> Result<Vec<E>> {
        // MongoDB: the snapshot read is enough (a concurrent change makes the write conflict).
        on_mongo!(self, m => m.fetch_where::<E>(predicate).await);
        let candidates: Vec<KeyValue> = self
            .fetch_where::<E>(predicate)
            .await?
            .iter()
            .map(id_of)
            .collect();
        let mut rows = self.rows_by_ids::<E>(&candidates, true).await?;
        if let Predicate::Eq(position, value) = predicate {
            rows.retain(|row| row.index_values()[*position] == *value);
        }
        rows.sort_by_key(id_of);
        Ok(rows)
    }

    /// Assigns columns on every row with one of these ids (the caller reads the rows back).
    pub async fn update_ids<E: CachedEntity>(
        &mut self,
        ids: &[KeyValue],
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<()> {
        on_mongo!(self, m => m.update_ids::<E>(ids, assignments).await);
        let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
        let set: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
        for chunk in ids.chunks(500) {
            let sql = self.sql::<E>().update_ids(&columns, chunk.len());
            let mut values = set.clone();
            values.extend(chunk.iter().map(KeyValue::to_value));
            self.execute(E::meta().type_name, sql, values).await?;
        }
        Ok(())
    }

    /// Appends `item` to (or removes every item equal to it from) a list column of one row and
    /// returns the row as updated. MongoDB does it in place (`$push` / `$pull`); a SQL store
    /// reads the row under its lock, edits the list and writes it back.
    pub async fn list_op<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        item: Value,
        append: bool,
    ) -> Result<Option<E>> {
        on_mongo!(self, m => m.list_op::<E>(&id.key_value(), column, item, append).await);
        let Some(row) = self.fetch_by_id_locked::<E>(id).await? else {
            return Ok(None);
        };
        let position = E::meta()
            .columns
            .iter()
            .position(|c| *c == column)
            .expect("a list field is a column");
        let Value::List(mut items) = row.values().swap_remove(position) else {
            unreachable!("`{column}` is a list field");
        };
        match append {
            true => items.push(item),
            false => items.retain(|i| *i != item),
        }
        self.update::<E>(id, vec![(column, Value::List(items))])
            .await
    }

    /// Deletes rows by id and returns the deleted rows.
    pub async fn delete<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        on_mongo!(self, m => m.delete::<E>(ids).await);
        let mut deleted = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = self.sql::<E>().delete(chunk.len());
            let values: Vec<Value> = chunk.iter().map(KeyValue::to_value).collect();
            if self.dialect().has_returning() {
                deleted.extend(self.all::<E>(sql, values).await?);
            } else {
                // No RETURNING: lock and read the rows, then delete them.
                let rows = self.rows_by_ids::<E>(chunk, true).await?;
                self.execute(E::meta().type_name, sql, values).await?;
                deleted.extend(rows);
            }
        }
        Ok(deleted)
    }
}
