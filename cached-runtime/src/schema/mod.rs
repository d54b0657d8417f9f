//! What the live database does behind the repository's back, learned from its catalog.
//!
//! Foreign keys with `ON DELETE CASCADE`, `SET NULL` or `SET DEFAULT` change child rows when a
//! parent is deleted; the graph must hear of them. A context reads the catalog of its SQL
//! database once, before its first transaction, and keeps what a delete of each entity's rows
//! reaches ([`Reach`]). Tables are compared by identity (schema and name), read for every
//! schema of the database, so an entity over `app.tickets` outside the search path is found;
//! foreign-key chains are followed through tables that are not entities, recursively.
//!
//! [`Context::check_schema`](crate::Context::check_schema) (the `check` module) compares the
//! entities with the same catalog and lists what cannot work: a missing table or column, a
//! column whose declared type cannot give a field's values back ([`types`]), a trigger on a
//! cached table (it writes what the graph never hears of, unless declared harmless), and a
//! foreign key whose `ON UPDATE` action follows a parent column that the repository can
//! change.

mod check;
mod types;

use std::collections::HashSet;

pub(crate) use check::check;
pub use check::SchemaReport;

use crate::entity::EntityMeta;
use crate::error::Result;
use crate::registry;
use crate::store::catalog::TableId;
use crate::store::Store;

pub(crate) use crate::store::{Action, Catalog};

/// What a delete of rows of one entity does to another entity's rows.
#[derive(Debug, Clone)]
pub(crate) enum Reach {
    /// The rows of `child` whose `column` holds a deleted id are deleted (`Cascade`) or
    /// changed (`SET NULL` / `SET DEFAULT`): found by their ids, locked and dropped one by one.
    Rows {
        child: &'static EntityMeta,
        column: String,
        action: Action,
    },
    /// Rows of `child` change that cannot be found from the deleted ids: the chain runs
    /// through a table that is not an entity, or a foreign key references a column other
    /// than the id. Every entry of `child` is dropped (one generation bump).
    Whole(&'static EntityMeta),
}

/// What a context learned about its database.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    reach: Vec<(&'static EntityMeta, Reach)>,
}

/// Each registered entity with the table its `table` names in `catalog`, if it exists.
pub(crate) fn resolved(catalog: &Catalog) -> Vec<(&'static EntityMeta, TableId)> {
    let mut out: Vec<(&'static EntityMeta, TableId)> = Vec::new();
    for meta in registry::entities() {
        if out.iter().any(|(m, _)| std::ptr::eq(*m, meta)) {
            continue;
        }
        if let Some(table) = catalog.resolve(meta.table) {
            out.push((meta, table.clone()));
        }
    }
    out
}

impl Schema {
    /// Reads the catalog of `store` (nothing on MongoDB: it has no foreign keys).
    pub(crate) async fn learn(store: &Store) -> Result<Schema> {
        Ok(Schema::from_catalog(&store.catalog().await?))
    }

    fn from_catalog(catalog: &Catalog) -> Schema {
        let entities = resolved(catalog);
        let over = |table: &TableId| -> Vec<&'static EntityMeta> {
            entities
                .iter()
                .filter(|(_, t)| t.is(table))
                .map(|(m, _)| *m)
                .collect()
        };
        let mut reach = Vec::new();
        for (parent, table) in &entities {
            // The entity's own children, by id: precise (their own cascades are followed
            // from their ids in turn, at run time).
            let mut through: Vec<TableId> = Vec::new();
            for fk in catalog.foreign_keys.iter().filter(|fk| fk.parent.is(table)) {
                if fk.on_delete == Action::Refuse {
                    continue;
                }
                let children = over(&fk.child);
                match children.first() {
                    Some(child) if fk.references_id(parent) => reach.push((
                        *parent,
                        Reach::Rows {
                            child,
                            column: fk.child_column.clone(),
                            action: fk.on_delete,
                        },
                    )),
                    _ => {
                        for child in &children {
                            reach.push((*parent, Reach::Whole(child)));
                        }
                        if fk.on_delete == Action::Cascade {
                            through.push(fk.child.clone());
                        }
                    }
                }
            }
            // Rows deleted without being known one by one: everything their cascades reach,
            // through any table, is changed as a whole.
            let mut seen: HashSet<TableId> = HashSet::from([table.clone()]);
            while let Some(from) = through.pop() {
                if !seen.insert(from.clone()) {
                    continue;
                }
                for fk in catalog.foreign_keys.iter().filter(|fk| fk.parent.is(&from)) {
                    if fk.on_delete == Action::Refuse {
                        continue;
                    }
                    for child in over(&fk.child) {
                        reach.push((*parent, Reach::Whole(child)));
                    }
                    if fk.on_delete == Action::Cascade {
                        through.push(fk.child.clone());
                    }
                }
            }
        }
        Schema { reach }
    }

    /// What a delete of a `parent` row reaches.
    pub(crate) fn reach(&self, parent: &'static EntityMeta) -> impl Iterator<Item = &Reach> + '_ {
        self.reach
            .iter()
            .filter(move |(p, _)| std::ptr::eq(*p, parent))
            .map(|(_, reach)| reach)
    }
}
