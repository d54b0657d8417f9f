//! Cache keys: one readable encoding for rows, query results and counts.
//!
//! Every entry the runtime caches lives under a [`CacheKey`]. Its `Display` form is the
//! contract users see in commit reports, hooks and debuggers:
//!
//! | entry | key |
//! |---|---|
//! | a row | `scene:42` |
//! | the ids of `find_by_status("draft")` | `scene?status=draft` |
//! | the ids of `find_by_story_id_and_status(3, "draft")` | `scene?story_id=3&status=draft` |
//! | the ids of `list()` | `scene?all` |
//! | `count_by_status("draft")` / `count()` | `scene#count?status=draft` / `scene#count?all` |
//! | `count_grouped_by_status()` | `scene#count_by(status)` |
//! | `max_position_by_project_id(3)` | `ticket?project_id=3#max(position)` |
//!
//! The derive generates typed keys (`SceneKey`, `SceneQuery`) that convert into `CacheKey`.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::collation::{fold, is_plain, WIDE};
use crate::entity::{EntityMeta, Namespace, OrderMeta};
use crate::page::Page;
use crate::value::KeyValue;

/// The key of one cache entry. Cheap to clone (text parts are shared).
#[derive(Clone)]
pub struct CacheKey {
    meta: &'static Namespace,
    kind: KeyKind,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum KeyKind {
    Row(KeyValue),
    List(Predicate),
    Count(Predicate),
    /// One keyset page of a predicate's rows in a declared order (the spec boxed: inline it
    /// would make every key, rows' included, 48 bytes larger).
    Page(Predicate, Box<PageSpec>),
    /// The tag every page of a predicate depends on: changed when a row enters or leaves the
    /// predicate or moves within its order. Never holds an entry.
    Pages(Predicate),
    /// The number of rows in each group of a key-forming column: dropped by every write that
    /// moves a row into or out of a group.
    Groups(&'static str),
    /// The largest (`true`) or smallest value of an order's column among a predicate's rows;
    /// registered under the predicate's pages tag, as a page is.
    /// (Boxed, as the join's below: inline they would make every key, rows' included, 16 bytes
    /// larger.)
    Extreme(Box<(Predicate, &'static OrderMeta, bool)>),
    /// The rows a join entity's rows matching a predicate point to through a foreign-key
    /// column (the actors of a movie's castings): registered under the query, the join rows
    /// and the rows pointed to.
    Joined(Box<(Predicate, &'static str)>),
}

/// Which page: the order, where it starts, how many rows.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PageSpec {
    order: &'static OrderMeta,
    after: Option<(KeyValue, KeyValue)>,
    limit: u32,
}

/// The predicate of a cached query: every row, or the rows whose key-forming field equals a
/// value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Predicate {
    /// Every row of the entity (`list()`, `count()`).
    All,
    /// Rows whose key-forming column (one of [`EntityMeta::indexes`]) equals the value.
    Eq(&'static str, KeyValue),
    /// Rows whose columns (one of [`EntityMeta::composites`]) equal the values, pairwise.
    And(&'static [&'static str], Arc<[KeyValue]>),
}

impl Predicate {
    /// The `(column, value)` pairs the predicate requires equal: none for `All`.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
        allow(dead_code)
    )]
    pub(crate) fn parts(&self) -> Vec<(&'static str, &KeyValue)> {
        match self {
            Predicate::All => Vec::new(),
            Predicate::Eq(column, value) => vec![(*column, value)],
            Predicate::And(columns, values) => columns.iter().copied().zip(values.iter()).collect(),
        }
    }
}

impl CacheKey {
    /// The key of one row.
    pub fn row(meta: &'static Namespace, id: KeyValue) -> Self {
        CacheKey {
            meta,
            kind: KeyKind::Row(id),
        }
    }

    /// The key of the ids a query matched.
    pub fn list(meta: &'static EntityMeta, predicate: Predicate) -> Self {
        CacheKey {
            meta: &meta.namespace,
            kind: KeyKind::List(predicate),
        }
    }

    /// The key of the number of rows a query matched.
    pub fn count(meta: &'static EntityMeta, predicate: Predicate) -> Self {
        CacheKey {
            meta: &meta.namespace,
            kind: KeyKind::Count(predicate),
        }
    }

    /// The key of one keyset page of `predicate`'s rows in `order`.
    pub(crate) fn page(
        meta: &'static EntityMeta,
        predicate: Predicate,
        order: &'static OrderMeta,
        page: &Page,
    ) -> Self {
        let after = page.after.as_ref().map(|c| (c.order.clone(), c.id.clone()));
        CacheKey {
            meta: &meta.namespace,
            kind: KeyKind::Page(
                predicate,
                Box::new(PageSpec {
                    order,
                    after,
                    limit: page.limit,
                }),
            ),
        }
    }

    /// The tag the pages of `predicate` depend on (`scene#pages?chapter_id=3`).
    pub(crate) fn pages(meta: &'static EntityMeta, predicate: Predicate) -> Self {
        CacheKey {
            meta: &meta.namespace,
            kind: KeyKind::Pages(predicate),
        }
    }

    /// The key of the grouped counts of a key-forming column (`scene#count_by(status)`).
    pub fn groups(meta: &'static EntityMeta, column: &'static str) -> Self {
        CacheKey {
            meta: &meta.namespace,
            kind: KeyKind::Groups(column),
        }
    }

    /// The key of the largest (`max`) or smallest value of `order`'s column among
    /// `predicate`'s rows (`ticket?project_id=3#max(position)`).
    pub(crate) fn extreme(
        meta: &'static EntityMeta,
        predicate: Predicate,
        order: &'static OrderMeta,
        max: bool,
    ) -> Self {
        CacheKey {
            meta: &meta.namespace,
            kind: KeyKind::Extreme(Box::new((predicate, order, max))),
        }
    }

    /// The key of the rows that the rows of the join entity `meta` matching `predicate`
    /// point to through `column` (`casting?movie_id=1#joined(actor_id)`).
    pub(crate) fn joined(
        meta: &'static EntityMeta,
        predicate: Predicate,
        column: &'static str,
    ) -> Self {
        CacheKey {
            meta: &meta.namespace,
            kind: KeyKind::Joined(Box::new((predicate, column))),
        }
    }

    /// Whether this key is dropped only through what it depends on, never sent alone: a
    /// keyset page, an extreme of an order's column (both hang on the pages tag), or the rows
    /// of a join.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn is_page(&self) -> bool {
        matches!(
            self.kind,
            KeyKind::Page(..) | KeyKind::Extreme(..) | KeyKind::Joined(..)
        )
    }

    /// The grouped counts a change of this count reaches: a row entering or leaving
    /// `scene#count?status=draft` changes `scene#count_by(status)`.
    pub(crate) fn groups_of_count(&self) -> Option<CacheKey> {
        match &self.kind {
            KeyKind::Count(Predicate::Eq(column, _)) => Some(CacheKey {
                meta: self.meta,
                kind: KeyKind::Groups(column),
            }),
            _ => None,
        }
    }

    /// The column whose grouped counts this key holds, if it is such a key.
    pub(crate) fn grouped_column(&self) -> Option<&'static str> {
        match self.kind {
            KeyKind::Groups(column) => Some(column),
            _ => None,
        }
    }

