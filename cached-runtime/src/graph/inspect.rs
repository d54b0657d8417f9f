//! The whole graph, inspectable: every registered entity, its `relates_to` edges and every
//! view, rendered as Graphviz DOT or Mermaid, and `explain`, a dry run that says which keys
//! and view instances a write would invalidate, and why.

use std::fmt::{self, Write as _};

use super::query_keys;
use crate::entity::ViewMeta;
use crate::entity::{CachedEntity, EntityMeta};
use crate::key::{CacheKey, Predicate};
use crate::registry;
use crate::value::{KeyPart, KeyValue};

/// The invalidation graph of this program: entities, edges and views, as registered at link
/// time by the derives.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Every entity, by name.
    pub entities: Vec<&'static EntityMeta>,
    /// Every view, by name.
    pub views: Vec<&'static ViewMeta>,
}

/// The graph of every entity and view linked into this program.
pub fn graph() -> Graph {
    let mut entities: Vec<_> = registry::entities().collect();
    entities.sort_by_key(|e| e.type_name);
    entities.dedup_by_key(|e| e.type_name);
    let mut views: Vec<_> = registry::views().collect();
    views.sort_by_key(|v| v.type_name);
    Graph { entities, views }
}

fn names(metas: &[fn() -> &'static EntityMeta]) -> impl Iterator<Item = &'static str> + '_ {
    metas.iter().map(|m| m().type_name)
}

impl Graph {
    /// A fingerprint of this program's invalidation graph (entities, their tables, key-forming
    /// fields, lookups, orders and relations; views and what they read): the same in every
    /// process of one build, different when any of that differs. Every broadcast message
    /// carries it; an instance that receives one from a different graph (another version,
    /// during a rolling deploy) applies it conservatively. Log it at startup to see which
    /// builds share a channel.
    pub fn fingerprint(&self) -> u64 {
        registry::fingerprint()
    }

    /// Graphviz DOT: entities as boxes, views as double octagons, `relates_to` edges solid
    /// (labelled with the foreign key), view reads dashed (`reads_all` bold).
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph cached {\n  rankdir=LR;\n");
        for e in &self.entities {
            let _ = writeln!(out, "  \"{}\" [shape=box];", e.type_name);
            for r in e.relations {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\" [label=\"{}\"];",
                    e.type_name, r.target, r.column
                );
            }
        }
        for v in &self.views {
            let _ = writeln!(out, "  \"{}\" [shape=doubleoctagon];", v.type_name);
            let key = (v.key)().type_name;
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{key}\" [style=dashed, label=\"key\"];",
                v.type_name
            );
            for read in names(v.reads).filter(|n| *n != key) {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{read}\" [style=dashed, label=\"reads\"];",
                    v.type_name
                );
            }
            for read in names(v.reads_all) {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{read}\" [style=bold, label=\"reads_all\"];",
                    v.type_name
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart of the same graph.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("graph LR\n");
        for e in &self.entities {
            for r in e.relations {
                let _ = writeln!(out, "  {} -->|{}| {}", e.type_name, r.column, r.target);
            }
        }
        for v in &self.views {
            let key = (v.key)().type_name;
            let _ = writeln!(out, "  {0}[[{0}]] -.->|key| {key}", v.type_name);
            for read in names(v.reads).filter(|n| *n != key) {
                let _ = writeln!(out, "  {} -.->|reads| {read}", v.type_name);
            }
            for read in names(v.reads_all) {
                let _ = writeln!(out, "  {} ==>|reads_all| {read}", v.type_name);
            }
        }
        out
    }

    /// A dry run of one write: what a commit of it would invalidate, and why. `old` absent is
    /// an insert, `new` absent a delete. View instances depend on what their loads read, so
    /// they are named by view (`story_outline:*`), not by instance.
    pub fn explain<E: CachedEntity>(&self, old: Option<&E>, new: Option<&E>) -> Explanation {
        let old_values = old.map(E::index_values);
        let new_values = new.map(E::index_values);
        let id = new.or(old).map(|row| row.id().key_value());
        explain_values(E::meta(), id, old_values.as_deref(), new_values.as_deref())
    }
}

/// [`Graph::explain`] of a write given by its key-forming values (in the order of
/// [`CachedEntity::index_values`]) and the row's id: what the admin router's `/explain`
/// answers for a write described by column values.
pub(crate) fn explain_values(
    meta: &'static EntityMeta,
    id: Option<KeyValue>,
    old_values: Option<&[KeyValue]>,
    new_values: Option<&[KeyValue]>,
) -> Explanation {
    let mut lines = Vec::new();
    for key in query_keys(meta, old_values, new_values) {
        lines.push(Explained {
            reason: query_reason(meta, &key, old_values, new_values),
            key: key.to_string(),
        });
    }
    if let Some(id) = id {
        let reason = if new_values.is_some() {
            "the row is rewritten in place"
        } else {
            "the row becomes a negative entry"
        };
        lines.push(Explained {
            key: CacheKey::row(meta, id).to_string(),
            reason: reason.to_string(),
        });
    }
    for view in registry::coarse_readers(meta) {
        lines.push(Explained {
            key: format!("every {}", view.type_name),
            reason: format!("{} declares reads_all({})", view.type_name, meta.type_name),
        });
    }
    for view in registry::declared_readers(meta) {
        lines.push(Explained {
            key: format!("{}:*", view.name),
            reason: format!(
                "each cached {} instance whose load read one of the keys above",
                view.type_name
            ),
        });
    }
    Explanation { lines }
}

/// Why a write reaches a query key: the row's membership in it changed.
fn query_reason(
    meta: &EntityMeta,
    key: &CacheKey,
    old: Option<&[KeyValue]>,
    new: Option<&[KeyValue]>,
) -> String {
    if let Some(Predicate::And(columns, values)) = key.predicate() {
        let tuple =
            |values: &mut dyn Iterator<Item = String>| values.collect::<Vec<_>>().join(", ");
        return format!(
            "the row enters or leaves ({}) = ({})",
            columns.join(", "),
            tuple(&mut values.iter().map(ToString::to_string))
        );
    }
    let indexed = match (key.predicate(), key.grouped_column()) {
        (Some(Predicate::Eq(column, _)), _) => meta.index_position(column).map(|i| (*column, i)),
        (_, Some(column)) => meta.index_position(column).map(|i| (column, i)),
        _ => None,
    };
    let Some((column, i)) = indexed else {
        return match (old, new) {
            (None, _) => "a row is inserted".to_string(),
            _ => "a row is deleted".to_string(),
        };
    };
    match (old, new) {
        (Some(o), Some(n)) => format!("{column} changes {} -> {}", o[i], n[i]),
        (None, Some(n)) => format!("the inserted row has {column} = {}", n[i]),
        (Some(o), _) => format!("the deleted row had {column} = {}", o[i]),
        (None, None) => String::new(),
    }
}

/// What a write would invalidate ([`Graph::explain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// One line per key or view instance.
    pub lines: Vec<Explained>,
}

/// One invalidated key and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// The key (`scene?status=draft`, `story_outline:3`, `every PartSummary`).
    pub key: String,
    /// Why the write reaches it.
    pub reason: String,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.lines.iter().map(|l| l.key.len()).max().unwrap_or(0);
        for line in &self.lines {
            writeln!(f, "{:<width$}  {}", line.key, line.reason)?;
        }
        Ok(())
    }
}
