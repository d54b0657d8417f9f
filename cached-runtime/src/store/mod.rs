//! Stores: where rows really live. A store is one implementation of the [`backend`] traits
//! (the sqlx family in [`sql`], generic over the driver; MongoDB in `mongo`), each behind its
//! cargo feature; above this module nothing names a driver.
//!
//! Generated code never sees a driver type: it hands over [`Value`](crate::Value)s and gets
//! entities back ([`CachedEntity::from_values`]). [`Exec`] is the typed face the repository
//! and the transaction use: each method runs one entity-level operation and decodes its rows.

mod backend;
pub(crate) mod catalog;
#[cfg(feature = "mongo")]
mod mongo;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;

#[cfg(not(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "mongo"
)))]
compile_error!("cached-runtime needs a store: enable `sqlite`, `postgres`, `mysql` or `mongo`");

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) use backend::{id_position, key_of, Ops, TxOps};
use backend::{Backend, Row};
pub(crate) use catalog::{Action, Catalog};

use crate::entity::{CachedEntity, EntityMeta, OrderMeta};
use crate::error::{Error, Result};
use crate::key::Predicate;
use crate::value::{DecodeError, FromValue, KeyPart, KeyValue, Value};

/// A database the cache sits in front of. Build one from a driver pool:
/// `Store::from(sqlite_pool)`, `Store::from(pg_pool)`, `Store::from(mysql_pool)`, or from a
/// MongoDB database handle: `Store::from(client.database("studio"))`. Usually implicit:
/// `Context::new(pool)`.
///
/// Opaque on purpose: the pool inside is reachable only through
/// [`Store::raw_unchecked`], whose name marks every place that could write behind the cache.
///
/// A MongoDB database's client must reach a replica set or a sharded cluster (writes run in
/// multi-document transactions):
///
/// ```no_run
/// # #[cfg(feature = "mongo")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = mongodb::Client::with_uri_str("mongodb://db0,db1,db2/?replicaSet=rs0").await?;
/// let ctx = cached_runtime::Context::new(client.database("studio"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Store(Arc<dyn Backend>);

/// The driver handle behind a [`Store`], from [`Store::raw_unchecked`]. Anything written
/// through it bypasses the cache: nothing is invalidated, on this instance or any other.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum RawStore<'a> {
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(&'a sqlx::SqlitePool),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(&'a sqlx::PgPool),
    /// A MySQL / MariaDB pool.
    #[cfg(feature = "mysql")]
    MySql(&'a sqlx::MySqlPool),
    /// A MongoDB database.
    #[cfg(feature = "mongo")]
    Mongo(&'a mongodb::Database),
}

impl Store {
    /// The backend's name: `SQLite`, `PostgreSQL`, `MySQL/MariaDB` or `MongoDB`.
    pub fn backend(&self) -> &'static str {
        self.0.name()
    }

    /// The driver pool (or MongoDB database) behind the cache: the escape hatch, for reads
    /// the repository cannot express, migrations and tests. **Writes through it bypass the
    /// cache**: nothing is invalidated and cached entries keep the old values until their TTL.
    /// Write through a transaction's `raw_write(...).touches::<E>(...)` instead, or call
    /// `ctx.invalidate...` after such a write. Grep for `raw_unchecked` to audit every use.
    pub fn raw_unchecked(&self) -> RawStore<'_> {
        self.0.raw()
    }

    /// The untyped operations outside any transaction: for tables no entity describes (the
    /// broadcast's outbox), and for the auditor's reads.
    pub(crate) fn ops(&self) -> Box<dyn Ops + '_> {
        self.0.ops()
    }

    /// Operations outside any transaction (cache fills).
    pub(crate) fn exec(&self) -> Exec<'_> {
        Exec(self.0.ops())
    }

    /// Opens a database transaction. The future owns what it needs, so it can run to its end
    /// on a task of its own.
    pub(crate) fn begin(
        &self,
    ) -> impl std::future::Future<Output = Result<Box<dyn TxOps>>> + Send + 'static {
        self.0.begin()
    }

    /// The live database's foreign keys, triggers and columns.
    pub(crate) async fn catalog(&self) -> Result<Catalog> {
        self.0.catalog().await
    }
}

