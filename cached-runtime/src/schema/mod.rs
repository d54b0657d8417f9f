//! What the live database does behind the repository's back, learned from its catalog.
//!
//! Foreign keys with `ON DELETE CASCADE`, `SET NULL` or `SET DEFAULT` change child rows when a
//! parent is deleted; the graph must hear of them. A context reads the catalog of its SQL
//! database once, before its first transaction, and keeps the [`Cascade`]s among its cached
//! tables: a delete through the repository then locks and reads the ids of the child rows it
//! reaches (recursively, for cascades of cascades), and its commit drops those rows and every
//! query of the child entities, with the view instances that read them.
//!
//! [`Context::check_schema`](crate::Context::check_schema) compares the entities with the same
//! catalog and lists what cannot work: a missing table or column, a column whose declared
//! type cannot give a field's values back ([`types`]), a trigger on a cached table
//! (it writes what the graph never hears of, unless declared harmless), and a foreign key whose
//! `ON UPDATE` action follows a parent column that the repository can change.

mod types;

use std::fmt;

use crate::entity::EntityMeta;
use crate::error::{Error, Result};
use crate::registry;
use crate::store::Store;

pub(crate) use crate::store::{Action, Catalog};

/// A delete of a `parent` row changes the rows of `child` whose `column` holds its id.
#[derive(Debug, Clone)]
pub(crate) struct Cascade {
    pub child: &'static EntityMeta,
    pub column: String,
    pub action: Action,
}

/// What a context learned about its database.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    cascades: Vec<(&'static EntityMeta, Cascade)>,
}

/// The table name without a schema prefix, for comparing with the catalog.
fn bare(table: &str) -> &str {
    table.rsplit('.').next().unwrap_or(table)
}

fn entity_of(table: &str) -> Option<&'static EntityMeta> {
    registry::entities().find(|meta| bare(meta.table).eq_ignore_ascii_case(bare(table)))
}

impl Schema {
    /// Reads the catalog of `store` (nothing on MongoDB: it has no foreign keys).
    pub(crate) async fn learn(store: &Store) -> Result<Schema> {
        Ok(Schema::from_catalog(&store.catalog().await?))
    }

    fn from_catalog(catalog: &Catalog) -> Schema {
        let mut cascades = Vec::new();
        for fk in &catalog.foreign_keys {
            let (Some(child), Some(parent)) = (entity_of(&fk.child), entity_of(&fk.parent)) else {
                continue;
            };
            if fk.on_delete != Action::Refuse && fk.references_id(parent) {
                let cascade = Cascade {
                    child,
                    column: fk.child_column.clone(),
                    action: fk.on_delete,
                };
                cascades.push((parent, cascade));
            }
        }
        Schema { cascades }
    }

    /// The cascades a delete of a `parent` row sets off.
    pub(crate) fn cascades(
        &self,
        parent: &'static EntityMeta,
    ) -> impl Iterator<Item = &Cascade> + '_ {
        self.cascades
            .iter()
            .filter(move |(p, _)| std::ptr::eq(*p, parent))
            .map(|(_, cascade)| cascade)
    }
}

/// What [`Context::check_schema`](crate::Context::check_schema) found: the cascades the graph
/// follows, or the problems that keep it from being sound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaReport {
    /// One line per foreign key the graph follows on delete (`chapters.story_id -> stories:
    /// ON DELETE CASCADE`).
    pub cascades: Vec<String>,
}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cascades.is_empty() {
            return f.write_str("schema ok: no cascading foreign keys among cached tables");
        }
        f.write_str("schema ok; deletes follow these foreign keys:")?;
        for line in &self.cascades {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// Compares the registered entities with the catalog of `store`.
pub(crate) async fn check(store: &Store, harmless_triggers: &[String]) -> Result<SchemaReport> {
    let catalog = store.catalog().await?;
    let mut problems = Vec::new();
    let mut report = SchemaReport::default();
    let mut entities: Vec<&'static EntityMeta> = registry::entities().collect();
    entities.sort_by_key(|m| m.type_name);
    entities.dedup_by_key(|m| m.type_name);
    for meta in &entities {
        let Some(columns) = catalog.columns_of(bare(meta.table)) else {
            problems.push(format!(
                "{}: table `{}` does not exist (create it; the library does not)",
                meta.type_name, meta.table
            ));
            continue;
        };
        for (column, kind) in meta.columns.iter().zip(meta.kinds) {
            match columns.iter().find(|c| c.name.eq_ignore_ascii_case(column)) {
                None => problems.push(format!(
                    "{}: column `{}.{column}` does not exist",
                    meta.type_name, meta.table
                )),
                Some(found) => {
                    let declared = &found.data_type;
                    if let Some(why) = types::mismatch(*kind, declared, catalog.dynamic_types) {
                        problems.push(format!(
                            "{}: column `{}.{column}` {why}",
                            meta.type_name, meta.table
                        ));
                    }
                }
            }
        }
        for (table, trigger) in &catalog.triggers {
            if table.eq_ignore_ascii_case(bare(meta.table))
                && !harmless_triggers
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(trigger))
            {
                problems.push(format!(
                    "{}: trigger `{trigger}` on `{}` may change rows the cache never hears of; \
                     drop it, or declare it with `ContextBuilder::harmless_trigger(\"{trigger}\")` \
                     if it writes nothing cached",
                    meta.type_name, meta.table
                ));
            }
        }
    }
    for fk in &catalog.foreign_keys {
        let (Some(child), Some(parent)) = (entity_of(&fk.child), entity_of(&fk.parent)) else {
            continue;
        };
        let line = format!(
            "{}.{} -> {}.{}",
            fk.child, fk.child_column, fk.parent, fk.parent_column
        );
        if fk.on_update != Action::Refuse && !fk.references_id(parent) {
            problems.push(format!(
                "{}: foreign key {line} has ON UPDATE {:?}: an update of `{}.{}` through the \
                 repository would change {} rows the cache never hears of; reference the id \
                 column, or use ON UPDATE RESTRICT",
                child.type_name, fk.on_update, fk.parent, fk.parent_column, child.type_name
            ));
        }
        if fk.on_delete != Action::Refuse {
            if fk.references_id(parent) {
                report
                    .cascades
                    .push(format!("{line}: ON DELETE {:?}", fk.on_delete));
            } else {
                problems.push(format!(
                    "{}: foreign key {line} has ON DELETE {:?} on a column other than {}'s id; \
                     the graph follows cascades from ids only",
                    child.type_name, fk.on_delete, parent.type_name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(Error::Schema { problems })
    }
}