    /// Whether this key is the tag of a predicate's pages.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn is_pages_tag(&self) -> bool {
        matches!(self.kind, KeyKind::Pages(_))
    }

    /// The namespace (entity or view) this key belongs to.
    pub fn namespace(&self) -> &'static Namespace {
        self.meta
    }

    /// The row id, if this is a row key.
    pub fn row_id(&self) -> Option<&KeyValue> {
        match &self.kind {
            KeyKind::Row(id) => Some(id),
            _ => None,
        }
    }

    /// The predicate, if this is a query, count, page or extreme key (not a row, and not
    /// the grouped counts, which read every row).
    pub fn predicate(&self) -> Option<&Predicate> {
        match &self.kind {
            KeyKind::Row(_) | KeyKind::Groups(_) => None,
            KeyKind::List(p) | KeyKind::Count(p) | KeyKind::Page(p, _) | KeyKind::Pages(p) => {
                Some(p)
            }
            KeyKind::Extreme(extreme) => Some(&extreme.0),
            KeyKind::Joined(joined) => Some(&joined.0),
        }
    }

    /// Whether this key holds a count.
    pub fn is_count(&self) -> bool {
        matches!(self.kind, KeyKind::Count(_))
    }

    /// Whether this key holds a query result or a count (not a row).
    pub fn is_query(&self) -> bool {
        !matches!(self.kind, KeyKind::Row(_))
    }
}

