//! The SQLite store: how values bind, `BEGIN IMMEDIATE`, and the catalog through pragmas.

use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult};
use sqlx::{Arguments, Pool, Sqlite};

use super::driver::{bind_plain, generic_run, Dialect, Driver};
use crate::store::RawStore;
use crate::value::{Value, ValueKind};

impl Driver for Sqlite {
    const DIALECT: Dialect = Dialect {
        name: "SQLite",
        quote: '"',
        numbered_placeholders: false,
        returning: true,
        row_locks: false,
        // Takes SQLite's write lock up front, so a transaction that reads the old row and
        // then writes cannot fail to upgrade its lock.
        begin: Some("BEGIN IMMEDIATE"),
        catalog: [
            "SELECT 'main', name, '1' FROM sqlite_master WHERE type IN ('table', 'view')",
            "SELECT 'main', m.name, p.\"from\", 'main', p.\"table\", p.\"to\", p.on_update, \
                    p.on_delete \
             FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) p WHERE m.type = 'table'",
            "SELECT 'main', tbl_name, name FROM sqlite_master WHERE type = 'trigger'",
            "SELECT 'main', m.name, p.name, p.type \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type IN ('table', 'view')",
            "SELECT 'main'",
        ],
        dynamic_types: true,
    };

    fn bind(args: &mut SqliteArguments, value: Value) -> Result<(), BoxDynError> {
        match bind_plain::<Sqlite>(args, value)? {
            Some(Value::Null(ValueKind::Text | ValueKind::ObjectId)) => args.add(None::<String>),
            Some(_) => args.add(None::<i64>),
            None => Ok(()),
        }
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn raw(pool: &Pool<Sqlite>) -> RawStore<'_> {
        RawStore::Sqlite(pool)
    }

    generic_run!();
}
