//! The invalidation graph at run time: which cache keys a write touches ([`query_keys`]),
//! which view instances (the `views` module), and the whole graph for inspection ([`graph()`]).
//!
//! An entity's query keys are its tags: `scene?all` for every row, and `scene?<field>=<value>`
//! for each key-forming field (`#[cache(index)]` fields and `relates_to` foreign keys), each
//! with its count twin; a row entering or leaving a field's tag also drops that field's
//! grouped counts (`scene#count_by(status)`). A row belongs to exactly those tags, so a write computes the tags of
//! the old and the new row and drops exactly the query entries whose membership changed. The
//! cost is proportional to the number of key-forming fields, never to the cache size.

mod inspect;
pub(crate) mod svg;
pub(crate) mod views;

#[cfg(feature = "axum")]
pub(crate) use inspect::explain_values;
pub use inspect::{graph, Explained, Explanation, Graph};

use crate::cache::{Bump, Change};
use crate::entity::{CompositeMeta, EntityMeta, OrderMeta};
use crate::key::{CacheKey, Predicate};
use crate::value::{KeyValue, Value};

/// The two cache keys of one tag: the query's ids and its count.
fn tag_keys(meta: &'static EntityMeta, predicate: Predicate, out: &mut Vec<CacheKey>) {
    out.push(CacheKey::list(meta, predicate.clone()));
    out.push(CacheKey::count(meta, predicate));
}

/// The query keys whose results change when a row goes from `old` to `new`, given the rows'
/// key-forming values ([`crate::CachedEntity::index_values`]):
///
/// - insert (`old` absent): every tag of the new row, and `all`;
/// - delete (`new` absent): every tag of the old row, and `all`;
/// - update: the old and the new tag of each key-forming field whose value changed; an update
///   that changes no key-forming field touches no query.
pub fn query_keys(
    meta: &'static EntityMeta,
    old: Option<&[KeyValue]>,
    new: Option<&[KeyValue]>,
) -> Vec<CacheKey> {
    let mut keys = Vec::new();
    let singles = meta.indexes.len();
    match (old, new) {
        (None, None) => {}
        (Some(values), None) | (None, Some(values)) => {
            tag_keys(meta, Predicate::All, &mut keys);
            for (index, value) in meta.indexes.iter().zip(values) {
                tag_keys(meta, Predicate::Eq(index.column, value.clone()), &mut keys);
                keys.push(CacheKey::groups(meta, index.column));
            }
            for (composite, tuple) in composites(meta, &values[singles.min(values.len())..]) {
                tag_keys(
                    meta,
                    Predicate::And(composite.columns, tuple.into()),
                    &mut keys,
                );
            }
            for order in meta.orders {
                keys.push(CacheKey::pages(meta, order_predicate(meta, order, values)));
            }
        }
        (Some(old), Some(new)) => {
            for (index, (o, n)) in meta.indexes.iter().zip(old.iter().zip(new)) {
                if o != n {
                    tag_keys(meta, Predicate::Eq(index.column, o.clone()), &mut keys);
                    tag_keys(meta, Predicate::Eq(index.column, n.clone()), &mut keys);
                    keys.push(CacheKey::groups(meta, index.column));
                }
            }
            let olds = composites(meta, &old[singles.min(old.len())..]);
            let news = composites(meta, &new[singles.min(new.len())..]);
            for ((composite, o), (_, n)) in olds.zip(news) {
                if o != n {
                    tag_keys(meta, Predicate::And(composite.columns, o.into()), &mut keys);
                    tag_keys(meta, Predicate::And(composite.columns, n.into()), &mut keys);
                }
            }
            // A page's rows change when a row enters or leaves its predicate, or moves within
            // its order.
            for (i, order) in meta.orders.iter().enumerate() {
                let (before, after) = (
                    order_predicate(meta, order, old),
                    order_predicate(meta, order, new),
                );
                let at = order_position(meta, i);
                if before != after {
                    keys.push(CacheKey::pages(meta, before));
                    keys.push(CacheKey::pages(meta, after));
                } else if old.get(at) != new.get(at) {
                    keys.push(CacheKey::pages(meta, after));
                }
            }
        }
    }
    keys
}

/// What a write to the row `id` of `meta` changes in the other entities over the same table
/// ([`crate::registry::same_table`]): their entry for that id, when they name the row by the
/// same id column, and every query, count and page of theirs (which of them the row left or
/// entered is not known without their columns' old values); every entry of theirs otherwise.
/// Sound, and free when no two entities share a table.
pub(crate) fn same_table_changes(
    meta: &'static EntityMeta,
    id: Option<&KeyValue>,
    keys: &mut Vec<CacheKey>,
    bumps: &mut Vec<Bump>,
) {
    for other in crate::registry::same_table(meta) {
        match id {
            Some(id) if other.id_column == meta.id_column => {
                keys.push(CacheKey::row(other, id.clone()));
                Bump::push(bumps, Bump::Queries(&other.namespace));
            }
            _ => Bump::push(bumps, Bump::Entity(&other.namespace)),
        }
        views::coarse_bumps(other, bumps);
    }
}

/// What a write made outside the cache to the row `id` of `meta` may have changed, when
/// neither its old nor its new values are known: the row's entry, every query, count and page
/// of `meta`, and what [`same_table_changes`] adds.
pub(crate) fn row_changed_outside(
    meta: &'static EntityMeta,
    id: KeyValue,
) -> (Vec<(CacheKey, Change)>, Vec<Bump>) {
    let mut keys = Vec::new();
    let mut bumps = vec![Bump::Queries(&meta.namespace)];
    views::coarse_bumps(meta, &mut bumps);
    same_table_changes(meta, Some(&id), &mut keys, &mut bumps);
    keys.push(CacheKey::row(meta, id));
    let changes = keys.into_iter().map(|key| (key, Change::Remove)).collect();
    (changes, bumps)
}