#[cfg(feature = "mongo")]
impl From<mongodb::Database> for Store {
    fn from(db: mongodb::Database) -> Self {
        Store(Arc::new(mongo::MongoStore::new(db)))
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Store {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Store(sql::store(pool))
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Store {
    fn from(pool: sqlx::PgPool) -> Self {
        Store(sql::store(pool))
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for Store {
    fn from(pool: sqlx::MySqlPool) -> Self {
        Store(sql::store(pool))
    }
}

/// The typed face of a store's operations: each method runs one entity-level operation (on
/// the pool, or inside a transaction) and decodes the rows it returns into the entity.
pub(crate) struct Exec<'a>(Box<dyn Ops + 'a>);

/// Decodes one row into the entity.
fn decode<E: CachedEntity>(row: Row) -> Result<E> {
    E::from_values(row).map_err(|e| Error::Decode {
        entity: E::meta().type_name,
        source: Box::new(e),
    })
}

/// Decodes one column value of `E` into a field's type.
fn decode_value<E: CachedEntity, T: FromValue>(column: &'static str, value: Value) -> Result<T> {
    T::from_value(value).map_err(|error| Error::Decode {
        entity: E::meta().type_name,
        source: Box::new(DecodeError { column, error }),
    })
}

fn decode_all<E: CachedEntity>(rows: Vec<Row>) -> Result<Vec<E>> {
    rows.into_iter().map(decode).collect()
}

fn decode_one<E: CachedEntity>(row: Option<Row>) -> Result<Option<E>> {
    row.map(decode).transpose()
}

impl<'a> Exec<'a> {
    pub(crate) fn new(ops: Box<dyn Ops + 'a>) -> Self {
        Exec(ops)
    }

    /// Runs a raw statement and returns the number of rows it affected.
    pub async fn execute(
        &mut self,
        entity: &'static str,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
    ) -> Result<u64> {
        self.0.execute(entity, sql, values).await
    }

    /// The rows of `meta` with these ids, undecoded (one value per column), in no particular
    /// order: for rows no typed call names (a cascade's children).
    pub async fn fetch_rows(
        &mut self,
        meta: &'static EntityMeta,
        ids: &[KeyValue],
    ) -> Result<Vec<Row>> {
        self.0.fetch_by_ids(meta, ids, false).await
    }

    /// The row with this id.
    pub async fn fetch_by_id<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        decode_one(
            self.0
                .fetch_by_id(E::meta(), &id.key_value(), false)
                .await?,
        )
    }

    /// The row with this id, locked for the rest of the transaction (the old row of a write).
    /// On MongoDB the read is in the transaction's snapshot: a concurrent change of the document
    /// makes this transaction's write of it fail with a retryable `WriteConflict`.
    pub async fn fetch_by_id_locked<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        decode_one(self.0.fetch_by_id(E::meta(), &id.key_value(), true).await?)
    }

    /// The rows with these ids, in no particular order.
    pub async fn fetch_by_ids<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        decode_all(self.0.fetch_by_ids(E::meta(), ids, false).await?)
    }

    /// The row of each asked id, in the order asked (`None` where absent; an id asked twice
    /// gets the same row), locked if `locked`. The database decides which row an id names:
    /// with one query for all of them, a row comes back spelled as stored (`abc` for an asked
    /// `ABC` under a case-insensitive collation), so a text id that no row spells byte for
    /// byte is asked again on its own (`WHERE id = ?`), unless the query found no row at all.
    pub async fn fetch_asked<E: CachedEntity>(
        &mut self,
        ids: &[KeyValue],
        locked: bool,
    ) -> Result<Vec<Option<Arc<E>>>> {
        let mut wanted = ids.to_vec();
        wanted.sort();
        wanted.dedup();
        let rows = match locked {
            true => self.lock_by_ids::<E>(&wanted).await?,
            false => self.fetch_by_ids::<E>(&wanted).await?,
        };
        let any = !rows.is_empty();
        let mut by_id: HashMap<KeyValue, Option<Arc<E>>> = rows
            .into_iter()
            .map(|row| (id_of(&row), Some(Arc::new(row))))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if !by_id.contains_key(id) {
                let row = match id {
                    KeyValue::Text(_) if any => self.0.fetch_by_id(E::meta(), id, locked).await?,
                    _ => None,
                };
                by_id.insert(id.clone(), decode_one::<E>(row)?.map(Arc::new));
            }
            out.push(by_id[id].clone());
        }
        Ok(out)
    }

    /// Locks the rows of `meta` with these ids until the transaction ends (`FOR UPDATE`;
    /// nothing more on SQLite, whose writer holds the database).
    pub async fn lock_ids(
        &mut self,
        meta: &'static crate::entity::EntityMeta,
        ids: &[KeyValue],
    ) -> Result<()> {
        self.0.fetch_by_ids(meta, ids, true).await.map(drop)
    }

    /// The ids of the rows of `meta` whose `column` is one of `values`, locked: the rows a
    /// cascade from the parents with these ids reaches.
    pub async fn fetch_ids_where_in(
        &mut self,
        meta: &'static crate::entity::EntityMeta,
        column: &str,
        values: &[KeyValue],
    ) -> Result<Vec<KeyValue>> {
        self.0.fetch_ids_where_in(meta, column, values).await
    }

    /// The rows matching `predicate`, ordered by id.
    pub async fn fetch_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<Vec<E>> {
        decode_all(self.0.fetch_where(E::meta(), predicate).await?)
    }

