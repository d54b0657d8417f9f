//! Cached aggregates: the typed queries behind `count_grouped_by_<field>()` and
//! `max_<column>_by_<field>(v)` / `min_...`, which a repository method or a view loader
//! ([`ViewCtx::count_grouped`](crate::ViewCtx::count_grouped),
//! [`ViewCtx::extreme`](crate::ViewCtx::extreme)) reads.
//!
//! Each is one cache entry. Grouped counts (`scene#count_by(status)`) are dropped by every
//! write that moves a row into or out of a group (an insert, a delete, a change of the field),
//! never by a write that leaves every row in its group. An extreme
//! (`ticket?project_id=3#max(position)`) hangs on the pages tag of its predicate, as the
//! predicate's pages do: dropped when a row enters or leaves the predicate or its order value
//! changes.

use std::fmt;
use std::marker::PhantomData;

use crate::entity::CachedEntity;
use crate::key::{CacheKey, Predicate};
use crate::value::{FromValue, ToValue, Value};

/// What an aggregate returns: the type of the field it reads, stored and read back (any field
/// type; an aggregate needs no `KeyPart`, so a float order column has a `max_` too).
pub trait AggregateValue: ToValue + FromValue + Clone + Send + Sync + 'static {}

impl<T: ToValue + FromValue + Clone + Send + Sync + 'static> AggregateValue for T {}

/// The bytes a value holds on the heap, as stored (its text or bytes).
pub(crate) fn heap_of<T: ToValue>(value: &T) -> usize {
    match value.to_value() {
        Value::Text(text) => text.len(),
        Value::Bytes(bytes) => bytes.len(),
        _ => 0,
    }
}

/// The number of rows of `E` in each group of a key-forming field of type `T`: built by the
/// generated `<Entity>Query::count_grouped_by_<field>()`.
pub struct GroupedCount<E, T> {
    pub(crate) column: &'static str,
    _types: PhantomData<fn() -> (E, T)>,
}

impl<E: CachedEntity, T> GroupedCount<E, T> {
    #[doc(hidden)]
    pub const fn __new(column: &'static str) -> Self {
        GroupedCount {
            column,
            _types: PhantomData,
        }
    }

    /// The cache key of the counts (`scene#count_by(status)`).
    pub fn key(&self) -> CacheKey {
        CacheKey::groups(E::meta(), self.column)
    }
}

/// The largest or smallest value of an order column of `E` (type `T`) among a query's rows:
/// built by the generated `<Entity>Query::max_<column>_by_<field>(v)` (or `min_...`).
pub struct Extreme<E, T> {
    pub(crate) predicate: Predicate,
    pub(crate) order_at: usize,
    pub(crate) max: bool,
    _types: PhantomData<fn() -> (E, T)>,
}

impl<E: CachedEntity, T> Extreme<E, T> {
    #[doc(hidden)]
    pub fn __new(predicate: Predicate, order_at: usize, max: bool) -> Self {
        Extreme {
            predicate,
            order_at,
            max,
            _types: PhantomData,
        }
    }

    /// The cache key of the value (`ticket?project_id=3#max(position)`).
    pub fn key(&self) -> CacheKey {
        let meta = E::meta();
        CacheKey::extreme(
            meta,
            self.predicate.clone(),
            &meta.orders[self.order_at],
            self.max,
        )
    }

    /// The tag the value hangs on: the pages tag of its predicate.
    pub(crate) fn tag(&self) -> CacheKey {
        CacheKey::pages(E::meta(), self.predicate.clone())
    }
}

impl<E: CachedEntity, T> fmt::Display for GroupedCount<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.key(), f)
    }
}

impl<E: CachedEntity, T> fmt::Debug for GroupedCount<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupedCount({self})")
    }
}

impl<E: CachedEntity, T> fmt::Display for Extreme<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.key(), f)
    }
}

impl<E: CachedEntity, T> fmt::Debug for Extreme<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extreme({self})")
    }
}
