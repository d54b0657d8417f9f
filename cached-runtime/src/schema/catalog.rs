//! Reading a SQL database's catalog: foreign keys with their actions, triggers, columns.
//!
//! One function per backend, each three queries against the backend's own catalog (SQLite's
//! `sqlite_master` and pragma functions, PostgreSQL's `pg_catalog` limited to the tables the
//! search path sees, MySQL/MariaDB's `information_schema` for the current database).

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
use super::Action;
use super::ForeignKey;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
use crate::error::Error;
use crate::error::Result;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
use crate::store::RawStore;
use crate::store::Store;

/// The parts of a catalog the schema check and the cascades need.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub foreign_keys: Vec<ForeignKey>,
    /// `(table, trigger name)`.
    pub triggers: Vec<(String, String)>,
    /// `(table, column)`.
    pub columns: Vec<(String, String)>,
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
/// A catalog row of a foreign key: child, child column, parent, parent column (absent when it
/// is the parent's primary key, on SQLite), ON UPDATE, ON DELETE.
type FkRow = (String, String, String, Option<String>, String, String);

impl Catalog {
    /// The columns of `table`, if it exists.
    pub fn columns_of(&self, table: &str) -> Option<Vec<&str>> {
        let columns: Vec<&str> = self
            .columns
            .iter()
            .filter(|(t, _)| t.eq_ignore_ascii_case(table))
            .map(|(_, c)| c.as_str())
            .collect();
        (!columns.is_empty()).then_some(columns)
    }

    /// Reads the catalog of `store` (empty for MongoDB, which has no foreign keys or triggers
    /// that the cache cannot see).
    pub async fn read(store: &Store) -> Result<Catalog> {
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        if let Some((fks, triggers, columns)) = read_sql(store).await? {
            return Ok(Catalog {
                foreign_keys: fks.into_iter().map(foreign_key).collect(),
                triggers,
                columns,
            });
        }
        let _ = store;
        Ok(Catalog::default())
    }
}

/// A foreign key from its catalog row.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn foreign_key(row: FkRow) -> ForeignKey {
    let (child, child_column, parent, parent_column, on_update, on_delete) = row;
    ForeignKey {
        child,
        child_column,
        parent,
        // SQLite leaves it out when the key references the primary key.
        parent_column: parent_column.unwrap_or_default(),
        on_delete: Action::parse(&on_delete),
        on_update: Action::parse(&on_update),
    }
}

/// The catalog rows of a SQL store: foreign keys, `(table, trigger)`, `(table, column)`.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
type Rows = (Vec<FkRow>, Vec<(String, String)>, Vec<(String, String)>);

/// Reads the catalog rows of a SQL store; `None` for any other store.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
async fn read_sql(store: &Store) -> Result<Option<Rows>> {
    Ok(Some(match store.raw_unchecked() {
        #[cfg(feature = "sqlite")]
        RawStore::Sqlite(pool) => read_with!(pool, SQLITE),
        #[cfg(feature = "postgres")]
        RawStore::Postgres(pool) => read_with!(pool, POSTGRES),
        #[cfg(feature = "mysql")]
        RawStore::MySql(pool) => read_with!(pool, MYSQL),
        #[allow(unreachable_patterns)]
        _ => return Ok(None),
    }))
}

/// Runs the three catalog queries of one dialect on a pool.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
macro_rules! read_with {
    ($pool:expr, $queries:expr) => {{
        let [fks, triggers, columns] = $queries;
        let fail = |e| Error::from_sqlx("the database catalog", e);
        (
            sqlx::query_as::<_, FkRow>(fks)
                .fetch_all($pool)
                .await
                .map_err(fail)?,
            sqlx::query_as::<_, (String, String)>(triggers)
                .fetch_all($pool)
                .await
                .map_err(fail)?,
            sqlx::query_as::<_, (String, String)>(columns)
                .fetch_all($pool)
                .await
                .map_err(fail)?,
        )
    }};
}
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
use read_with;

#[cfg(feature = "sqlite")]
const SQLITE: [&str; 3] = [
    "SELECT m.name, p.\"from\", p.\"table\", p.\"to\", p.on_update, p.on_delete \
     FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) p WHERE m.type = 'table'",
    "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'",
    "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
     WHERE m.type IN ('table', 'view')",
];

#[cfg(feature = "postgres")]
const POSTGRES: [&str; 3] = [
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
];

#[cfg(feature = "mysql")]
const MYSQL: [&str; 3] = [
    "SELECT CAST(k.TABLE_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR), \
            CAST(k.REFERENCED_TABLE_NAME AS CHAR), CAST(k.REFERENCED_COLUMN_NAME AS CHAR), \
            CAST(r.UPDATE_RULE AS CHAR), CAST(r.DELETE_RULE AS CHAR) \
     FROM information_schema.KEY_COLUMN_USAGE k \
     JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
       ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
      AND r.TABLE_NAME = k.TABLE_NAME \
     WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL",
    "SELECT CAST(EVENT_OBJECT_TABLE AS CHAR), CAST(TRIGGER_NAME AS CHAR) \
     FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
    "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
];
