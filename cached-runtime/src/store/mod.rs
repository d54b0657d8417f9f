//! Stores: where rows really live. One module per backend behind its cargo feature; this module
//! turns an entity-level operation ("the rows of scene where status = draft") into the
//! backend's statement and runs it on a pool or inside a transaction.
//!
//! Generated code never sees a driver type: it hands over [`Value`]s and gets entities back.
//! Dialect differences (placeholders, quoting, `RETURNING`, row locks) live in [`sql`] and in
//! the write paths below, never in generated code.

mod driver;
#[cfg(feature = "mongo")]
pub(crate) mod mongo;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

#[cfg(not(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "mongo"
)))]
compile_error!("cached-runtime needs a store: enable `sqlite`, `postgres`, `mysql` or `mongo`");

use driver::DbExec;

use crate::entity::{CachedEntity, EntityMeta};
use crate::error::{Error, Result};
use crate::key::Predicate;
use crate::value::{KeyPart, KeyValue, ToValue, Value};
use sql::{Dialect, SqlBuilder};

macro_rules! row_decode {
    ($feature:literal, $name:ident, $row:ty) => {
        #[cfg(feature = $feature)]
        #[doc(hidden)]
        #[diagnostic::on_unimplemented(
            message = "`{Self}` cannot be decoded from a database row",
            note = "add `#[derive(sqlx::FromRow)]` to `{Self}` (fields marked `#[cache(skip)]` also need `#[sqlx(skip)]`)"
        )]
        pub trait $name: for<'r> sqlx::FromRow<'r, $row> {}
        #[cfg(feature = $feature)]
        impl<T: for<'r> sqlx::FromRow<'r, $row>> $name for T {}
        #[cfg(not(feature = $feature))]
        #[doc(hidden)]
        pub trait $name {}
        #[cfg(not(feature = $feature))]
        impl<T> $name for T {}
    };
}

row_decode!("sqlite", SqliteRowDecode, sqlx::sqlite::SqliteRow);
row_decode!("postgres", PgRowDecode, sqlx::postgres::PgRow);
row_decode!("mysql", MySqlRowDecode, sqlx::mysql::MySqlRow);

#[cfg(feature = "mongo")]
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from a MongoDB document",
    note = "add `#[derive(serde::Deserialize)]` to `{Self}` (the `mongo` feature is enabled)"
)]
pub trait MongoDecode: serde::de::DeserializeOwned {}
#[cfg(feature = "mongo")]
impl<T: serde::de::DeserializeOwned> MongoDecode for T {}
#[cfg(not(feature = "mongo"))]
#[doc(hidden)]
pub trait MongoDecode {}
#[cfg(not(feature = "mongo"))]
impl<T> MongoDecode for T {}

/// A type that every enabled store can decode rows into: `sqlx::FromRow` for each enabled SQL
/// backend's rows (`#[derive(sqlx::FromRow)]` provides all of them at once), and
/// `serde::Deserialize` when the `mongo` store is enabled.
pub trait RowDecode: SqliteRowDecode + PgRowDecode + MySqlRowDecode + MongoDecode {}
impl<T: SqliteRowDecode + PgRowDecode + MySqlRowDecode + MongoDecode> RowDecode for T {}

/// A database the cache sits in front of. Build one from a driver pool:
/// `Store::from(sqlite_pool)`, `Store::from(pg_pool)`, `Store::from(mysql_pool)`, or from a
/// MongoDB database handle: `Store::from(client.database("studio"))`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// A MySQL / MariaDB pool.
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
    /// A MongoDB database (its client must reach a replica set or a sharded cluster:
    /// writes run in multi-document transactions).
    #[cfg(feature = "mongo")]
    Mongo(mongodb::Database),
}

#[cfg(feature = "mongo")]
impl From<mongodb::Database> for Store {
    fn from(db: mongodb::Database) -> Self {
        Store::Mongo(db)
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Store {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Store::Sqlite(pool)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Store {
    fn from(pool: sqlx::PgPool) -> Self {
        Store::Postgres(pool)
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for Store {
    fn from(pool: sqlx::MySqlPool) -> Self {
        Store::MySql(pool)
    }
}

impl Store {
    fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Store::MySql(_) => Dialect::MySql,
            #[cfg(feature = "mongo")]
            Store::Mongo(_) => unreachable!("MongoDB operations never build SQL"),
        }
    }

    /// Whether view chains must be walked again after a commit: the store cannot hold a shared
    /// lock on the intermediate rows during the transaction (MongoDB).
    pub(crate) fn needs_chain_recheck(&self) -> bool {
        #[cfg(feature = "mongo")]
        if let Store::Mongo(_) = self {
            return true;
        }
        false
    }

    /// Opens a database transaction.
    pub(crate) async fn begin(&self) -> Result<TxConn> {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => Ok(TxConn::Sqlite(sqlite::begin(pool).await?)),
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => Ok(TxConn::Postgres(postgres::begin(pool).await?)),
            #[cfg(feature = "mysql")]
            Store::MySql(pool) => Ok(TxConn::MySql(mysql::begin(pool).await?)),
            #[cfg(feature = "mongo")]
            Store::Mongo(db) => Ok(TxConn::Mongo(Box::new(mongo::begin(db).await?))),
        }
    }
}

/// An open database transaction.
pub(crate) enum TxConn {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteTx),
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgTx),
    #[cfg(feature = "mysql")]
    MySql(mysql::MySqlTx),
    #[cfg(feature = "mongo")]
    Mongo(Box<mongo::MongoTx>),
}

