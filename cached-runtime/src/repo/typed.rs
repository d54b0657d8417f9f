//! [`Repo`]: the methods every entity's repository has, written once.
//!
//! The derive generates `SceneRepo<H>` with the methods that depend on the entity's
//! attributes (`find_by_<index>`, pages, counters, inserts, ...) and makes it dereference to
//! `Repo<Scene, H>` for the rest (`get`, `require`, `get_many`, `list`, `count`, `update`,
//! `delete`, `delete_many`, and the row locks on a transaction). Written here, these are
//! type-checked once for every entity instead of once per entity: a user crate of many
//! entities compiles faster, and a call compiles to the same code.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use crate::entity::CachedEntity;
use crate::error::Result;
use crate::handle::{Handle, HandleRef, RowLocks};
use crate::key::Predicate;

/// The repository methods of entity `E` on the cache handle `H` (`&ctx` or `&mut tx`).
///
/// You do not build one: `Scene::repo(handle)` returns the generated `SceneRepo<H>`, which
/// dereferences to this, so `Scene::repo(&ctx).get(id)` calls [`Repo::get`].
pub struct Repo<E, H> {
    handle: H,
    // Resolved through the function `__new` stored, so that the methods need no `Handle`
    // bound: a repository built on something that is not a handle is one error, at `repo`.
    resolve: for<'h> fn(&'h mut H) -> HandleRef<'h>,
    entity: PhantomData<fn() -> E>,
}

impl<E, H: Handle> Repo<E, H> {
    /// The repository of `E` on `handle`. Used by generated code (`Scene::repo`).
    #[doc(hidden)]
    pub fn __new(handle: H) -> Self {
        Repo {
            handle,
            resolve: <H as Handle>::__handle,
            entity: PhantomData,
        }
    }
}

impl<E, H> Repo<E, H> {
    /// What the handle resolves to, for one operation. Used by generated code.
    #[doc(hidden)]
    pub fn __handle(&mut self) -> HandleRef<'_> {
        (self.resolve)(&mut self.handle)
    }
}

impl<E: CachedEntity, H> Repo<E, H> {
    /// The row with this id, or `None` (a miss is cached too).
    pub fn get<'r>(
        &'r mut self,
        id: impl Into<E::Id>,
    ) -> impl Future<Output = Result<Option<Arc<E>>>> + 'r {
        super::get::<E>(self.__handle(), id.into())
    }

    /// The row with this id, or `Error::NotFound` (HTTP 404 through the error's mapping):
    /// `get` for a handler whose answer to a missing row is "not found".
    pub fn require<'r>(
        &'r mut self,
        id: impl Into<E::Id>,
    ) -> impl Future<Output = Result<Arc<E>>> + 'r {
        super::require::<E>(self.__handle(), id.into())
    }

    /// The rows with these ids, in the order asked (`None` where absent); the rows not cached
    /// are loaded with one query.
    pub fn get_many<'r>(
        &'r mut self,
        ids: &'r [E::Id],
    ) -> impl Future<Output = Result<Vec<Option<Arc<E>>>>> + 'r {
        super::get_many::<E>(self.__handle(), ids)
    }

    /// Every row, ordered by id.
    pub fn list(&mut self) -> impl Future<Output = Result<Vec<Arc<E>>>> + '_ {
        super::find::<E>(self.__handle(), Predicate::All)
    }

    /// The number of rows.
    pub fn count(&mut self) -> impl Future<Output = Result<i64>> + '_ {
        super::count::<E>(self.__handle(), Predicate::All)
    }

    /// Applies a patch and returns the updated row. Fails with `Error::NotFound` if the row
    /// does not exist.
    pub fn update<'r>(
        &'r mut self,
        id: impl Into<E::Id>,
        patch: E::Update,
    ) -> impl Future<Output = Result<Arc<E>>> + 'r {
        super::update::<E>(self.__handle(), id.into(), patch)
    }

    /// Deletes a row and returns it. Fails with `Error::NotFound` if it does not exist.
    pub fn delete<'r>(&'r mut self, id: impl Into<E::Id>) -> impl Future<Output = Result<E>> + 'r {
        super::delete::<E>(self.__handle(), id.into())
    }

    /// Deletes the rows with these ids and returns how many existed.
    pub fn delete_many<'r>(
        &'r mut self,
        ids: &'r [E::Id],
    ) -> impl Future<Output = Result<u64>> + 'r {
        super::delete_many::<E>(self.__handle(), ids)
    }
}

/// The future of a locking read: boxed, because its type must not depend on the
/// [`RowLocks`] bound (an opaque type would repeat the bound's error at the call's `.await`),
/// and a locking read is a database round trip anyway.
pub type Locked<'r, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'r>>;

/// Row locks: only on a transaction ([`RowLocks`]), which holds them until it ends. The bound
/// is on each method rather than on the block, so that calling one on a context is the
/// trait's own error, which says what to write instead: one error per mistake.
impl<E: CachedEntity, H> Repo<E, H> {
    /// The row with this id, or `None`, locked against other writers until the transaction
    /// ends (`SELECT ... FOR UPDATE`; on SQLite the transaction's write lock; on MongoDB the
    /// document is owned by writing it, so another transaction's write of it fails with the
    /// retryable `Error::Conflict`). Only on a transaction; never fills the shared cache.
    pub fn get_for_update<'r>(&'r mut self, id: impl Into<E::Id>) -> Locked<'r, Option<Arc<E>>>
    where
        H: RowLocks,
    {
        Box::pin(super::get_for_update::<E>(
            self.handle.__transaction(),
            id.into(),
        ))
    }

    /// The rows with these ids, in the order asked (`None` where absent), locked until the
    /// transaction ends, as [`get_for_update`](Self::get_for_update).
    pub fn get_many_for_update<'r>(
        &'r mut self,
        ids: &'r [E::Id],
    ) -> Locked<'r, Vec<Option<Arc<E>>>>
    where
        H: RowLocks,
    {
        Box::pin(super::get_many_for_update::<E>(
            self.handle.__transaction(),
            ids,
        ))
    }
}
