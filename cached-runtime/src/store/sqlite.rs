//! The SQLite store (sqlx): value binding, transactions and the three query shapes.

use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool};
use sqlx::{Arguments, SqlStr};

use crate::entity::CachedEntity;
use crate::error::{Error, Result};
use crate::value::Value;

/// A SQLite transaction owned by a cache transaction.
pub(crate) type SqliteTx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Binds backend-neutral values as SQLite arguments.
fn arguments(values: Vec<Value>) -> Result<SqliteArguments> {
    bind_all(values).map_err(|e| Error::Database(sqlx::Error::Encode(e)))
}

fn bind_all(values: Vec<Value>) -> Result<SqliteArguments, BoxDynError> {
    let mut args = SqliteArguments::default();
    for value in values {
        match value {
            Value::Null => args.add(None::<i64>)?,
            Value::Bool(b) => args.add(b)?,
            Value::Int(i) => args.add(i)?,
            Value::Float(f) => args.add(f)?,
            Value::Text(s) => args.add(s)?,
            Value::Bytes(b) => args.add(b)?,
        }
    }
    Ok(args)
}

/// Opens a write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so a
/// transaction that reads the old row and then writes cannot fail to upgrade its lock.
pub(crate) async fn begin(pool: &SqlitePool) -> Result<SqliteTx> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(Error::Database)
}

/// Where a SQLite statement runs: the pool (autocommit reads) or a transaction's connection.
pub(crate) enum SqliteExec<'a> {
    Pool(&'a SqlitePool),
    Conn(&'a mut SqliteConnection),
}

macro_rules! run {
    ($exec:expr, $query:expr, $method:ident) => {
        match $exec {
            SqliteExec::Pool(pool) => $query.$method(*pool).await,
            SqliteExec::Conn(conn) => $query.$method(&mut **conn).await,
        }
    };
}

impl SqliteExec<'_> {
    pub async fn fetch_optional<E: CachedEntity>(
        &mut self,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Option<E>> {
        let query = sqlx::query_as_with::<_, E, _>(sql, arguments(values)?);
        run!(self, query, fetch_optional).map_err(|e| Error::from_sqlx(E::meta().type_name, e))
    }

    pub async fn fetch_all<E: CachedEntity>(
        &mut self,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Vec<E>> {
        let query = sqlx::query_as_with::<_, E, _>(sql, arguments(values)?);
        run!(self, query, fetch_all).map_err(|e| Error::from_sqlx(E::meta().type_name, e))
    }

    pub async fn fetch_count(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<i64> {
        let query = sqlx::query_scalar_with::<_, i64, _>(sql, arguments(values)?);
        run!(self, query, fetch_one).map_err(|e| Error::from_sqlx(entity, e))
    }
}
