//! Cache layers: the in-process layer on moka ([`local`]), with its stale-fill guard and single
//! flight ([`flight`]); with the `redis` feature, the invalidation broadcast that keeps many
//! instances' in-process layers in step (`redis`, over the wire form in `wire`).
//!
//! The layer stores normalized entries: a row under its row key, the ids a query matched under
//! the query key, a count under the count key, and a negative entry for an id known to be
//! absent. Rows are stored once, as `Arc`s, and handed out without copying or decoding.

use std::any::Any;
use std::sync::Arc;

use crate::entity::CachedEntity;
use crate::key::CacheKey;
use crate::value::KeyValue;

pub(crate) mod clock;
pub(crate) mod deps;
pub(crate) mod flight;
mod heat;
pub(crate) mod local;
#[cfg(feature = "redis")]
pub(crate) mod redis;
pub(crate) mod spellings;
pub(crate) mod weight;
#[cfg(feature = "redis")]
pub(crate) mod wire;

pub(crate) use local::LocalCache;

/// A cached row or view value, type-erased (downcast back to `Arc<E>` on the way out), with
/// the bytes it takes: its struct and the heap its fields own.
#[derive(Clone)]
pub(crate) struct AnyRow {
    value: Arc<dyn Any + Send + Sync>,
    bytes: usize,
}

impl AnyRow {
    /// `value`, which owns `heap` bytes besides its struct.
    pub fn new<T: Any + Send + Sync>(value: Arc<T>, heap: usize) -> Self {
        AnyRow {
            value,
            bytes: std::mem::size_of::<T>() + heap,
        }
    }

    /// An entity row, measured by [`CachedEntity::heap_size`].
    pub fn row<E: CachedEntity>(row: Arc<E>) -> Self {
        let heap = row.heap_size();
        AnyRow::new(row, heap)
    }

    /// The value as a `T`, or itself if it holds another type.
    #[inline]
    pub fn downcast<T: Any + Send + Sync>(self) -> Result<Arc<T>, Self> {
        let bytes = self.bytes;
        self.value
            .downcast::<T>()
            .map_err(|value| AnyRow { value, bytes })
    }

    /// The bytes the value takes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The value, to inspect without knowing its type.
    pub fn as_any(&self) -> &(dyn Any + Send + Sync) {
        &*self.value
    }
}

impl EntryData {
    /// Whether `other` is this very entry's data (the same allocation, or the same count):
    /// not replaced by a fill, nor dropped and filled again, since it was read.
    pub fn same(&self, other: &EntryData) -> bool {
        match (self, other) {
            (EntryData::Row(a), EntryData::Row(b)) => Arc::ptr_eq(&a.value, &b.value),
            (EntryData::Missing, EntryData::Missing) => true,
            (EntryData::Ids(a), EntryData::Ids(b)) => Arc::ptr_eq(a, b),
            (EntryData::Rows(a), EntryData::Rows(b)) => Arc::ptr_eq(a, b),
            (EntryData::Count(a), EntryData::Count(b)) => a == b,
            _ => false,
        }
    }
}

/// What an entry holds.
#[derive(Clone)]
pub(crate) enum EntryData {
    /// One row.
    Row(AnyRow),
    /// The id is known not to exist (a negative entry).
    Missing,
    /// The ids a query matched, in result order.
    Ids(Arc<[KeyValue]>),
    /// The rows of a keyset page, in page order (a page depends on each of them, so a hit is
    /// one lookup).
    Rows(Arc<[AnyRow]>),
    /// The number of rows a query matched.
    Count(i64),
}

/// The result of one database load: the entry for the key that missed, plus the rows the load
/// returned (a query result fills each matched row's own entry too), plus, for a view, what
/// the load read (the entry is stored only if none of it changed since the load began).
pub(crate) struct Loaded {
    pub data: EntryData,
    pub rows: Vec<(CacheKey, AnyRow)>,
    pub reads: Option<deps::ReadSet>,
}

impl Loaded {
    /// A load that yields one entry and nothing else.
    pub fn one(data: EntryData) -> Self {
        Loaded {
            data,
            rows: Vec::new(),
            reads: None,
        }
    }
}

/// A stamp taken before a database read or a transaction: the fill or write-through it leads
/// to is stored only if no invalidation of its key happened since (see [`LocalCache::fill`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    /// The invalidation sequence number when the token was taken.
    pub seq: u64,
    /// The clear epoch when the token was taken.
    pub epoch: u64,
    /// The entity's type generation when the token was taken.
    pub generation: u64,
    /// The entity's query generation when the token was taken.
    pub query_generation: u64,
}

/// A whole-entity invalidation a commit applies after its keyed changes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bump {
    /// Every entry of the entity (or view).
    Entity(&'static crate::entity::Namespace),
    /// Every query and count entry of the entity (its rows stay).
    Queries(&'static crate::entity::Namespace),
}

impl Bump {
    /// Adds `bump` to `bumps` unless the same bump is already there.
    pub fn push(bumps: &mut Vec<Bump>, bump: Bump) {
        let known = bumps.iter().any(|b| match (b, &bump) {
            (Bump::Entity(x), Bump::Entity(y)) | (Bump::Queries(x), Bump::Queries(y)) => {
                std::ptr::eq(*x, *y)
            }
            _ => false,
        });
        if !known {
            bumps.push(bump);
        }
    }

    /// The entity or view bumped.
    pub fn namespace(&self) -> &'static crate::entity::Namespace {
        match self {
            Bump::Entity(meta) | Bump::Queries(meta) => meta,
        }
    }

    /// The type name of the entity or view bumped.
    pub fn type_name(&self) -> &'static str {
        self.namespace().type_name
    }
}

/// One change a commit applies to the cache.
#[derive(Clone)]
pub(crate) enum Change {
    /// Replace the entry by this value (write-through), if no commit applied to the key since
    /// `token` was taken; otherwise drop the entry.
    Write { data: EntryData, token: Token },
    /// Drop the entry.
    Remove,
}
