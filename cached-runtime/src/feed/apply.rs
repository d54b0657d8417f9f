//! From a feed's [`Event`] to the cache changes the same write through the repository would
//! have made: each entity over the changed table, its row keys and the queries whose
//! membership changed (from the old and new key-forming values), the views that declared
//! `reads_all` of it and the other entities over the same table. A change whose old values
//! the feed does not carry drops every query of the entity instead: more than needed, never
//! less.

use std::collections::HashMap;

use super::event::{Event, Image, Op, RowChange};
use crate::cache::{Bump, Change};
use crate::entity::EntityMeta;
use crate::graph::{self, views};
use crate::key::CacheKey;
use crate::value::{KeyValue, ValueKind};

/// The registered entities by the table they live in (schema and name, compared without
/// regard to ASCII case, as the catalogs compare unquoted identifiers).
#[derive(Debug, Default)]
pub(crate) struct Tables {
    by_table: HashMap<(String, String), Vec<&'static EntityMeta>>,
    /// Where the feed carries the id, when not under the id column's name (MongoDB: `_id`).
    id_field: Option<&'static str>,
}

impl Tables {
    /// Tables whose rows carry their id under `field` whatever the id column's name.
    #[cfg_attr(not(feature = "mongo"), allow(dead_code))]
    pub fn with_id_field(field: &'static str) -> Tables {
        Tables {
            id_field: Some(field),
            ..Tables::default()
        }
    }

    /// Adds an entity under its table's identity.
    pub fn add(&mut self, schema: &str, table: &str, meta: &'static EntityMeta) {
        self.by_table
            .entry((schema.to_ascii_lowercase(), table.to_ascii_lowercase()))
            .or_default()
            .push(meta);
    }

    /// Every table with at least one entity, with the columns a feed must carry for exact
    /// invalidation: each entity's id and key-forming columns.
    pub fn columns(&self) -> Vec<((String, String), Vec<&'static str>)> {
        let mut out: Vec<_> = self
            .by_table
            .iter()
            .map(|(table, metas)| {
                let mut columns: Vec<&'static str> = Vec::new();
                for meta in metas {
                    for column in std::iter::once(meta.id_column).chain(graph::key_columns(meta)) {
                        if !columns.contains(&column) {
                            columns.push(column);
                        }
                    }
                }
                (table.clone(), columns)
            })
            .collect();
        out.sort();
        out
    }

    /// The registered entities by the table a SQL store's catalog finds for them; a table
    /// the catalog does not have, or a column it lacks, is an error naming it (the feed would
    /// carry nulls for it).
    #[cfg(any(feature = "postgres", feature = "mysql-feed"))]
    pub async fn of_sql(store: &crate::store::Store) -> crate::error::Result<Tables> {
        let catalog = store.catalog().await?;
        let mut tables = Tables::default();
        let mut problems = Vec::new();
        let resolved = crate::schema::resolved(&catalog);
        for meta in crate::registry::entities() {
            let Some((_, id)) = resolved.iter().find(|(m, _)| std::ptr::eq(*m, meta)) else {
                problems.push(format!(
                    "{}: table `{}` does not exist; the change feed cannot watch it",
                    meta.type_name,
                    catalog.looked_for(meta.table)
                ));
                continue;
            };
            tables.add(&id.schema, &id.name, meta);
        }
        for ((schema, table), columns) in tables.columns() {
            let id = crate::store::catalog::TableId {
                schema: schema.clone(),
                name: table.clone(),
            };
            let present = catalog.columns_of(&id).unwrap_or_default();
            for column in columns {
                if !present.iter().any(|c| c.name.eq_ignore_ascii_case(column)) {
                    problems.push(format!(
                        "{schema}.{table}: column `{column}` does not exist"
                    ));
                }
            }
        }
        match problems.is_empty() {
            true => Ok(tables),
            false => Err(crate::error::Error::Schema { problems }),
        }
    }

    fn metas(&self, schema: &str, table: &str) -> &[&'static EntityMeta] {
        self.by_table
            .get(&(schema.to_ascii_lowercase(), table.to_ascii_lowercase()))
            .map_or(&[], Vec::as_slice)
    }

    /// The cache changes for one event (nothing for a marker, or a table no entity uses).
    pub fn changes_of(&self, event: &Event) -> (Vec<(CacheKey, Change)>, Vec<Bump>) {
        let mut keys = Vec::new();
        let mut bumps = Vec::new();
        match event {
            Event::Rows {
                schema,
                table,
                rows,
            } => {
                for meta in self.metas(schema, table) {
                    for row in rows {
                        self.row_changes(meta, row, &mut keys, &mut bumps);
                    }
                }
            }
            Event::Whole { schema, table } => {
                for meta in self.metas(schema, table) {
                    Bump::push(&mut bumps, Bump::Entity(meta));
                    views::coarse_bumps(meta, &mut bumps);
                    graph::same_table_changes(meta, None, &mut keys, &mut bumps);
                }
            }
            Event::Mark(_) | Event::Undecodable => {}
        }
        // Hashed by name and value; the namespace's mutable state is not part of the hash.
        #[allow(clippy::mutable_key_type)]
        let mut seen = std::collections::HashSet::new();
        keys.retain(|key| seen.insert(key.clone()));
        let changes = keys.into_iter().map(|key| (key, Change::Remove)).collect();
        (changes, bumps)
    }
}

