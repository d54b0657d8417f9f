//! Handles: what a repository reads and writes through.
//!
//! Only two things are handles: a [`Context`] (reads use the cache; each write runs in its own
//! transaction) and a [`Transaction`]. The trait is sealed, so a driver pool or connection can
//! never be passed where a handle is expected: every write goes through the invalidation graph.

use crate::context::Context;
use crate::tx::Transaction;

mod sealed {
    pub trait Sealed {}
}

/// A cache handle: `&ctx` (a [`Context`]) or `&mut tx` (a [`Transaction`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cache handle, so repositories cannot read or write through it",
    label = "writes through this would bypass cache invalidation",
    note = "pass `&ctx` (a `cached_runtime::Context`) or `&mut tx` (from `ctx.begin().await?`); \
            the context owns the pool so that every write runs the invalidation graph"
)]
pub trait Handle: sealed::Sealed + Send {
    #[doc(hidden)]
    fn __handle(&mut self) -> HandleRef<'_>;
}

/// What a handle resolves to. Used by generated code.
#[doc(hidden)]
pub enum HandleRef<'a> {
    Context(&'a Context),
    Transaction(&'a mut Transaction),
}

/// A handle that can lock rows until it ends: only `&mut tx` (a [`Transaction`]). Repository
/// methods that take row locks (`get_for_update`, `get_many_for_update`) require it, so that
/// locking through a context, which would release the lock before the caller could use it,
/// does not compile.
#[diagnostic::on_unimplemented(
    message = "row locks need a transaction, and `{Self}` is not one",
    label = "this locks rows until a transaction ends",
    note = "lock through a transaction and hold the locks until it ends: \
            `let mut tx = ctx.begin().await?;` then `Scene::repo(&mut tx).get_for_update(id).await?` \
            (with your entity for `Scene`), then `tx.commit().await?`"
)]
pub trait RowLocks: Handle {
    #[doc(hidden)]
    fn __transaction(&mut self) -> &mut Transaction;
}

impl sealed::Sealed for Context {}
impl Handle for Context {
    fn __handle(&mut self) -> HandleRef<'_> {
        HandleRef::Context(self)
    }
}

impl sealed::Sealed for &Context {}
impl Handle for &Context {
    fn __handle(&mut self) -> HandleRef<'_> {
        HandleRef::Context(self)
    }
}

impl sealed::Sealed for &mut Transaction {}
impl Handle for &mut Transaction {
    fn __handle(&mut self) -> HandleRef<'_> {
        HandleRef::Transaction(self)
    }
}

impl RowLocks for &mut Transaction {
    fn __transaction(&mut self) -> &mut Transaction {
        self
    }
}
