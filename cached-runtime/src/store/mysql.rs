//! The MySQL / MariaDB store: value types and `BEGIN`.

use sqlx::error::BoxDynError;
use sqlx::mysql::{MySqlArguments, MySqlPool, MySqlQueryResult};
use sqlx::{Arguments, MySql};

use super::driver::{Driver, RowsAffected};
use crate::error::{Error, Result};
use crate::value::{Value, ValueKind};

/// A MySQL transaction owned by a cache transaction.
pub(crate) type MySqlTx = sqlx::Transaction<'static, MySql>;

impl Driver for MySql {
    fn bind(args: &mut MySqlArguments, value: Value) -> Result<(), BoxDynError> {
        match value {
            Value::Null(ValueKind::Text | ValueKind::ObjectId) => args.add(None::<String>),
            Value::Null(ValueKind::Bool) => args.add(None::<bool>),
            Value::Null(ValueKind::Float) => args.add(None::<f64>),
            Value::Null(ValueKind::Bytes) => args.add(None::<Vec<u8>>),
            Value::Null(ValueKind::Int) => args.add(None::<i64>),
            Value::Null(ValueKind::List) => args.add(None::<String>),
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

impl RowsAffected for MySqlQueryResult {
    fn rows_affected(&self) -> u64 {
        MySqlQueryResult::rows_affected(self)
    }
}

/// Opens a transaction (REPEATABLE READ by default; old rows are read `FOR UPDATE`).
pub(crate) async fn begin(pool: &MySqlPool) -> Result<MySqlTx> {
    pool.begin()
        .await
        .map_err(|e| Error::from_sqlx("transaction", e))
}