/// Where the `i`th order's column value sits in a row's index values: after the single
/// fields and every composite's fields.
fn order_position(meta: &EntityMeta, i: usize) -> usize {
    meta.indexes.len()
        + meta
            .composites
            .iter()
            .map(|c| c.columns.len())
            .sum::<usize>()
        + i
}

/// The predicate whose pages a row with these index values belongs to, for `order`: its
/// `by` field's value, or every row.
pub(crate) fn order_predicate(
    meta: &'static EntityMeta,
    order: &OrderMeta,
    values: &[KeyValue],
) -> Predicate {
    let by = order.by.and_then(|by| {
        let at = meta.indexes.iter().position(|ix| ix.column == by)?;
        Some((meta.indexes[at].column, values.get(at)?.clone()))
    });
    match by {
        Some((column, value)) => Predicate::Eq(column, value),
        None => Predicate::All,
    }
}

/// Every column whose value places a row in a query: the single indexes, the composites'
/// columns and the orders' columns, in the order of
/// [`index_values`](crate::CachedEntity::index_values).
pub(crate) fn key_columns(meta: &'static EntityMeta) -> impl Iterator<Item = &'static str> {
    meta.indexes
        .iter()
        .map(|index| index.column)
        .chain(
            meta.composites
                .iter()
                .flat_map(|c| c.columns.iter().copied()),
        )
        .chain(meta.orders.iter().map(|order| order.column))
}

/// The key-forming values of a row as a store returns it (one value per column of `meta`),
/// in the order of [`index_values`](crate::CachedEntity::index_values); with `null_column`,
/// as they are once the database has set that column to NULL (a foreign key's `SET NULL`).
/// `None` if a key-forming column holds a value no key can (the row cannot be placed).
pub(crate) fn row_index_values(
    meta: &'static EntityMeta,
    row: &[Value],
    null_column: Option<&str>,
) -> Option<Vec<KeyValue>> {
    key_columns(meta)
        .map(|column| {
            if null_column == Some(column) {
                return Some(KeyValue::Null);
            }
            KeyValue::of(row.get(meta.column_position(column)?)?)
        })
        .collect()
}

/// The value of the `i`th order's column in a row's index values.
pub(crate) fn order_value(meta: &EntityMeta, i: usize, values: &[KeyValue]) -> KeyValue {
    values
        .get(order_position(meta, i))
        .cloned()
        .unwrap_or(KeyValue::Null)
}

/// Each composite of `meta` with its values, cut from the composite part of a row's
/// [`index_values`](crate::CachedEntity::index_values).
fn composites<'a>(
    meta: &'static EntityMeta,
    mut values: &'a [KeyValue],
) -> impl Iterator<Item = (&'static CompositeMeta, &'a [KeyValue])> {
    meta.composites.iter().map_while(move |composite| {
        let n = composite.columns.len();
        let (tuple, rest) = (values.get(..n)?, &values[n..]);
        values = rest;
        Some((composite, tuple))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{EntityState, IndexKind, IndexMeta};
    use crate::value::ValueKind;

    static META: EntityMeta = EntityMeta {
        namespace: crate::entity::Namespace {
            name: "scene",
            type_name: "Scene",
            ttl: None,
            negative_ttl: None,
            stale_while_revalidate: None,
            __state: EntityState::new(),
        },
        table: "scenes",
        id_column: "id",
        columns: &["id", "chapter_id", "status", "title"],
        kinds: &[
            ValueKind::Int,
            ValueKind::Int,
            ValueKind::Text,
            ValueKind::Text,
        ],
        indexes: &[
            IndexMeta {
                column: "chapter_id",
                kind: IndexKind::ForeignKey,
            },
            IndexMeta {
                column: "status",
                kind: IndexKind::Index,
            },
        ],
        composites: &[CompositeMeta {
            columns: &["chapter_id", "status"],
            unique: false,
        }],
        orders: &[],
        relations: &[],
        counters: &[],
        version: None,
    };

    /// The single fields' values, then the composite's (`chapter_id`, `status`).
    fn values(chapter: i64, status: &str) -> Vec<KeyValue> {
        let pair = [KeyValue::Int(chapter), KeyValue::Text(status.into())];
        pair.iter().chain(&pair).cloned().collect()
    }

    fn names(keys: Vec<CacheKey>) -> Vec<String> {
        keys.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn insert_touches_every_tag_of_the_new_row() {
        let keys = query_keys(&META, None, Some(&values(7, "draft")));
        assert_eq!(
            names(keys),
            [
                "scene?all",
                "scene#count?all",
                "scene?chapter_id=7",
                "scene#count?chapter_id=7",
                "scene#count_by(chapter_id)",
                "scene?status=draft",
                "scene#count?status=draft",
                "scene#count_by(status)",
                "scene?chapter_id=7&status=draft",
                "scene#count?chapter_id=7&status=draft"
            ]
        );
    }

    #[test]
    fn update_touches_only_changed_fields_old_and_new_tags() {
        let keys = query_keys(&META, Some(&values(7, "draft")), Some(&values(7, "final")));
        assert_eq!(
            names(keys),
            [
                "scene?status=draft",
                "scene#count?status=draft",
                "scene?status=final",
                "scene#count?status=final",
                "scene#count_by(status)",
                "scene?chapter_id=7&status=draft",
                "scene#count?chapter_id=7&status=draft",
                "scene?chapter_id=7&status=final",
                "scene#count?chapter_id=7&status=final"
            ]
        );
        assert!(query_keys(&META, Some(&values(7, "x")), Some(&values(7, "x"))).is_empty());
    }
}
