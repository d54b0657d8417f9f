//! The operations behind every generated repository method.
//!
//! Each takes a [`HandleRef`]: on a context, reads use the cache and each write runs in a
//! transaction of its own; on a transaction, everything goes through its connection and the
//! cache changes wait for its commit.

use std::sync::Arc;

use crate::aggregate::{AggregateValue, Extreme, GroupedCount};
use crate::engine::{aggregate, join, read};
use crate::entity::{CachedEntity, NewRow};
use crate::error::{Error, Result};
use crate::handle::HandleRef;
use crate::key::Predicate;
use crate::page::{Page, Paged};
use crate::tx::{RunToEnd, Transaction, ATTEMPTS};
use crate::value::{KeyPart, Value};

mod typed;
pub use typed::{Locked, Repo};

/// Runs a write on the handle's transaction, or in a transaction of its own on a context
/// (retried as a whole when the database aborts it with a retryable conflict: nothing of an
/// aborted attempt was written, and the cache is only touched by the attempt that commits).
///
/// On a context the whole write runs to its end, as a commit does ([`RunToEnd`]): polled in
/// place while its caller waits, and moved to a task of its own if the caller's future is
/// dropped (a timeout, a client that hung up), so that no statement is ever abandoned halfway
/// on a pooled connection. Everything `$op` names must therefore be owned (`'static`): call
/// sites clone what they borrow before the macro.
///
/// This is the loop of [`Context::transaction`](crate::Context::transaction) written out
/// rather than called: through that function's async closure, rustc cannot prove the
/// repository futures `Send` for every lifetime ("implementation of `Send` is not general
/// enough"), and they must be spawnable.
macro_rules! in_tx {
    ($handle:expr, $tx:ident => $op:expr) => {
        match $handle {
            HandleRef::Transaction($tx) => $op,
            HandleRef::Context(ctx) => {
                let guarded = ctx.engine().settings.guard_commits;
                let ctx = ctx.clone();
                let work = async move {
                    let mut attempt = 1;
                    loop {
                        let mut own = ctx.begin().await?;
                        let $tx = &mut own;
                        let result = match $op {
                            Ok(out) => own.commit().await.map(|_| out),
                            Err(err) => {
                                // Roll back now rather than when the pool next touches the
                                // connection, so that row locks are released at once.
                                let _ = own.rollback().await;
                                Err(err)
                            }
                        };
                        match result {
                            Err(err) if err.is_retryable() && attempt < ATTEMPTS => {
                                attempt += 1;
                                tokio::task::yield_now().await;
                            }
                            done => break done,
                        }
                    }
                };
                match guarded {
                    true => RunToEnd::new(work).await,
                    // Test-only (`__unguarded_commits`): a dropped caller stops the write.
                    false => work.await,
                }
            }
        }
    };
}

/// `get`: one row by id.
pub async fn get<E: CachedEntity>(handle: HandleRef<'_>, id: E::Id) -> Result<Option<Arc<E>>> {
    match handle {
        HandleRef::Context(ctx) => read::get_revalidating::<E>(ctx.engine(), id).await,
        // Boxed (as every transaction read here), as a load: the hit path's future stays small.
        HandleRef::Transaction(tx) => Ok(Box::pin(tx.read_one::<E>(&id)).await?.map(Arc::new)),
    }
}

/// `require`: the row with this id, or [`Error::NotFound`] (HTTP 404).
pub async fn require<E: CachedEntity>(handle: HandleRef<'_>, id: E::Id) -> Result<Arc<E>> {
    let asked = id.key_value();
    get::<E>(handle, id).await?.ok_or_else(|| Error::NotFound {
        entity: E::meta().type_name,
        id: asked.to_string(),
    })
}

/// `get_many`: rows by id, in the order asked.
pub async fn get_many<E: CachedEntity>(
    handle: HandleRef<'_>,
    ids: &[E::Id],
) -> Result<Vec<Option<Arc<E>>>> {
    match handle {
        HandleRef::Context(ctx) => read::get_many::<E>(ctx.engine(), ids).await,
        HandleRef::Transaction(tx) => Box::pin(tx.read_many::<E>(ids)).await,
    }
}

/// `find_by_<field>` and `list`: the rows matching a predicate, ordered by id.
pub async fn find<E: CachedEntity>(
    handle: HandleRef<'_>,
    predicate: Predicate,
) -> Result<Vec<Arc<E>>> {
    match handle {
        HandleRef::Context(ctx) => read::find_revalidating::<E>(ctx.engine(), predicate).await,
        HandleRef::Transaction(tx) => Box::pin(tx.read_where::<E>(&predicate)).await,
    }
}

/// `get_by_<unique field(s)>`: the one row matching a unique lookup, or `None`; cached as the
/// lookup's ids (dropped by the writes that change them) plus the row.
pub async fn get_by<E: CachedEntity>(
    handle: HandleRef<'_>,
    predicate: Predicate,
) -> Result<Option<Arc<E>>> {
    Ok(find::<E>(handle, predicate).await?.into_iter().next())
}

