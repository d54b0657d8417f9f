//! `check_schema`: the registered entities compared with the live catalog.

use std::fmt;

use super::{resolved, types, Action, Catalog};
use crate::entity::EntityMeta;
use crate::error::{Error, Result};
use crate::registry;
use crate::store::catalog::TableId;
use crate::store::Store;

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

/// A table as messages show it: bare in the default schema, qualified elsewhere.
fn shown(catalog: &Catalog, table: &TableId) -> String {
    match table.schema.eq_ignore_ascii_case(&catalog.default_schema) {
        true => table.name.clone(),
        false => table.to_string(),
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
        let Some(table) = catalog.resolve(meta.table) else {
            problems.push(format!(
                "{}: table `{}` does not exist (looked for `{}`, in the catalog of every \
                 schema; create it, the library does not)",
                meta.type_name,
                meta.table,
                catalog.looked_for(meta.table)
            ));
            continue;
        };
        let columns = catalog.columns_of(table).unwrap_or_default();
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
        for (on, trigger) in &catalog.triggers {
            // The change feed's own triggers only notify (`feed::postgres`).
            if on.is(table)
                && !trigger.starts_with("cached_feed_")
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
    let entities = resolved(&catalog);
    let entity_of = |table: &TableId| entities.iter().find(|(_, t)| t.is(table)).map(|(m, _)| *m);
    for fk in &catalog.foreign_keys {
        let line = format!(
            "{}.{} -> {}.{}",
            shown(&catalog, &fk.child),
            fk.child_column,
            shown(&catalog, &fk.parent),
            fk.parent_column
        );
        let (child, parent) = (entity_of(&fk.child), entity_of(&fk.parent));
        if let (Some(child), Some(parent)) = (child, parent) {
            if fk.on_update != Action::Refuse && !fk.references_id(parent) {
                problems.push(format!(
                    "{}: foreign key {line} has ON UPDATE {:?}: an update of `{}.{}` through \
                     the repository would change {} rows the cache never hears of; reference \
                     the id column, or use ON UPDATE RESTRICT",
                    child.type_name,
                    fk.on_update,
                    shown(&catalog, &fk.parent),
                    fk.parent_column,
                    child.type_name
                ));
            }
        }
        if fk.on_delete == Action::Refuse {
            continue;
        }
        // Every delete path the graph follows, through tables that are entities or not.
        let how = match (child, parent) {
            (None, None) => continue,
            (Some(_), Some(parent)) if fk.references_id(parent) => "",
            (Some(_), _) => " (every entry of the child is dropped)",
            (None, _) => " (not cached; its own cascades are followed)",
        };
        report
            .cascades
            .push(format!("{line}: ON DELETE {:?}{how}", fk.on_delete));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(Error::Schema { problems })
    }
}
