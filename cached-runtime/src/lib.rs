//! Cached repositories with a compile-time invalidation graph.
//!
//! Annotate a row struct with `#[derive(CachedEntity)]` and get typed cache keys, a repository
//! (`Scene::repo(&ctx).get(42)`, `find_by_status`, `insert`, `update`, `increment_word_count`,
//! ...) and the entity's place in the invalidation graph. Every write goes through a cache
//! [`Transaction`] that computes exactly which cache entries the write changes and applies that
//! after the database commit; concurrent readers can never put a pre-commit value back.
//!
//! ```no_run
//! use cached_runtime::prelude::*;
//!
//! #[derive(CachedEntity, Clone, Debug)]
//! #[cache(table = "scenes", ttl = 60)]
//! pub struct Scene {
//!     #[cache(id)]
//!     pub id: i64,
//!     pub chapter_id: i64,
//!     #[cache(index)]
//!     pub status: String,
//!     pub word_count: i64,
//! }
//!
//! # async fn demo(pool: sqlx::SqlitePool) -> cached_runtime::Result<()> {
//! let ctx = Context::new(pool);
//! let scene = Scene::repo(&ctx).get(42).await?; // a miss, then hits
//! let drafts = Scene::repo(&ctx).find_by_status("draft").await?;
//!
//! let mut tx = ctx.begin().await?;
//! Scene::repo(&mut tx).increment_word_count(42, 250).await?;
//! let report = tx.commit().await?; // "invalidated 1 key(s): scene:42"
//! # Ok(()) }
//! ```
//!
//! Stores, one cargo feature each: `sqlite` (default), `postgres`, `mysql` (sqlx) and `mongo`
//! (the official `mongodb` driver; `Context::new(client.database("app"))`). The generated
//! repository is the same on all of them.
//!
//! Many instances in front of one database: with the `redis` feature, a [`RedisBroadcast`]
//! passed to [`ContextBuilder::broadcast`] sends every invalidation to the other instances on
//! the same Redis channel, and applies theirs.
#![warn(missing_docs)]

#[cfg(all(
    feature = "feed",
    not(any(feature = "postgres", feature = "mongo", feature = "mysql-feed"))
))]
compile_error!(
    "the `feed` feature needs the `postgres` or the `mongo` store, or `mysql-feed`: SQLite needs \
     no change feed (every writer of an embedded database is in this process)"
);

// The layers, lowest first: a module imports only from modules of its own layer or of earlier
// ones, and never in a cycle (tests/layers.rs checks both; ARCHITECTURE.md draws the graph).
// 1. values, text folding, errors
mod collation;
mod error;
mod value;
mod web;
// 2. the entity model
mod aggregate;
mod entity;
mod key;
mod page;
mod registry;
// 3. what the cache reports and counts
mod hooks;
mod metrics;
mod report;
mod stats;
// 4. stores and what they say about the schema
mod schema;
mod store;
// 5. the cache layers, and the graph computed over them
mod cache;
pub mod graph;
// 6. the engine every handle shares
mod engine;
#[cfg(feature = "feed")]
mod feed;
// 7. transactions
mod tx;
// 8. the context, and what is built on it
mod audit;
mod context;
mod view;
// 9. the handles the generated repositories take, and their operations
mod handle;
mod repo;
// 10. what serves HTTP: the admin router, client-cache headers
#[cfg(feature = "axum")]
pub mod admin;
#[cfg(feature = "axum")]
pub mod headers;

pub use aggregate::{AggregateValue, Extreme, GroupedCount};
pub use audit::{AuditReport, Auditor, Mismatch, DEFAULT_SETTLE};
pub use cache::clock::ManualClock;
#[cfg(feature = "redis")]
pub use cache::redis::{Outbox, RedisBroadcast, SharedCache};
pub use context::{Context, ContextBuilder, DEFAULT_MAX_ENTRIES};
pub use entity::{
    CachedEntity, CompositeMeta, EntityMeta, GeneratedId, IndexKind, IndexMeta, Namespace, NewRow,
    OrderMeta, Patch, RelatesTo, RelationMeta, ViewMeta,
};
pub use error::{ConstraintKind, Error, Result};
#[cfg(feature = "feed")]
pub use feed::{ChangeFeed, FeedSetup};
pub use graph::graph;
pub use handle::{Handle, RowLocks};
pub use hooks::{Invalidation, Source};
pub use key::{CacheKey, EntityQuery, Predicate, QueryKey};
pub use page::{Cursor, Page, Paged};
pub use repo::{Locked, Repo};
pub use report::CommitReport;
pub use schema::SchemaReport;
pub use stats::{EntityReads, SharedStats, Stats};
pub use store::{RawStore, Store};
pub use tx::raw::{RawWrite, Targeted, Touches, Untargeted};
pub use tx::Transaction;
pub use value::{
    DecodeError, FromValue, KeyPart, KeyValue, ListItem, ToValue, Value, ValueError, ValueKind,
};
pub use view::{CachedView, LoadView, Reads, ViewCtx, ViewKey, ViewRead};
#[cfg(feature = "axum")]
pub use web::ErrorDetail;

#[cfg(feature = "derive")]
pub use cached_derive::{CachedEntity, CachedView};

/// What most users import: the derive, the context and the traits generated code relies on.
pub mod prelude {
    pub use crate::{
        CacheKey, CachedEntity, CachedView, CommitReport, Context, EntityQuery, Error, LoadView,
        QueryKey, RelatesTo, Result, Transaction, ViewCtx,
    };
}

