//! The MySQL / MariaDB store: how values bind and the catalog through `information_schema`.

use sqlx::error::BoxDynError;
use sqlx::mysql::{MySqlArguments, MySqlQueryResult, MySqlRow};
use sqlx::{Arguments, Decode, MySql, Pool, Row, Type, ValueRef};

use super::driver::{bind_plain, generic_run, Dialect, Driver};
use crate::store::RawStore;
use crate::value::{Value, ValueKind};

impl Driver for MySql {
    // REPEATABLE READ by default; old rows are read `FOR UPDATE`. No `RETURNING` on `UPDATE`
    // (MariaDB) or at all (MySQL): writes are followed by a read in the same transaction.
    const DIALECT: Dialect = Dialect {
        name: "MySQL/MariaDB",
        quote: '`',
        numbered_placeholders: false,
        returning: false,
        row_locks: true,
        begin: None,
        catalog: [
            "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), \
                    CAST(IF(TABLE_SCHEMA = DATABASE(), '1', '0') AS CHAR) \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
            "SELECT CAST(k.TABLE_SCHEMA AS CHAR), CAST(k.TABLE_NAME AS CHAR), \
                    CAST(k.COLUMN_NAME AS CHAR), CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR), \
                    CAST(k.REFERENCED_TABLE_NAME AS CHAR), CAST(k.REFERENCED_COLUMN_NAME AS CHAR), \
                    CAST(r.UPDATE_RULE AS CHAR), CAST(r.DELETE_RULE AS CHAR) \
             FROM information_schema.KEY_COLUMN_USAGE k \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
              AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.REFERENCED_TABLE_NAME IS NOT NULL \
               AND k.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
            "SELECT CAST(EVENT_OBJECT_SCHEMA AS CHAR), CAST(EVENT_OBJECT_TABLE AS CHAR), \
                    CAST(TRIGGER_NAME AS CHAR) \
             FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
            "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), \
                    CAST(COLUMN_TYPE AS CHAR) \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
            "SELECT CAST(COALESCE(DATABASE(), '') AS CHAR)",
        ],
        dynamic_types: false,
    };

    fn bind(args: &mut MySqlArguments, value: Value) -> Result<(), BoxDynError> {
        match bind_plain::<MySql>(args, value)? {
            Some(Value::Null(ValueKind::Text | ValueKind::ObjectId | ValueKind::List)) => {
                args.add(None::<String>)
            }
            Some(Value::Null(ValueKind::Bool)) => args.add(None::<bool>),
            Some(Value::Null(ValueKind::Float)) => args.add(None::<f64>),
            Some(Value::Null(ValueKind::Bytes)) => args.add(None::<Vec<u8>>),
            Some(_) => args.add(None::<i64>),
            None => Ok(()),
        }
    }

    /// Unsigned integer columns (sqlx reads them only as unsigned Rust types): an integer,
    /// when it fits an `i64`.
    fn read_other(row: &MySqlRow, i: usize, kind: ValueKind) -> Option<Result<Value, BoxDynError>> {
        if !matches!(kind, ValueKind::Int | ValueKind::Bool | ValueKind::Float) {
            return None;
        }
        let raw = row.try_get_raw(i).ok()?;
        if !<u64 as Type<MySql>>::compatible(&raw.type_info()) {
            return None;
        }
        let n = match <u64 as Decode<MySql>>::decode(raw) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        Some(i64::try_from(n).map(Value::Int).map_err(Into::into))
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    /// `LAST_INSERT_ID()` of the statement; 0 means it generated none.
    fn last_insert_id(result: &MySqlQueryResult) -> Option<i64> {
        i64::try_from(result.last_insert_id())
            .ok()
            .filter(|id| *id != 0)
    }

    fn raw(pool: &Pool<MySql>) -> RawStore<'_> {
        RawStore::MySql(pool)
    }

    generic_run!();
}