/// `page_by_<field>` / `page`: one keyset page in the entity's `order_at`th declared order.
pub async fn page<E: CachedEntity>(
    handle: HandleRef<'_>,
    predicate: Predicate,
    order_at: usize,
    page: Page,
) -> Result<Paged<E>> {
    match handle {
        HandleRef::Context(ctx) => read::page::<E>(ctx.engine(), predicate, order_at, page).await,
        HandleRef::Transaction(tx) => Box::pin(tx.read_page::<E>(&predicate, order_at, page)).await,
    }
}

/// `count_by_<field>` and `count`.
pub async fn count<E: CachedEntity>(handle: HandleRef<'_>, predicate: Predicate) -> Result<i64> {
    match handle {
        HandleRef::Context(ctx) => read::count_revalidating::<E>(ctx.engine(), predicate).await,
        HandleRef::Transaction(tx) => Box::pin(tx.count_where::<E>(&predicate)).await,
    }
}

/// `count_grouped_by_<field>`: each group's value and its number of rows.
pub async fn count_grouped<E: CachedEntity, T: AggregateValue>(
    handle: HandleRef<'_>,
    query: GroupedCount<E, T>,
) -> Result<Vec<(T, i64)>> {
    match handle {
        HandleRef::Context(ctx) => {
            Ok((*aggregate::count_grouped(ctx.engine(), query).await?).clone())
        }
        HandleRef::Transaction(tx) => tx.count_grouped::<E, T>(query.column).await,
    }
}

/// `max_<column>_by_<field>` / `min_...`: the largest or smallest value of an order column
/// among a query's rows.
pub async fn extreme<E: CachedEntity, T: AggregateValue>(
    handle: HandleRef<'_>,
    query: Extreme<E, T>,
) -> Result<Option<T>> {
    match handle {
        HandleRef::Context(ctx) => aggregate::extreme(ctx.engine(), query).await,
        HandleRef::Transaction(tx) => {
            let column = E::meta().orders[query.order_at].column;
            tx.extreme::<E, T>(&query.predicate, column, query.max)
                .await
        }
    }
}

/// `insert`: one row; the stored row goes into the cache on commit.
pub async fn insert<E: CachedEntity>(handle: HandleRef<'_>, row: &E) -> Result<Arc<E>> {
    let values = row.values();
    let rows = in_tx!(handle, tx => tx.insert_rows::<E>(vec![values.clone()]).await)?;
    the_one::<E>(rows)
}

/// `insert_many`: several rows, one statement per chunk, one cache update on commit.
pub async fn insert_many<E: CachedEntity>(
    handle: HandleRef<'_>,
    rows: &[E],
) -> Result<Vec<Arc<E>>> {
    let values: Vec<Vec<Value>> = rows.iter().map(E::values).collect();
    in_tx!(handle, tx => tx.insert_rows::<E>(values.clone()).await)
}

/// `insert` of an entity whose id is generated: the row without its id; returns it as
/// stored, with the id the database (or, for an `ObjectId`, this process) gave it.
pub async fn insert_new<N: NewRow>(handle: HandleRef<'_>, row: &N) -> Result<Arc<N::Entity>> {
    let values = row.values();
    let rows = in_tx!(handle, tx => tx.insert_rows::<N::Entity>(vec![values.clone()]).await)?;
    the_one::<N::Entity>(rows)
}

/// `insert_many` of an entity whose id is generated: returns the rows as stored, in the order
/// given, each with its id.
pub async fn insert_new_many<N: NewRow>(
    handle: HandleRef<'_>,
    rows: &[N],
) -> Result<Vec<Arc<N::Entity>>> {
    let values: Vec<Vec<Value>> = rows.iter().map(N::values).collect();
    in_tx!(handle, tx => tx.insert_rows::<N::Entity>(values.clone()).await)
}

/// The row of a one-row insert (`insert_rows` fails with `Error::ReadBack` unless it returns
/// every row it wrote, so this is a guard, not a path).
fn the_one<E: CachedEntity>(mut rows: Vec<Arc<E>>) -> Result<Arc<E>> {
    rows.pop().ok_or(Error::ReadBack {
        entity: E::meta().type_name,
        expected: 1,
        found: 0,
    })
}

/// `update`: applies a patch to one row and returns the updated row.
pub async fn update<E: CachedEntity>(
    handle: HandleRef<'_>,
    id: E::Id,
    patch: E::Update,
) -> Result<Arc<E>> {
    in_tx!(handle, tx => tx.update_row::<E>(&id, &patch).await)
}

/// `update_if_version`: applies a patch only if the row is still at version `expected`.
pub async fn update_if_version<E: CachedEntity>(
    handle: HandleRef<'_>,
    id: E::Id,
    expected: i64,
    patch: E::Update,
) -> Result<Arc<E>> {
    in_tx!(handle, tx => tx.update_if_version::<E>(&id, expected, &patch).await)
}

