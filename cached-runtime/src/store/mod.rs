//! Stores: where rows really live. One module per backend behind its cargo feature; this module
//! turns an entity-level operation ("the rows of scene where status = draft") into the
//! backend's statement and runs it on a pool or inside a transaction.
//!
//! Generated code never sees a driver type: it hands over [`Value`]s and gets entities back.
//! Dialect differences (placeholders, quoting, `RETURNING`, row locks) live in [`sql`] and in
//! the write paths below, never in generated code.

mod driver;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("cached-runtime needs a store: enable `sqlite`, `postgres` or `mysql`");

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

/// A type that every enabled store can decode rows into: `sqlx::FromRow` for each enabled
/// backend's rows. `#[derive(sqlx::FromRow)]` provides all of them at once.
pub trait RowDecode: SqliteRowDecode + PgRowDecode + MySqlRowDecode {}
impl<T: SqliteRowDecode + PgRowDecode + MySqlRowDecode> RowDecode for T {}

/// A database the cache sits in front of. Build one from a driver pool:
/// `Store::from(sqlite_pool)`, `Store::from(pg_pool)`, `Store::from(mysql_pool)`.
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
        }
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
        }
    }

    pub async fn commit(self) -> Result<()> {
        each_tx!(self, tx => tx.commit().await.map_err(Error::Database))
    }

    pub async fn rollback(self) -> Result<()> {
        each_tx!(self, tx => tx.rollback().await.map_err(Error::Database))
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
        dispatch!(self, x => x.execute(entity, sql, values).await)
    }

    /// The row with this id.
    pub async fn fetch_by_id<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        let sql = self.sql::<E>().select_by_id();
        self.one(sql, vec![id.to_value()]).await
    }

    /// The row with this id, locked for the rest of the transaction (the old row of a write).
    pub async fn fetch_by_id_locked<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
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
        let sql = SqlBuilder::new(meta, self.dialect()).select_column(column);
        let values = vec![id.to_value()];
        dispatch!(self, x => x.fetch_key_value(meta.type_name, sql, values).await)
    }

    /// The rows matching `predicate`, ordered by id.
    pub async fn fetch_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<Vec<E>> {
        let sql = self.sql::<E>().select(predicate);
        self.all(sql, predicate_values(predicate)).await
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
        let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
        let sql = self.sql::<E>().update(&columns);
        let mut values: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
        values.push(id.to_value());
        self.update_returning(id, sql, values).await
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
        self.update_returning(id, sql, values).await
    }

    /// Deletes rows by id and returns the deleted rows.
    pub async fn delete<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
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