macro_rules! each_tx {
    ($conn:expr, $tx:ident => $body:expr) => {
        match $conn {
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite($tx) => $body,
            #[cfg(feature = "postgres")]
            TxConn::Postgres($tx) => $body,
            #[cfg(feature = "mysql")]
            TxConn::MySql($tx) => $body,
            #[cfg(feature = "mongo")]
            TxConn::Mongo(_) => unreachable!("handled by the MongoDB store"),
        }
    };
}

impl TxConn {
    fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            TxConn::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            TxConn::MySql(_) => Dialect::MySql,
            #[cfg(feature = "mongo")]
            TxConn::Mongo(_) => unreachable!("MongoDB operations never build SQL"),
        }
    }

    /// Commits. An [`Error::Conflict`] means the database aborted the transaction (nothing
    /// was written); any other error leaves the outcome unknown.
    pub async fn commit(self) -> Result<()> {
        match self {
            #[cfg(feature = "mongo")]
            TxConn::Mongo(tx) => tx.commit().await,
            #[allow(unreachable_patterns)]
            sql => {
                each_tx!(sql, tx => tx.commit().await.map_err(|e| Error::from_sqlx("transaction", e)))
            }
        }
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            #[cfg(feature = "mongo")]
            TxConn::Mongo(tx) => tx.rollback().await,
            #[allow(unreachable_patterns)]
            sql => each_tx!(sql, tx => tx.rollback().await.map_err(Error::Database)),
        }
    }
}

/// Where a statement runs: the store's pool, or an open transaction.
pub(crate) enum Exec<'a> {
    Pool(&'a Store),
    Tx(&'a mut TxConn),
}

/// Runs `$body` with `$x` bound to the backend's [`DbExec`].
macro_rules! dispatch {
    ($exec:expr, $x:ident => $body:expr) => {
        match $exec {
            #[cfg(feature = "sqlite")]
            Exec::Pool(Store::Sqlite(pool)) => {
                let mut $x = DbExec::<sqlx::Sqlite>::Pool(pool);
                $body
            }
            #[cfg(feature = "sqlite")]
            Exec::Tx(TxConn::Sqlite(tx)) => {
                let mut $x = DbExec::<sqlx::Sqlite>::Conn(&mut **tx);
                $body
            }
            #[cfg(feature = "postgres")]
            Exec::Pool(Store::Postgres(pool)) => {
                let mut $x = DbExec::<sqlx::Postgres>::Pool(pool);
                $body
            }
            #[cfg(feature = "postgres")]
            Exec::Tx(TxConn::Postgres(tx)) => {
                let mut $x = DbExec::<sqlx::Postgres>::Conn(&mut **tx);
                $body
            }
            #[cfg(feature = "mysql")]
            Exec::Pool(Store::MySql(pool)) => {
                let mut $x = DbExec::<sqlx::MySql>::Pool(pool);
                $body
            }
            #[cfg(feature = "mysql")]
            Exec::Tx(TxConn::MySql(tx)) => {
                let mut $x = DbExec::<sqlx::MySql>::Conn(&mut **tx);
                $body
            }
            #[cfg(feature = "mongo")]
            Exec::Pool(Store::Mongo(_)) | Exec::Tx(TxConn::Mongo(_)) => {
                unreachable!("handled by the MongoDB store")
            }
        }
    };
}

/// Returns `$body` with `$m` bound to the MongoDB executor when the store is MongoDB.
macro_rules! on_mongo {
    ($self:ident, $m:ident => $body:expr) => {
        #[cfg(feature = "mongo")]
        if let Some(mut $m) = $self.mongo() {
            return $body;
        }
    };
}

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
            Exec::Pool(Store::Mongo(db)) => Some(mongo::MongoExec::Pool(db)),
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

    /// One key-forming column of the row with this id (a foreign key followed by the view
    /// graph), or `None` if the row does not exist.
    pub async fn fetch_column(
        &mut self,
        meta: &'static EntityMeta,
        column: &'static str,
        id: &KeyValue,
    ) -> Result<Option<KeyValue>> {
        on_mongo!(self, m => m.fetch_column(meta, column, id).await);
        let sql = SqlBuilder::new(meta, self.dialect()).select_column(column);
        let values = vec![id.to_value()];
        dispatch!(self, x => x.fetch_key_value(meta.type_name, sql, values).await)
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

    /// Assigns columns on every row with one of these ids; returns how many rows matched.
    pub async fn update_ids<E: CachedEntity>(
        &mut self,
        ids: &[KeyValue],
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<u64> {
        on_mongo!(self, m => m.update_ids::<E>(ids, assignments).await);
        let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
        let set: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
        let mut matched = 0;
        for chunk in ids.chunks(500) {
            let sql = self.sql::<E>().update_ids(&columns, chunk.len());
            let mut values = set.clone();
            values.extend(chunk.iter().map(KeyValue::to_value));
            matched += self.execute(E::meta().type_name, sql, values).await?;
        }
        Ok(matched)
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

/// The id of a row as a key part.
pub(crate) fn id_of<E: CachedEntity>(row: &E) -> KeyValue {
    row.id().key_value()
}
