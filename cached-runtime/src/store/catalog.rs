//! What a store reports about the live database's schema: its tables (by schema and name),
//! foreign keys with their actions, triggers and columns with their declared types. Each
//! store reads its own catalog ([`Backend::catalog`]); the schema module above decides what
//! they mean for the cache.
//!
//! [`Backend::catalog`]: super::backend::Backend::catalog

use crate::entity::EntityMeta;

/// A table, by identity: its schema (PostgreSQL), database (MySQL/MariaDB) or attached
/// database (SQLite: `main`), and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    /// Whether the names are the same table (the catalogs here compare identifiers without
    /// regard to ASCII case, as unquoted identifiers are).
    pub fn is(&self, other: &TableId) -> bool {
        self.schema.eq_ignore_ascii_case(&other.schema)
            && self.name.eq_ignore_ascii_case(&other.name)
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A table the catalog lists, and whether an unqualified name finds it (PostgreSQL's search
/// path, MySQL's current database, SQLite's `main`).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub id: TableId,
    pub visible: bool,
}

/// The parts of a catalog the schema check and the cascades need, for every schema of the
/// database (not only the default one: an entity may name `app.tickets`).
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
    /// `(table, trigger name)`.
    pub triggers: Vec<(TableId, String)>,
    /// Every column of every table.
    pub columns: Vec<Column>,
    /// Whether a column's declared type is only an affinity (SQLite), so that any integer or
    /// real column reads back as a number whatever its declared name.
    pub dynamic_types: bool,
    /// Where unqualified names are looked for, for messages (`public`, the current database).
    pub default_schema: String,
}

/// A column, as the catalog declares it.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub table: TableId,
    pub name: String,
    /// The declared type (`bigint`, `character varying(100)`, `tinyint(1)`, `TEXT`, ...).
    pub data_type: String,
}

impl Catalog {
    /// The table an entity's `table` names: `schema.name` as written, or the table an
    /// unqualified name finds (visible in the search path / the current database).
    pub fn resolve(&self, table: &str) -> Option<&TableId> {
        let found = match table.rsplit_once('.') {
            Some((schema, name)) => self.tables.iter().find(|t| {
                t.id.schema.eq_ignore_ascii_case(schema) && t.id.name.eq_ignore_ascii_case(name)
            }),
            None => self
                .tables
                .iter()
                .find(|t| t.visible && t.id.name.eq_ignore_ascii_case(table)),
        };
        found.map(|t| &t.id)
    }

    /// Where an entity's `table` is looked for, for messages: `schema.name`.
    pub fn looked_for(&self, table: &str) -> String {
        match table.contains('.') {
            true => table.to_string(),
            false => format!("{}.{table}", self.default_schema),
        }
    }

    /// The columns of `table`, if it has any.
    pub fn columns_of(&self, table: &TableId) -> Option<Vec<&Column>> {
        let columns: Vec<&Column> = self.columns.iter().filter(|c| c.table.is(table)).collect();
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
    pub child: TableId,
    pub child_column: String,
    pub parent: TableId,
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
