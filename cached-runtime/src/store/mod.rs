//! Stores: where rows really live. One module per backend behind its cargo feature; this module
//! turns an entity-level operation ("the rows of scene where status = draft") into the
//! backend's statement and runs it on a pool or inside a transaction.
//!
//! Generated code never sees a driver type: it hands over [`Value`]s and gets entities back.

pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

#[cfg(not(any(feature = "sqlite")))]
compile_error!("cached-runtime needs a store: enable the `sqlite` feature");

use crate::entity::CachedEntity;
use crate::error::{Error, Result};
use crate::key::Predicate;
use crate::value::{KeyPart, KeyValue, ToValue, Value};
use sql::{Dialect, SqlBuilder};

/// A type that a store can decode rows into.
///
/// With the `sqlite` store that means `sqlx::FromRow` for SQLite rows: add
/// `#[derive(sqlx::FromRow)]` to the entity.
#[cfg(feature = "sqlite")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from a database row",
    note = "add `#[derive(sqlx::FromRow)]` to `{Self}` (fields marked `#[cache(skip)]` also need `#[sqlx(skip)]`)"
)]
pub trait RowDecode: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> {}
#[cfg(feature = "sqlite")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>> RowDecode for T {}

/// A database the cache sits in front of. Build one from a driver pool:
/// `Store::from(sqlite_pool)`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Store {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Store::Sqlite(pool)
    }
}

impl Store {
    fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Opens a database transaction.
    pub(crate) async fn begin(&self) -> Result<TxConn> {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => Ok(TxConn::Sqlite(sqlite::begin(pool).await?)),
        }
    }
}

/// An open database transaction.
pub(crate) enum TxConn {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteTx),
}

impl TxConn {
    pub async fn commit(self) -> Result<()> {
        match self {
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite(tx) => tx.commit().await.map_err(Error::Database),
        }
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite(tx) => tx.rollback().await.map_err(Error::Database),
        }
    }
}

/// Where a statement runs: the store's pool, or an open transaction.
pub(crate) enum Exec<'a> {
    Pool(&'a Store),
    Tx(&'a mut TxConn),
}

macro_rules! dispatch {
    ($exec:expr, $x:ident => $body:expr) => {
        match $exec {
            #[cfg(feature = "sqlite")]
            Exec::Pool(Store::Sqlite(pool)) => {
                let mut $x = sqlite::SqliteExec::Pool(pool);
                $body
            }
            #[cfg(feature = "sqlite")]
            Exec::Tx(TxConn::Sqlite(tx)) => {
                let mut $x = sqlite::SqliteExec::Conn(&mut **tx);
                $body
            }
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

impl Exec<'_> {
    fn dialect(&self) -> Dialect {
        match self {
            Exec::Pool(store) => store.dialect(),
            #[cfg(feature = "sqlite")]
            Exec::Tx(TxConn::Sqlite(_)) => Dialect::Sqlite,
        }
    }

    fn sql<E: CachedEntity>(&self) -> SqlBuilder {
        SqlBuilder::new(E::meta(), self.dialect())
    }

    /// The row with this id.
    pub async fn fetch_by_id<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        let sql = self.sql::<E>().select_by_id();
        let values = vec![id.to_value()];
        dispatch!(self, x => x.fetch_optional::<E>(sql, values).await)
    }

    /// One key-forming column of the row with this id (a foreign key followed by the view
    /// graph), or `None` if the row does not exist.
    pub async fn fetch_column(
        &mut self,
        meta: &'static crate::entity::EntityMeta,
        column: &'static str,
        id: &KeyValue,
    ) -> Result<Option<KeyValue>> {
        let sql = SqlBuilder::new(meta, self.dialect()).select_column(column);
        let values = vec![id.to_value()];
        dispatch!(self, x => x.fetch_key_value(meta.type_name, sql, values).await)
    }

    /// Runs a raw statement and returns the number of rows it affected.
    pub async fn execute(
        &mut self,
        entity: &'static str,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
    ) -> Result<u64> {
        dispatch!(self, x => x.execute(entity, sql, values).await)
    }

    /// The rows with these ids, in no particular order.
    pub async fn fetch_by_ids<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = self.sql::<E>().select_by_ids(chunk.len());
            let values = chunk.iter().map(KeyValue::to_value).collect();
            rows.extend(dispatch!(self, x => x.fetch_all::<E>(sql, values).await)?);
        }
        Ok(rows)
    }

    /// The rows matching `predicate`, ordered by id.
    pub async fn fetch_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<Vec<E>> {
        let sql = self.sql::<E>().select(predicate);
        let values = predicate_values(predicate);
        dispatch!(self, x => x.fetch_all::<E>(sql, values).await)
    }

    /// The number of rows matching `predicate`.
    pub async fn count_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<i64> {
        let sql = self.sql::<E>().count(predicate);
        let values = predicate_values(predicate);
        let entity = E::meta().type_name;
        dispatch!(self, x => x.fetch_count(entity, sql, values).await)
    }

    /// Inserts rows and returns them as stored.
    pub async fn insert<E: CachedEntity>(&mut self, rows: &[E]) -> Result<Vec<E>> {
        let width = E::meta().columns.len().max(1);
        let mut stored = Vec::with_capacity(rows.len());
        // SQLite allows 32766 bind parameters per statement.
        for chunk in rows.chunks((30_000 / width).max(1)) {
            let sql = self.sql::<E>().insert(chunk.len());
            let values = chunk.iter().flat_map(CachedEntity::values).collect();
            stored.extend(dispatch!(self, x => x.fetch_all::<E>(sql, values).await)?);
        }
        Ok(stored)
    }

    /// Assigns columns of one row and returns the row as updated, or `None` if it is absent.
    pub async fn update<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<Option<E>> {
        let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
        let sql = self.sql::<E>().update(&columns);
        let mut values: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
        values.push(id.to_value());
        dispatch!(self, x => x.fetch_optional::<E>(sql, values).await)
    }

    /// Adds `delta` to an integer column in one statement; returns the updated row.
    pub async fn add<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        delta: i64,
    ) -> Result<Option<E>> {
        let sql = self.sql::<E>().add(column);
        let values = vec![Value::Int(delta), id.to_value()];
        dispatch!(self, x => x.fetch_optional::<E>(sql, values).await)
    }

    /// Deletes rows by id and returns the deleted rows.
    pub async fn delete<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        let mut deleted = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = self.sql::<E>().delete(chunk.len());
            let values = chunk.iter().map(KeyValue::to_value).collect();
            deleted.extend(dispatch!(self, x => x.fetch_all::<E>(sql, values).await)?);
        }
        Ok(deleted)
    }
}

/// The id of a row as a key part.
pub(crate) fn id_of<E: CachedEntity>(row: &E) -> KeyValue {
    row.id().key_value()
}