/// What generated code needs. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::entity::EntityState;
    pub use crate::handle::HandleRef;
    pub use crate::registry::{reaches, EntityRegistration, RowCodec, ViewRegistration};
    pub use crate::repo::{
        add, attach, count, count_grouped, delete, delete_many, delete_where, extreme, find, get,
        get_by, get_for_update, get_many, get_many_for_update, insert, insert_many, insert_new,
        insert_new_many, joined, list_op, page, require, subtract, update, update_if_version,
        update_many,
    };
    pub use crate::value::read_column;
    pub use inventory;
    #[cfg(feature = "serde")]
    pub use serde;
    pub use std::sync::Arc;
    pub use std::time::Duration;

    /// A patch field present in a request body: its value, `null` included (`Some(None)` for
    /// a nullable column); an absent field keeps the patch's default, `None`.
    #[cfg(feature = "serde")]
    pub fn present<'de, D, T>(deserializer: D) -> ::core::result::Result<Option<T>, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: serde::Deserialize<'de>,
    {
        T::deserialize(deserializer).map(Some)
    }

    /// Reads a foreign-key field as the related entity's id.
    #[diagnostic::on_unimplemented(
        message = "a foreign key to an entity whose id is `{Id}` must be `{Id}` or `Option<{Id}>`, not `{Self}`",
        label = "this field holds the related entity's id"
    )]
    pub trait ForeignKey<Id> {
        /// The related id, `None` when the key is null.
        fn foreign_key(&self) -> Option<Id>;
    }
    impl<T: Clone> ForeignKey<T> for T {
        fn foreign_key(&self) -> Option<T> {
            Some(self.clone())
        }
    }
    impl<T: Clone> ForeignKey<T> for Option<T> {
        fn foreign_key(&self) -> Option<T> {
            self.clone()
        }
    }

    /// Asserts at compile time that a type may be an id, index or foreign key.
    pub const fn assert_key_part<T: crate::KeyPart>() {}
    /// Asserts at compile time that a field can be stored.
    pub const fn assert_to_value<T: crate::ToValue>() {}
    /// Asserts at compile time that a `relates_to` target is a cached entity.
    pub const fn assert_entity<T: crate::CachedEntity>() {}

    /// The answer of [`reaches`] as a type, so that "not connected" is a trait error with a
    /// message of its own rather than a panic in constant evaluation.
    pub struct Connected<const YES: bool>;

    /// Implemented only by `Connected<true>`: the entity `E` a view `V` reads is connected to
    /// the view's key `K`.
    #[diagnostic::on_unimplemented(
        message = "the view `{V}` reads `{E}`, but `{E}` and the view's key `{K}` are not connected by `relates_to` edges",
        label = "no `relates_to` path, in either direction, from `{E}` to `{K}` through the entities `{V}` reads",
        note = "add `relates_to = \"{K}\"` to `{E}` (or `relates_to = \"{E}\"` to `{K}`, or a chain through an entity in `reads(...)`), or move `{E}` to `reads_all(...)` so that any write to it invalidates every `{V}`"
    )]
    pub trait ReachesKey<V, E, K> {}
    impl<V, E, K> ReachesKey<V, E, K> for Connected<true> {}

    /// Asserts at compile time that `C` is `Connected<true>` for view `V`, entity `E`, key `K`.
    pub const fn assert_reaches<V, E, K, C: ReachesKey<V, E, K>>() {}
}

/// The generated patch struct (`SceneUpdate`), with `Deserialize` when the `serde` feature is
/// on: absent fields unchanged, `null` a NULL, unknown fields refused.
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __patch_struct {
    ($serde:literal, $present:literal, $(#[$m:meta])* $vis:vis struct $name:ident {
        $( $(#[$fm:meta])* pub $field:ident : $ty:ty ),* $(,)?
    }) => {
        $(#[$m])*
        #[derive($crate::__private::serde::Deserialize)]
        #[serde(crate = $serde, default, deny_unknown_fields)]
        $vis struct $name {
            $( $(#[$fm])* #[serde(deserialize_with = $present)] pub $field: $ty ),*
        }
    };
}

/// The generated patch struct, as declared (no `serde` feature).
#[cfg(not(feature = "serde"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __patch_struct {
    ($serde:literal, $present:literal, $item:item) => {
        $item
    };
}

/// The generated insert shape (`NewScene`), with `Deserialize` when the `serde` feature is on
/// (unknown fields refused).
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __new_row_struct {
    ($serde:literal, $(#[$m:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive($crate::__private::serde::Deserialize)]
        #[serde(crate = $serde, deny_unknown_fields)]
        $vis struct $name { $($body)* }
    };
}

/// The generated insert shape, as declared (no `serde` feature).
#[cfg(not(feature = "serde"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __new_row_struct {
    ($serde:literal, $item:item) => {
        $item
    };
}

/// The invalidation fold of `text` (test-only: `tests/collation_proof.rs` checks it against
/// the live collations).
#[cfg(feature = "__testing")]
#[doc(hidden)]
pub fn __fold(text: &str) -> String {
    collation::fold(text).into_owned()
}

/// The README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The guide's Rust examples (`docs/*.md`), compiled as doctests likewise, one page each.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../docs/entities.md")]
    pub struct Entities;
    #[doc = include_str!("../../docs/queries.md")]
    pub struct Queries;
    #[doc = include_str!("../../docs/views.md")]
    pub struct Views;
    #[doc = include_str!("../../docs/transactions.md")]
    pub struct Transactions;
    #[doc = include_str!("../../docs/errors.md")]
    pub struct Errors;
    #[doc = include_str!("../../docs/guarantees.md")]
    pub struct Guarantees;
    #[doc = include_str!("../../docs/instances.md")]
    pub struct Instances;
    #[doc = include_str!("../../docs/operations.md")]
    pub struct Operations;
}
