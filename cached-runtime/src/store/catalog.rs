//! What a store reports about the live database's schema: foreign keys with their actions,
//! triggers and columns with their declared types. Each store reads its own catalog ([`Backend::catalog`]); the schema
//! module above decides what they mean for the cache.
//!
//! [`Backend::catalog`]: super::backend::Backend::catalog

use crate::entity::EntityMeta;

/// The parts of a catalog the schema check and the cascades need.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub foreign_keys: Vec<ForeignKey>,
    /// `(table, trigger name)`.
    pub triggers: Vec<(String, String)>,
    /// Every column of every table.
    pub columns: Vec<Column>,
    /// Whether a column's declared type is only an affinity (SQLite), so that any integer or
    /// real column reads back as a number whatever its declared name.
    pub dynamic_types: bool,
}

/// A column, as the catalog declares it.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub table: String,
    pub name: String,
    /// The declared type (`bigint`, `character varying(100)`, `tinyint(1)`, `TEXT`, ...).
    pub data_type: String,
}

impl Catalog {
    /// The columns of `table`, if it exists.
    pub fn columns_of(&self, table: &str) -> Option<Vec<&Column>> {
        let columns: Vec<&Column> = self
            .columns
            .iter()
            .filter(|c| c.table.eq_ignore_ascii_case(table))
            .collect();
        (!columns.is_empty()).then_some(columns)
    }
}

/// What a foreign key does to its child rows when the parent row is deleted or its key
/// changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Only SQL catalogs have foreign keys that set their children null or to a default.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) enum Action {
    /// `NO ACTION` / `RESTRICT`: the parent write fails while children exist.
    Refuse,
    /// `CASCADE`.
    Cascade,
    /// `SET NULL`.
    SetNull,
    /// `SET DEFAULT`.
    SetDefault,
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
impl Action {
    /// From a catalog's spelling (`CASCADE`, `SET NULL`, PostgreSQL's `c`/`n`/`d`, ...).
    pub(crate) fn parse(text: &str) -> Action {
        match text.trim().to_ascii_uppercase().as_str() {
            "CASCADE" | "C" => Action::Cascade,
            "SET NULL" | "N" => Action::SetNull,
            "SET DEFAULT" | "D" => Action::SetDefault,
            _ => Action::Refuse,
        }
    }
}

/// A foreign key, as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct ForeignKey {
    pub child: String,
    pub child_column: String,
    pub parent: String,
    /// Empty when the key references the parent's primary key without naming it (SQLite).
    pub parent_column: String,
    pub on_delete: Action,
    pub on_update: Action,
}

impl ForeignKey {
    /// Whether the key references `parent`'s id column.
    pub(crate) fn references_id(&self, parent: &EntityMeta) -> bool {
        self.parent_column.is_empty() || self.parent_column.eq_ignore_ascii_case(parent.id_column)
    }
}
