//! The part of a SQL store that is the same on every sqlx driver: binding [`Value`]s, and
//! running the query shapes the store needs on a pool or on a transaction's connection. Each
//! backend module supplies only [`Driver::bind`] (its types) and its `BEGIN`.

use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Executor, FromRow, Pool, Row, SqlStr, Type};

use crate::error::{Error, Result};
use crate::value::{KeyValue, Value};

/// A sqlx database the stores can drive.
pub(crate) trait Driver: Database {
    /// Appends one value to the arguments, with the driver's type for it.
    fn bind(args: &mut <Self as Database>::Arguments, value: Value) -> Result<(), BoxDynError>;
}

fn arguments<DB: Driver>(values: Vec<Value>) -> Result<DB::Arguments> {
    let mut args = DB::Arguments::default();
    for value in values {
        DB::bind(&mut args, value).map_err(|e| Error::Database(sqlx::Error::Encode(e)))?;
    }
    Ok(args)
}

/// Where a statement runs: the pool (autocommit reads) or a transaction's connection.
pub(crate) enum DbExec<'a, DB: Database> {
    Pool(&'a Pool<DB>),
    Conn(&'a mut DB::Connection),
}

macro_rules! run {
    ($exec:expr, $query:expr, $method:ident) => {
        match $exec {
            DbExec::Pool(pool) => $query.$method(*pool).await,
            DbExec::Conn(conn) => $query.$method(&mut **conn).await,
        }
    };
}

impl<DB> DbExec<'_, DB>
where
    DB: Driver,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> i16: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    pub async fn fetch_optional<E>(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Option<E>>
    where
        E: Send + Unpin + for<'r> FromRow<'r, DB::Row>,
    {
        let query = sqlx::query_as_with::<DB, E, _>(sql, arguments::<DB>(values)?);
        run!(self, query, fetch_optional).map_err(|e| Error::from_sqlx(entity, e))
    }

    pub async fn fetch_all<E>(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Vec<E>>
    where
        E: Send + Unpin + for<'r> FromRow<'r, DB::Row>,
    {
        let query = sqlx::query_as_with::<DB, E, _>(sql, arguments::<DB>(values)?);
        run!(self, query, fetch_all).map_err(|e| Error::from_sqlx(entity, e))
    }

    pub async fn fetch_count(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<i64> {
        let query = sqlx::query_scalar_with::<DB, i64, _>(sql, arguments::<DB>(values)?);
        run!(self, query, fetch_one).map_err(|e| Error::from_sqlx(entity, e))
    }

    /// The first column of every row, as key values (an integer or text id).
    pub async fn fetch_keys(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Vec<KeyValue>> {
        let query = sqlx::query_with::<DB, _>(sql, arguments::<DB>(values)?);
        let rows = run!(self, query, fetch_all).map_err(|e| Error::from_sqlx(entity, e))?;
        rows.iter()
            .map(|row| {
                if let Ok(id) = row.try_get::<i64, _>(0usize) {
                    return Ok(KeyValue::Int(id));
                }
                if let Ok(id) = row.try_get::<i32, _>(0usize) {
                    return Ok(KeyValue::Int(id.into()));
                }
                if let Ok(id) = row.try_get::<i16, _>(0usize) {
                    return Ok(KeyValue::Int(id.into()));
                }
                let id: String = row
                    .try_get(0usize)
                    .map_err(|e| Error::from_sqlx(entity, e))?;
                Ok(KeyValue::Text(id.into()))
            })
            .collect()
    }

    /// Executes a statement and returns the number of rows affected.
    pub async fn execute(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<u64>
    where
        DB::QueryResult: RowsAffected,
    {
        let query = sqlx::query_with::<DB, _>(sql, arguments::<DB>(values)?);
        let done = run!(self, query, execute).map_err(|e| Error::from_sqlx(entity, e))?;
        Ok(done.rows_affected())
    }
}

/// `rows_affected()` of each driver's query result (an inherent method in sqlx).
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}
