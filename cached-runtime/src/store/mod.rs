//! Stores: where rows really live. One module per backend behind its cargo feature; this module
//! turns an entity-level operation ("the rows of scene where status = draft") into the
//! backend's statement and runs it on a pool or inside a transaction.
//!
//! Generated code never sees a driver type: it hands over [`Value`](crate::Value)s and gets
//! entities back. The operations themselves are in [`exec`].
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

use crate::entity::CachedEntity;
use crate::error::{Error, Result};
use crate::value::{KeyPart, KeyValue};
use sql::Dialect;

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
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = mongodb::Client::with_uri_str("mongodb://db0,db1,db2/?replicaSet=rs0").await?;
/// let ctx = cached_runtime::Context::new(client.database("studio"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Store(pub(crate) StoreKind);

/// The backend behind a [`Store`].
#[derive(Clone, Debug)]
pub(crate) enum StoreKind {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
    #[cfg(feature = "mongo")]
    Mongo(mongodb::Database),
}

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
        match &self.0 {
            #[cfg(feature = "sqlite")]
            StoreKind::Sqlite(_) => "SQLite",
            #[cfg(feature = "postgres")]
            StoreKind::Postgres(_) => "PostgreSQL",
            #[cfg(feature = "mysql")]
            StoreKind::MySql(_) => "MySQL/MariaDB",
            #[cfg(feature = "mongo")]
            StoreKind::Mongo(_) => "MongoDB",
        }
    }

    /// The driver pool (or MongoDB database) behind the cache: the escape hatch, for reads
    /// the repository cannot express, migrations and tests. **Writes through it bypass the
    /// cache**: nothing is invalidated and cached entries keep the old values until their TTL.
    /// Write through a transaction's `raw_write(...).touches::<E>(...)` instead, or call
    /// `ctx.invalidate...` after such a write. Grep for `raw_unchecked` to audit every use.
    pub fn raw_unchecked(&self) -> RawStore<'_> {
        match &self.0 {
            #[cfg(feature = "sqlite")]
            StoreKind::Sqlite(pool) => RawStore::Sqlite(pool),
            #[cfg(feature = "postgres")]
            StoreKind::Postgres(pool) => RawStore::Postgres(pool),
            #[cfg(feature = "mysql")]
            StoreKind::MySql(pool) => RawStore::MySql(pool),
            #[cfg(feature = "mongo")]
            StoreKind::Mongo(db) => RawStore::Mongo(db),
        }
    }
}

#[cfg(feature = "mongo")]
impl From<mongodb::Database> for Store {
    fn from(db: mongodb::Database) -> Self {
        Store(StoreKind::Mongo(db))
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Store {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Store(StoreKind::Sqlite(pool))
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Store {
    fn from(pool: sqlx::PgPool) -> Self {
        Store(StoreKind::Postgres(pool))
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for Store {
    fn from(pool: sqlx::MySqlPool) -> Self {
        Store(StoreKind::MySql(pool))
    }
}

impl Store {
    fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Store(StoreKind::Sqlite(_)) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Store(StoreKind::Postgres(_)) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Store(StoreKind::MySql(_)) => Dialect::MySql,
            #[cfg(feature = "mongo")]
            Store(StoreKind::Mongo(_)) => unreachable!("MongoDB operations never build SQL"),
        }
    }

    /// Opens a database transaction.
    pub(crate) async fn begin(&self) -> Result<TxConn> {
        match self {
            #[cfg(feature = "sqlite")]
            Store(StoreKind::Sqlite(pool)) => Ok(TxConn::Sqlite(sqlite::begin(pool).await?)),
            #[cfg(feature = "postgres")]
            Store(StoreKind::Postgres(pool)) => Ok(TxConn::Postgres(postgres::begin(pool).await?)),
            #[cfg(feature = "mysql")]
            Store(StoreKind::MySql(pool)) => Ok(TxConn::MySql(mysql::begin(pool).await?)),
            #[cfg(feature = "mongo")]
            Store(StoreKind::Mongo(db)) => Ok(TxConn::Mongo(Box::new(mongo::begin(db).await?))),
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
            Exec::Pool(Store(StoreKind::Sqlite(pool))) => {
                let mut $x = DbExec::<sqlx::Sqlite>::Pool(pool);
                $body
            }
            #[cfg(feature = "sqlite")]
            Exec::Tx(TxConn::Sqlite(tx)) => {
                let mut $x = DbExec::<sqlx::Sqlite>::Conn(&mut **tx);
                $body
            }
            #[cfg(feature = "postgres")]
            Exec::Pool(Store(StoreKind::Postgres(pool))) => {
                let mut $x = DbExec::<sqlx::Postgres>::Pool(pool);
                $body
            }
            #[cfg(feature = "postgres")]
            Exec::Tx(TxConn::Postgres(tx)) => {
                let mut $x = DbExec::<sqlx::Postgres>::Conn(&mut **tx);
                $body
            }
            #[cfg(feature = "mysql")]
            Exec::Pool(Store(StoreKind::MySql(pool))) => {
                let mut $x = DbExec::<sqlx::MySql>::Pool(pool);
                $body
            }
            #[cfg(feature = "mysql")]
            Exec::Tx(TxConn::MySql(tx)) => {
                let mut $x = DbExec::<sqlx::MySql>::Conn(&mut **tx);
                $body
            }
            #[cfg(feature = "mongo")]
            Exec::Pool(Store(StoreKind::Mongo(_))) | Exec::Tx(TxConn::Mongo(_)) => {
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

mod exec;

/// The id of a row as a key part.
pub(crate) fn id_of<E: CachedEntity>(row: &E) -> KeyValue {
    row.id().key_value()
}