impl CacheKey {
    /// The same key with its text (a text id, or a query's text value) folded the way
    /// case- and accent-insensitive collations compare it ([`crate::collation`]: plain text
    /// to its lower case, other text to the wide class); `None` when the key holds no text or
    /// its text is already folded. Every apply also drops the
    /// canonical form of each key it changes, and every other spelling cached under it.
    pub(crate) fn canonical(&self) -> Option<CacheKey> {
        let folded = |value: &KeyValue| match value {
            KeyValue::Text(text) => match fold(text) {
                Cow::Owned(folded) => Some(KeyValue::Text(folded.into())),
                Cow::Borrowed(_) => None,
            },
            _ => None,
        };
        let predicate = |p: &Predicate| match p {
            Predicate::All => None,
            Predicate::Eq(c, v) => Some(Predicate::Eq(c, folded(v)?)),
            Predicate::And(columns, values) => {
                let parts: Vec<Option<KeyValue>> = values.iter().map(folded).collect();
                if parts.iter().all(Option::is_none) {
                    return None;
                }
                let values = parts
                    .into_iter()
                    .zip(values.iter())
                    .map(|(folded, value)| folded.unwrap_or_else(|| value.clone()))
                    .collect();
                Some(Predicate::And(columns, values))
            }
        };
        let kind = match &self.kind {
            KeyKind::Row(id) => KeyKind::Row(folded(id)?),
            KeyKind::List(p) => KeyKind::List(predicate(p)?),
            KeyKind::Count(p) => KeyKind::Count(predicate(p)?),
            KeyKind::Pages(p) => KeyKind::Pages(predicate(p)?),
            // A page or an extreme is registered under its (canonical) tag, never as a
            // spelling; the grouped counts hold no text.
            KeyKind::Page(..) | KeyKind::Extreme(..) | KeyKind::Joined(..) | KeyKind::Groups(_) => {
                return None
            }
        };
        Some(CacheKey {
            meta: self.meta,
            kind,
        })
    }

