//! The PostgreSQL store: value types (a null is bound with its column's type) and `BEGIN`.

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgPool, PgQueryResult};
use sqlx::{Arguments, Postgres};

use super::driver::{Driver, RowsAffected};
use crate::error::{Error, Result};
use crate::value::{Value, ValueKind};

/// A PostgreSQL transaction owned by a cache transaction.
pub(crate) type PgTx = sqlx::Transaction<'static, Postgres>;

impl Driver for Postgres {
    fn bind(args: &mut PgArguments, value: Value) -> Result<(), BoxDynError> {
        match value {
            Value::Null(ValueKind::Int) => args.add(None::<i64>),
            Value::Null(ValueKind::Text | ValueKind::ObjectId) => args.add(None::<String>),
            Value::Null(ValueKind::Bool) => args.add(None::<bool>),
            Value::Null(ValueKind::Float) => args.add(None::<f64>),
            Value::Null(ValueKind::Bytes) => args.add(None::<Vec<u8>>),
            Value::Null(ValueKind::List) => {
                args.add(None::<sqlx::types::Json<Box<serde_json::value::RawValue>>>)
            }
            Value::Bool(b) => args.add(b),
            Value::Int(i) => args.add(i),
            Value::Float(f) => args.add(f),
            Value::Text(s) => args.add(s),
            Value::Bytes(b) => args.add(b),
            Value::ObjectId(bytes) => args.add(crate::value::hex(&bytes)),
            // Lists are JSON (a `jsonb` column; decode them with `#[sqlx(json)]`).
            list @ Value::List(_) => {
                let text = list.list_json().unwrap_or_default();
                args.add(sqlx::types::Json(serde_json::value::RawValue::from_string(
                    text,
                )?))
            }
        }
    }
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}

/// Opens a transaction (READ COMMITTED; old rows are read `FOR UPDATE`).
pub(crate) async fn begin(pool: &PgPool) -> Result<PgTx> {
    pool.begin()
        .await
        .map_err(|e| Error::from_sqlx("transaction", e))
}
