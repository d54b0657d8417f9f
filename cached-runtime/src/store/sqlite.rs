//! The SQLite store: value types and `BEGIN IMMEDIATE`.

use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteQueryResult};
use sqlx::{Arguments, Sqlite};

use super::driver::{Driver, RowsAffected};
use crate::error::{Error, Result};
use crate::value::{Value, ValueKind};

/// A SQLite transaction owned by a cache transaction.
pub(crate) type SqliteTx = sqlx::Transaction<'static, Sqlite>;

impl Driver for Sqlite {
    fn bind(args: &mut SqliteArguments, value: Value) -> Result<(), BoxDynError> {
        match value {
            Value::Null(ValueKind::Text | ValueKind::ObjectId) => args.add(None::<String>),
            Value::Null(_) => args.add(None::<i64>),
            Value::Bool(b) => args.add(b),
            Value::Int(i) => args.add(i),
            Value::Float(f) => args.add(f),
            Value::Text(s) => args.add(s),
            Value::Bytes(b) => args.add(b),
            Value::ObjectId(bytes) => args.add(crate::value::hex(&bytes)),
            // Lists are JSON text (decode them with `#[sqlx(json)]`).
            list @ Value::List(_) => args.add(list.list_json()),
        }
    }
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

/// Opens a write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so a
/// transaction that reads the old row and then writes cannot fail to upgrade its lock.
pub(crate) async fn begin(pool: &SqlitePool) -> Result<SqliteTx> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| Error::from_sqlx("transaction", e))
}