    /// One keyset page: at most `limit` rows matching `predicate` in `order`, after `after`.
    pub async fn fetch_page<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
        order: &'static OrderMeta,
        after: Option<&(KeyValue, KeyValue)>,
        limit: u32,
    ) -> Result<Vec<E>> {
        let rows = self
            .0
            .fetch_page(E::meta(), predicate, order, after, limit)
            .await?;
        decode_all(rows)
    }

    /// The number of rows matching `predicate`.
    pub async fn count_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<i64> {
        self.0.count_where(E::meta(), predicate).await
    }

    /// Each distinct value of `E`'s `column` with the number of rows holding it.
    pub async fn count_grouped<E: CachedEntity, T: FromValue>(
        &mut self,
        column: &'static str,
    ) -> Result<Vec<(T, i64)>> {
        let groups = self.0.count_grouped(E::meta(), column).await?;
        groups
            .into_iter()
            .map(|(value, n)| Ok((decode_value::<E, T>(column, value)?, n)))
            .collect()
    }

    /// The largest (`max`) or smallest value of `E`'s `column` among the rows matching
    /// `predicate`; `None` when none has one.
    pub async fn extreme<E: CachedEntity, T: FromValue>(
        &mut self,
        predicate: &Predicate,
        column: &'static str,
        max: bool,
    ) -> Result<Option<T>> {
        let value = self.0.extreme(E::meta(), predicate, column, max).await?;
        value.map(|v| decode_value::<E, T>(column, v)).transpose()
    }

    /// The rows with these ids, locked against other writers until the transaction ends.
    pub async fn lock_by_ids<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        decode_all(self.0.lock_by_ids(E::meta(), ids).await?)
    }

    /// Inserts rows (one value per column each) and returns them as stored. A version column
    /// is stored as 1, whatever the row holds; a null id is generated by the database.
    pub async fn insert<E: CachedEntity>(&mut self, rows: Vec<Vec<Value>>) -> Result<Vec<E>> {
        let meta = E::meta();
        let version_at = meta.version.and_then(|v| meta.column_position(v));
        let id_at = meta.column_position(meta.id_column);
        let mut rows = rows;
        for values in &mut rows {
            if let Some(at) = version_at {
                values[at] = Value::Int(1);
            }
        }
        // A null id is the database's to make (`#[cache(id, generated)]` on an integer id).
        let generated =
            id_at.is_some_and(|at| rows.iter().any(|r| matches!(r[at], Value::Null(_))));
        let stored = if generated {
            self.0.insert_generated(meta, rows).await?
        } else {
            self.0.insert(meta, rows).await?
        };
        decode_all(stored)
    }

    /// Assigns columns of one row if its version is `expected`; returns the row as updated,
    /// or `None` if no row has this id and version.
    pub async fn update_if_version<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        assignments: Vec<(&'static str, Value)>,
        expected: i64,
    ) -> Result<Option<E>> {
        let id = id.key_value();
        decode_one(
            self.0
                .update_if_version(E::meta(), &id, assignments, expected)
                .await?,
        )
    }

    /// Assigns columns of one row and returns the row as updated, or `None` if it is absent.
    pub async fn update<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<Option<E>> {
        decode_one(
            self.0
                .update(E::meta(), &id.key_value(), assignments)
                .await?,
        )
    }

    /// Assigns columns of one row and returns the row before and after, or `None` if it is
    /// absent.
    pub async fn update_keeping_old<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<Option<(E, E)>> {
        let rows = self
            .0
            .update_keeping_old(E::meta(), &id.key_value(), assignments)
            .await?;
        rows.map(|(old, new)| Ok((decode(old)?, decode(new)?)))
            .transpose()
    }

    /// Adds `delta` to an integer column in one statement; returns the updated row.
    pub async fn add<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        delta: i64,
    ) -> Result<Option<E>> {
        decode_one(
            self.0
                .add(E::meta(), &id.key_value(), column, delta)
                .await?,
        )
    }

    /// The rows matching `predicate`, locked for the rest of the transaction, ordered by id.
    pub async fn fetch_where_locked<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
    ) -> Result<Vec<E>> {
        decode_all(self.0.fetch_where_locked(E::meta(), predicate).await?)
    }

    /// Assigns columns on every row with one of these ids (the caller reads the rows back).
    pub async fn update_ids<E: CachedEntity>(
        &mut self,
        ids: &[KeyValue],
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<()> {
        self.0.update_ids(E::meta(), ids, assignments).await
    }

    /// Appends `item` to (or removes every item equal to it from) a list column of one row
    /// and returns the row as updated.
    pub async fn list_op<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        item: Value,
        append: bool,
    ) -> Result<Option<E>> {
        let row = self
            .0
            .list_op(E::meta(), &id.key_value(), column, item, append)
            .await?;
        decode_one(row)
    }

    /// Deletes rows by id and returns the deleted rows.
    pub async fn delete<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        decode_all(self.0.delete(E::meta(), ids).await?)
    }
}

/// The id of a row as a key part.
pub(crate) fn id_of<E: CachedEntity>(row: &E) -> KeyValue {
    row.id().key_value()
}