/// `get_for_update`: one row, locked against other writers until the transaction ends.
pub async fn get_for_update<E: CachedEntity>(
    tx: &mut Transaction,
    id: E::Id,
) -> Result<Option<Arc<E>>> {
    let mut rows = tx.read_for_update::<E>(std::slice::from_ref(&id)).await?;
    Ok(rows.pop().flatten())
}

/// `get_many_for_update`: rows by id, in the order asked, locked until the transaction ends.
pub async fn get_many_for_update<E: CachedEntity>(
    tx: &mut Transaction,
    ids: &[E::Id],
) -> Result<Vec<Option<Arc<E>>>> {
    tx.read_for_update::<E>(ids).await
}

/// `decrement_<field>`: subtracts `by` atomically; `by = i64::MIN` cannot be negated and is
/// refused with [`Error::OutOfRange`] before anything runs.
pub async fn subtract<E: CachedEntity>(
    handle: HandleRef<'_>,
    id: E::Id,
    column: &'static str,
    by: i64,
) -> Result<Arc<E>> {
    let Some(delta) = by.checked_neg() else {
        return Err(Error::OutOfRange {
            entity: E::meta().type_name,
            column,
            message: "cannot decrement by i64::MIN (its negation does not fit an i64); \
                      increment by i64::MAX and then by 1 instead",
        });
    };
    add::<E>(handle, id, column, delta).await
}

/// `increment_<field>` / `decrement_<field>`: adds `delta` atomically.
pub async fn add<E: CachedEntity>(
    handle: HandleRef<'_>,
    id: E::Id,
    column: &'static str,
    delta: i64,
) -> Result<Arc<E>> {
    in_tx!(handle, tx => tx.add_to::<E>(&id, column, delta).await)
}

/// `update_many_by_<field>`: applies a patch to every row matching a predicate; returns the
/// updated rows, ordered by id.
pub async fn update_many<E: CachedEntity>(
    handle: HandleRef<'_>,
    predicate: Predicate,
    patch: E::Update,
) -> Result<Vec<Arc<E>>> {
    in_tx!(handle, tx => tx.update_where::<E>(&predicate, &patch).await)
}

/// `append_<field>` / `remove_<field>`: edits a list field of one row in one operation.
pub async fn list_op<E: CachedEntity>(
    handle: HandleRef<'_>,
    id: E::Id,
    column: &'static str,
    item: Value,
    append: bool,
) -> Result<Arc<E>> {
    in_tx!(handle, tx => tx.list_op::<E>(&id, column, item.clone(), append).await)
}

/// `attach`: inserts the join row `values` unless a row already joins its pair (`predicate`,
/// the unique pair of foreign keys); returns the row that joins them, new or old.
pub async fn attach<E: CachedEntity>(
    handle: HandleRef<'_>,
    predicate: Predicate,
    values: Vec<Value>,
) -> Result<Arc<E>> {
    in_tx!(handle, tx => async {
        if let Some(found) = tx.read_where::<E>(&predicate).await?.into_iter().next() {
            return Ok(found);
        }
        the_one::<E>(tx.insert_rows::<E>(vec![values.clone()]).await?)
    }.await)
}

/// `<targets>_by_<column>` on a join entity: the `B` rows its rows matching `predicate` point
/// to through `column` (`target` reads one row's key), in the order of the join rows' ids.
pub async fn joined<J: CachedEntity, B: CachedEntity>(
    handle: HandleRef<'_>,
    predicate: Predicate,
    column: &'static str,
    target: fn(&J) -> Option<B::Id>,
) -> Result<Vec<Arc<B>>> {
    match handle {
        HandleRef::Context(ctx) => {
            join::joined::<J, B>(ctx.engine(), predicate, column, target).await
        }
        HandleRef::Transaction(tx) => {
            let joins = tx.read_where::<J>(&predicate).await?;
            let ids = join::targets::<J, B>(&joins, target);
            Ok(tx
                .read_many::<B>(&ids)
                .await?
                .into_iter()
                .flatten()
                .collect())
        }
    }
}

/// `detach`: the rows matching a unique pair of foreign keys; returns how many there were.
pub async fn delete_where<E: CachedEntity>(
    handle: HandleRef<'_>,
    predicate: Predicate,
) -> Result<u64> {
    in_tx!(handle, tx => tx.delete_where::<E>(&predicate).await)
}

/// `delete`: one row, which must exist; returns it.
pub async fn delete<E: CachedEntity>(handle: HandleRef<'_>, id: E::Id) -> Result<E> {
    in_tx!(handle, tx => tx.delete_one::<E>(&id).await)
}

/// `delete_many`: rows by id; returns how many existed.
pub async fn delete_many<E: CachedEntity>(handle: HandleRef<'_>, ids: &[E::Id]) -> Result<u64> {
    let ids = ids.to_vec();
    let deleted = in_tx!(handle, tx => tx.delete_rows::<E>(&ids).await)?;
    Ok(deleted.len() as u64)
}
