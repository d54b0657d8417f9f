//! The PostgreSQL store: how values bind (a null with its column's type, a list as `jsonb`)
//! and the catalog through `pg_catalog`, limited to the tables the search path sees.

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::{Arguments, Pool, Postgres};

use super::driver::{generic_run, Dialect, Driver};
use crate::store::RawStore;
use crate::value::{Value, ValueKind};

impl Driver for Postgres {
    // READ COMMITTED; old rows are read `FOR UPDATE`.
    const DIALECT: Dialect = Dialect {
        name: "PostgreSQL",
        quote: '"',
        numbered_placeholders: true,
        returning: true,
        row_locks: true,
        begin: None,
        catalog: [
            "SELECT cl.relname::text, att.attname::text, pcl.relname::text, patt.attname::text, \
                    con.confupdtype::text, con.confdeltype::text \
             FROM pg_constraint con \
             JOIN pg_class cl ON cl.oid = con.conrelid \
             JOIN pg_class pcl ON pcl.oid = con.confrelid \
             CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(ck, pk) \
             JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.ck \
             JOIN pg_attribute patt ON patt.attrelid = con.confrelid AND patt.attnum = k.pk \
             WHERE con.contype = 'f' AND pg_table_is_visible(cl.oid)",
            "SELECT c.relname::text, t.tgname::text FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE NOT t.tgisinternal AND pg_table_is_visible(c.oid)",
            "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND pg_table_is_visible(c.oid)",
        ],
    };

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
            // Lists are JSON (a `jsonb` column).
            list @ Value::List(_) => {
                let text = super::json::list_json(&list).unwrap_or_default();
                args.add(sqlx::types::Json(serde_json::value::RawValue::from_string(
                    text,
                )?))
            }
        }
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn raw(pool: &Pool<Postgres>) -> RawStore<'_> {
        RawStore::Postgres(pool)
    }

    generic_run!();
}
