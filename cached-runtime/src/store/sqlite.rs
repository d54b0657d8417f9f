//! The SQLite store (sqlx): value binding, transactions and the three query shapes.

use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool};
use sqlx::{Arguments, Row, SqlStr};

use crate::entity::CachedEntity;
use crate::error::{Error, Result};
use crate::value::{KeyValue, Value};

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

impl SqliteExec<'_> {
    /// The first column of the first row as a key part (integer, text or null).
    pub async fn fetch_key_value(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Option<KeyValue>> {
        let query = sqlx::query_with(sql, arguments(values)?);
        let row = run!(self, query, fetch_optional).map_err(|e| Error::from_sqlx(entity, e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        if let Ok(value) = row.try_get::<Option<i64>, _>(0) {
            return Ok(Some(value.map_or(KeyValue::Null, KeyValue::Int)));
        }
        let value: Option<String> = row.try_get(0).map_err(|e| Error::from_sqlx(entity, e))?;
        Ok(Some(
            value.map_or(KeyValue::Null, |s| KeyValue::Text(s.into())),
        ))
    }

    /// Executes a statement and returns the number of rows affected.
    pub async fn execute(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<u64> {
        let query = sqlx::query_with(sql, arguments(values)?);
        let done = run!(self, query, execute).map_err(|e| Error::from_sqlx(entity, e))?;
        Ok(done.rows_affected())
    }
}