impl Tables {
    /// What one row's change does to `meta`'s entries.
    fn row_changes(
        &self,
        meta: &'static EntityMeta,
        row: &RowChange,
        keys: &mut Vec<CacheKey>,
        bumps: &mut Vec<Bump>,
    ) {
        let id = |image: &Image| {
            let kind = *meta.kinds.get(meta.column_position(meta.id_column)?)?;
            let field = self.id_field.unwrap_or(meta.id_column);
            let (_, found) = image.iter().find(|(name, _)| name == field)?;
            coerce(kind, found)
        };
        row_changes(
            meta,
            row,
            row.old.as_ref().and_then(id),
            row.new.as_ref().and_then(id),
            keys,
            bumps,
        );
    }
}

/// What one row's change, whose old and new ids are these, does to `meta`'s entries.
fn row_changes(
    meta: &'static EntityMeta,
    row: &RowChange,
    old_id: Option<KeyValue>,
    new_id: Option<KeyValue>,
    keys: &mut Vec<CacheKey>,
    bumps: &mut Vec<Bump>,
) {
    let ids: Vec<KeyValue> = match (old_id, new_id) {
        (Some(a), Some(b)) if a == b => vec![a],
        (a, b) => a.into_iter().chain(b).collect(),
    };
    if ids.is_empty() {
        // No id to name the row by: every entry of the entity.
        Bump::push(bumps, Bump::Entity(meta));
        views::coarse_bumps(meta, bumps);
        graph::same_table_changes(meta, None, keys, bumps);
        return;
    }
    let old = row.old.as_ref().and_then(|image| index_values(meta, image));
    let new = row.new.as_ref().and_then(|image| index_values(meta, image));
    let exact = match row.op {
        Op::Insert => new
            .as_deref()
            .map(|n| graph::query_keys(meta, None, Some(n))),
        Op::Delete => old
            .as_deref()
            .map(|o| graph::query_keys(meta, Some(o), None)),
        Op::Update => match (&old, &new) {
            (Some(o), Some(n)) => Some(graph::query_keys(meta, Some(o), Some(n))),
            _ => match &row.assigned {
                Some(assigned) if !assigned.iter().any(|c| meta.forms_keys(c)) => Some(Vec::new()),
                _ => None,
            },
        },
    };
    match exact {
        Some(queries) => keys.extend(queries),
        None => Bump::push(bumps, Bump::Queries(meta)),
    }
    views::coarse_bumps(meta, bumps);
    for id in ids {
        graph::same_table_changes(meta, Some(&id), keys, bumps);
        keys.push(CacheKey::row(meta, id));
    }
}

/// The key-forming values of a row image, in the order of `CachedEntity::index_values`, if
/// the image carries every one of them.
fn index_values(meta: &'static EntityMeta, image: &Image) -> Option<Vec<KeyValue>> {
    graph::key_columns(meta)
        .map(|column| value(meta, image, column))
        .collect()
}

/// A column's value in an image, as the entity's key would hold it; `None` when the image
/// does not carry the column or carries a value of another kind.
fn value(meta: &'static EntityMeta, image: &Image, column: &str) -> Option<KeyValue> {
    let kind = meta.kinds.get(meta.column_position(column)?)?;
    let (_, found) = image.iter().find(|(name, _)| name == column)?;
    coerce(*kind, found)
}

/// A value as a column of `kind` reads back: MySQL booleans arrive as 0 or 1, integers
/// that JSON cannot hold exactly as text.
fn coerce(kind: ValueKind, value: &KeyValue) -> Option<KeyValue> {
    match (kind, value) {
        (_, KeyValue::Null) => Some(KeyValue::Null),
        (ValueKind::Int, KeyValue::Int(_))
        | (ValueKind::Text, KeyValue::Text(_))
        | (ValueKind::Bool, KeyValue::Bool(_))
        | (ValueKind::ObjectId, KeyValue::ObjectId(_)) => Some(value.clone()),
        (ValueKind::Int, KeyValue::Text(text)) => text.parse().ok().map(KeyValue::Int),
        (ValueKind::Bool, KeyValue::Int(0)) => Some(KeyValue::Bool(false)),
        (ValueKind::Bool, KeyValue::Int(1)) => Some(KeyValue::Bool(true)),
        _ => None,
    }
}
