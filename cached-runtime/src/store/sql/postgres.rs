//! The PostgreSQL store: how values bind (a null with its column's type, a list as `jsonb`)
//! and the catalog through `pg_catalog`, limited to the tables the search path sees.

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::{Arguments, Pool, Postgres};

use super::driver::{bind_plain, generic_run, Dialect, Driver};
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
            "SELECT n.nspname::text, c.relname::text, \
                    CASE WHEN pg_table_is_visible(c.oid) THEN '1' ELSE '0' END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%'",
            "SELECT cn.nspname::text, cl.relname::text, att.attname::text, \
                    pn.nspname::text, pcl.relname::text, patt.attname::text, \
                    con.confupdtype::text, con.confdeltype::text \
             FROM pg_constraint con \
             JOIN pg_class cl ON cl.oid = con.conrelid \
             JOIN pg_namespace cn ON cn.oid = cl.relnamespace \
             JOIN pg_class pcl ON pcl.oid = con.confrelid \
             JOIN pg_namespace pn ON pn.oid = pcl.relnamespace \
             CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(ck, pk) \
             JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.ck \
             JOIN pg_attribute patt ON patt.attrelid = con.confrelid AND patt.attnum = k.pk \
             WHERE con.contype = 'f' AND cn.nspname NOT IN ('pg_catalog', 'information_schema')",
            "SELECT n.nspname::text, c.relname::text, t.tgname::text FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            "SELECT n.nspname::text, c.relname::text, a.attname::text, \
                    format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%'",
            "SELECT COALESCE(current_schema()::text, 'public')",
        ],
        dynamic_types: false,
    };

    fn bind(args: &mut PgArguments, value: Value) -> Result<(), BoxDynError> {
        type JsonText = sqlx::types::Json<Box<serde_json::value::RawValue>>;
        // Lists are a `jsonb` column: bound as JSON, not as text.
        if let list @ Value::List(_) = value {
            let text = super::json::list_json(&list).unwrap_or_default();
            return args.add(sqlx::types::Json(serde_json::value::RawValue::from_string(
                text,
            )?));
        }
        // A null is bound with its column's type.
        match bind_plain::<Postgres>(args, value)? {
            Some(Value::Null(ValueKind::Text | ValueKind::ObjectId)) => args.add(None::<String>),
            Some(Value::Null(ValueKind::Bool)) => args.add(None::<bool>),
            Some(Value::Null(ValueKind::Float)) => args.add(None::<f64>),
            Some(Value::Null(ValueKind::Bytes)) => args.add(None::<Vec<u8>>),
            Some(Value::Null(ValueKind::List)) => args.add(None::<JsonText>),
            Some(_) => args.add(None::<i64>),
            None => Ok(()),
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