    /// The keys besides [`CacheKey::canonical`] under which spellings of this key may be
    /// registered: each combination of its plain text parts with one or more of them in the
    /// wide class ([`crate::collation::WIDE`]), the others folded. A change to a key drops the
    /// spellings registered under each (`kg` changed: `㎏` cached may be equal). Empty for a
    /// key without text, or with a part that is not plain (its change bumps the entity
    /// instead, see [`CacheKey::has_wide_text`]).
    pub(crate) fn wide_forms(&self) -> Vec<CacheKey> {
        let with = |kind: KeyKind| CacheKey {
            meta: self.meta,
            kind,
        };
        let wide = || KeyValue::Text(WIDE.into());
        let plain = |v: &KeyValue| matches!(v, KeyValue::Text(t) if is_plain(t));
        let predicates = |p: &Predicate| -> Vec<Predicate> {
            match p {
                Predicate::Eq(c, v) if plain(v) => vec![Predicate::Eq(c, wide())],
                Predicate::And(columns, values) => {
                    let texts: Vec<usize> = (0..values.len())
                        .filter(|&i| matches!(values[i], KeyValue::Text(_)))
                        .collect();
                    if texts.is_empty() || !texts.iter().all(|&i| plain(&values[i])) {
                        return Vec::new();
                    }
                    (1..1u32 << texts.len())
                        .map(|mask| {
                            let values = values
                                .iter()
                                .enumerate()
                                .map(|(i, v)| match (v, texts.iter().position(|&t| t == i)) {
                                    (KeyValue::Text(_), Some(bit)) if mask & (1 << bit) != 0 => {
                                        wide()
                                    }
                                    (KeyValue::Text(t), _) => KeyValue::Text(fold(t).into()),
                                    (other, _) => other.clone(),
                                })
                                .collect();
                            Predicate::And(columns, values)
                        })
                        .collect()
                }
                _ => Vec::new(),
            }
        };
        match &self.kind {
            KeyKind::Row(id) if plain(id) => vec![with(KeyKind::Row(wide()))],
            KeyKind::List(p) => predicates(p)
                .into_iter()
                .map(|p| with(KeyKind::List(p)))
                .collect(),
            KeyKind::Count(p) => predicates(p)
                .into_iter()
                .map(|p| with(KeyKind::Count(p)))
                .collect(),
            KeyKind::Pages(p) => predicates(p)
                .into_iter()
                .map(|p| with(KeyKind::Pages(p)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether a text part of this key is not plain ([`crate::collation::is_plain`]): which
    /// cached spellings its change reaches cannot be listed, so the apply drops every query
    /// of the entity (for a row key, every entry).
    pub(crate) fn has_wide_text(&self) -> bool {
        self.any_value(|v| matches!(v, KeyValue::Text(t) if !is_plain(t)))
    }

    /// Whether any value of the key is text: a key without text has no other spellings.
    pub(crate) fn has_text(&self) -> bool {
        self.any_value(|v| matches!(v, KeyValue::Text(_)))
    }

    /// Whether any value of the key (its id, or its predicate's values) passes `test`.
    fn any_value(&self, test: impl Fn(&KeyValue) -> bool) -> bool {
        match &self.kind {
            KeyKind::Row(id) => test(id),
            KeyKind::Groups(_) => false,
            _ => match self.predicate() {
                None | Some(Predicate::All) => false,
                Some(Predicate::Eq(_, v)) => test(v),
                Some(Predicate::And(_, values)) => values.iter().any(test),
            },
        }
    }

    /// The entity's identity: the address of its static description, unique per entity type.
    #[inline]
    fn entity_addr(&self) -> usize {
        std::ptr::from_ref(self.meta) as usize
    }
}

// Keys compare by entity identity (the static description's address), not by name, so two
// entity types can never share entries even if they were given the same `name`.
impl PartialEq for CacheKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.entity_addr() == other.entity_addr() && self.kind == other.kind
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Integer row keys are the hot path of every cache hit: hash two words, nothing else.
        match &self.kind {
            KeyKind::Row(KeyValue::Int(id)) => {
                state.write_usize(self.entity_addr());
                state.write_i64(*id);
            }
            kind => {
                state.write_usize(self.entity_addr() ^ 1);
                kind.hash(state);
            }
        }
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.meta.name;
        let predicate = |f: &mut fmt::Formatter<'_>, p: &Predicate| match p {
            Predicate::All => f.write_str("all"),
            Predicate::Eq(column, v) => write!(f, "{column}={v}"),
            Predicate::And(columns, values) => {
                for (i, (column, v)) in columns.iter().zip(values.iter()).enumerate() {
                    if i > 0 {
                        f.write_str("&")?;
                    }
                    write!(f, "{column}={v}")?;
                }
                Ok(())
            }
        };
        match &self.kind {
            KeyKind::Row(id) => write!(f, "{name}:{id}"),
            KeyKind::List(p) => {
                write!(f, "{name}?")?;
                predicate(f, p)
            }
            KeyKind::Count(p) => {
                write!(f, "{name}#count?")?;
                predicate(f, p)
            }
            KeyKind::Pages(p) => {
                write!(f, "{name}#pages?")?;
                predicate(f, p)
            }
            KeyKind::Groups(column) => write!(f, "{name}#count_by({column})"),
            KeyKind::Joined(joined) => {
                let (p, column) = &**joined;
                write!(f, "{name}?")?;
                predicate(f, p)?;
                write!(f, "#joined({column})")
            }
            KeyKind::Extreme(extreme) => {
                let (p, order, max) = &**extreme;
                write!(f, "{name}?")?;
                predicate(f, p)?;
                let which = if *max { "max" } else { "min" };
                write!(f, "#{which}({})", order.column)
            }
            KeyKind::Page(p, spec) => {
                write!(f, "{name}?")?;
                predicate(f, p)?;
                let dir = if spec.order.descending { " desc" } else { "" };
                write!(f, "#page({}{dir}", spec.order.column)?;
                if let Some((order, id)) = &spec.after {
                    write!(f, ", after {order}/{id}")?;
                }
                write!(f, ", {})", spec.limit)
            }
        }
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

/// A typed query key the derive generates (`SceneQuery`): one predicate of one entity.
pub trait QueryKey {
    /// The key of the ids the query matches.
    fn list_key(&self) -> CacheKey;
    /// The key of the number of rows the query matches.
    fn count_key(&self) -> CacheKey;
}

/// A typed query of one entity (`SceneQuery`): what a view loader passes to
/// [`crate::ViewCtx::find`].
pub trait EntityQuery: QueryKey {
    /// The entity queried.
    type Entity: crate::CachedEntity;
    /// The predicate of the query.
    fn predicate(&self) -> Predicate;
}

#[cfg(test)]
mod tests {
    use super::CacheKey;

    /// moka holds every key (in an `Arc`): a byte here is a byte per cached entry.
    #[test]
    fn a_key_stays_within_72_bytes() {
        assert!(
            std::mem::size_of::<CacheKey>() <= 72,
            "CacheKey grew to {} bytes: box the payload of the variant that grew",
            std::mem::size_of::<CacheKey>()
        );
    }
}
