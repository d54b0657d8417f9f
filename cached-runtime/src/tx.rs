//! Cache transactions: database writes whose invalidations apply only after the commit.
//!
//! A [`Transaction`] wraps a database transaction. Each write computes, from the old and the
//! new row, the cache changes it implies (rewrite the row entry, drop the query entries whose
//! membership changed) and records them. [`Transaction::commit`] commits in the database and
//! then applies the recorded changes at once; [`Transaction::rollback`], an error, or dropping
//! the transaction discards them. Reads on a transaction go to the database through the
//! transaction's own connection: they see its writes and never fill the shared cache.
//!
//! A commit runs to completion on a task of its own: a caller that stops waiting for it (a
//! timeout, a client that hung up) cannot stop it between the database commit and the cache
//! apply. If even that task is stopped (its runtime shuts down) while the database commit is
//! under way, the keys the transaction touched are dropped, never left as they were.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::cache::{Bump, Change, EntryData, Token};
use crate::context::Context;
use crate::entity::{CachedEntity, EntityMeta};
use crate::error::{Error, Result};
use crate::graph::{self, views};
use crate::hooks::Source;
use crate::key::CacheKey;
use crate::schema::Schema;
use crate::store::{Exec, TxOps};
use crate::value::{KeyPart as _, KeyValue};

/// An open cache transaction. Like `sqlx::Transaction`: `commit` consumes it, and dropping it
/// rolls back.
#[must_use = "a transaction is rolled back when dropped; call `.commit().await`"]
pub struct Transaction {
    ctx: Context,
    conn: Box<dyn TxOps>,
    /// The cascades a delete follows.
    pub(crate) schema: Arc<Schema>,
    token: Token,
    pending: Pending,
    failed: bool,
}

/// The cache changes recorded so far, last change per key wins, in first-touch order, and
/// whole-entity bumps. Which view instances they reach is decided at apply time, from what
/// each cached instance read.
#[derive(Default)]
pub(crate) struct Pending {
    order: Vec<CacheKey>,
    changes: HashMap<CacheKey, Change>,
    bumps: Vec<Bump>,
}

impl Pending {
    fn record(&mut self, key: CacheKey, change: Change) {
        if self.changes.insert(key.clone(), change).is_none() {
            self.order.push(key);
        }
    }

    fn into_changes(mut self) -> (Vec<(CacheKey, Change)>, Vec<Bump>) {
        let changes = self
            .order
            .into_iter()
            .filter_map(|key| self.changes.remove(&key).map(|c| (key, c)))
            .collect();
        (changes, self.bumps)
    }
}

/// What a commit did to the cache: the keys it dropped or rewrote (queries first).
///
/// Forward these to whatever else caches the same data (an HTTP layer's client caches, say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    pub(crate) keys: Vec<CacheKey>,
    pub(crate) entities: Vec<&'static str>,
}

impl CommitReport {
    /// The keys invalidated, queries first.
    pub fn keys(&self) -> &[CacheKey] {
        &self.keys
    }

    /// The keys as strings (`scene:42`, `scene?status=draft`, ...).
    pub fn key_strings(&self) -> Vec<String> {
        self.keys.iter().map(ToString::to_string).collect()
    }

    /// Entities and views invalidated as a whole (by type name): `invalidate_entity`, a view
    /// declared `reads_all`, a raw write that `touches_all`.
    pub fn entities(&self) -> &[&'static str] {
        &self.entities
    }

    /// Whether the commit invalidated nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.entities.is_empty()
    }

    /// Whether the commit invalidated this key.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.keys.contains(key)
    }
}

impl fmt::Display for CommitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalidated {} key(s)", self.keys.len())?;
        for (i, key) in self.keys.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "{key}")?;
        }
        for entity in &self.entities {
            write!(f, "; all of {entity}")?;
        }
        Ok(())
    }
}

impl Transaction {
    pub(crate) async fn begin(ctx: Context) -> Result<Self> {
        let schema = ctx.schema().await?;
        // `BEGIN` runs to its end on a task of its own: a caller dropped while it is in flight
        // would otherwise hand the connection back to the pool inside a transaction, whose
        // old snapshot later loads on that connection would read and cache as fresh. Dropped
        // unused on that task, the transaction rolls back the way sqlx's always do.
        let begin = ctx.inner.store.begin();
        #[cfg(feature = "__testing")]
        let begin = {
            let inline = ctx.inner.commit_inline;
            async move {
                if inline {
                    return Some(begin.await);
                }
                to_completion(begin).await
            }
        };
        #[cfg(not(feature = "__testing"))]
        let begin = to_completion(begin);
        let conn = begin.await.unwrap_or(Err(Error::RuntimeShutdown {
            operation: "opening a transaction",
        }))?;
        // Taken after BEGIN: any commit applied to the cache after this point may be newer
        // than what this transaction writes, and makes its write-through fall back to a drop.
        let token = ctx.inner.cache.token_now();
        Ok(Transaction {
            ctx,
            conn,
            schema,
            token,
            pending: Pending::default(),
            failed: false,
        })
    }

    /// The context this transaction belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The keys this transaction will invalidate when it commits, so far. The view instances
    /// that read them are found when the commit applies, and are listed in its report.
    pub fn pending_keys(&self) -> &[CacheKey] {
        &self.pending.order
    }

    /// Commits in the database, then applies the recorded invalidations and returns them.
    ///
    /// If an earlier statement failed, rolls back and returns [`Error::TransactionAborted`];
    /// the cache is untouched. If the database aborts the transaction at commit (a
    /// serialization failure, MongoDB's `TransientTransactionError`), the cache is untouched
    /// and the error is the retryable [`Error::Conflict`]. If the outcome of the commit is
    /// unknown (a connection lost during `COMMIT`; on MongoDB, after retrying
    /// `UnknownTransactionCommitResult`), the keys this transaction touched are dropped (never
    /// rewritten), so the cache cannot diverge from the database whichever way it went.
    ///
    /// Dropping the returned future does not stop the commit: it runs to the end (database
    /// commit, then cache apply) on a task of its own, so a timeout or a client that hangs up
    /// can never leave the cache older than the database.
    pub async fn commit(self) -> Result<CommitReport> {
        #[cfg(feature = "__testing")]
        if self.ctx.inner.commit_inline {
            return self.finish(false).await;
        }
        // If the runtime shuts down first, the task's guard dropped the keys the transaction
        // touched once the database commit had begun.
        to_completion(self.finish(true))
            .await
            .unwrap_or(Err(Error::CommitInterrupted))
    }

    /// The commit itself: database, then cache. `guarded`: if this future is dropped while
    /// the database commit is under way, drop the touched keys.
    async fn finish(self, guarded: bool) -> Result<CommitReport> {
        #[cfg(feature = "__testing")]
        if let Some(delay) = self.ctx.inner.cache.commit_delay {
            tokio::time::sleep(delay).await;
        }
        let Transaction {
            ctx,
            conn,
            pending,
            failed,
            ..
        } = self;
        if failed {
            return Err(rollback_after(conn, Error::TransactionAborted).await);
        }
        let (changes, bumps) = pending.into_changes();
        let guard = guarded.then(|| UnknownOutcome {
            ctx: &ctx,
            changes: &changes,
            bumps: &bumps,
        });
        let committed = conn.commit().await;
        // The database answered: defuse the guard (it only borrows).
        std::mem::forget(guard);
        match committed {
            Ok(()) => Ok(ctx.apply_commit(changes, bumps, Source::Commit).await),
            // The database aborted the transaction: nothing was written, nothing to drop.
            Err(err) if err.is_retryable() => Err(err),
            Err(err) => {
                let drops = changes
                    .into_iter()
                    .map(|(key, _)| (key, Change::Remove))
                    .collect();
                ctx.apply_commit(drops, bumps, Source::FailedCommit).await;
                Err(err)
            }
        }
    }

    /// Rolls back. The cache is untouched.
    pub async fn rollback(self) -> Result<()> {
        self.conn.rollback().await
    }

    pub(crate) fn exec(&mut self) -> Exec<'_> {
        Exec::new(self.conn.ops())
    }

    /// Marks the transaction failed: it can only roll back.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
    }

    /// Marks the transaction failed when a database statement failed, so that it cannot
    /// commit half of its work.
    pub(crate) fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(
            Error::Database(_)
            | Error::Constraint { .. }
            | Error::Unsupported { .. }
            | Error::Decode { .. }
            | Error::Conflict { .. },
        ) = &result
        {
            self.failed = true;
        }
        #[cfg(feature = "mongo")]
        if let Err(Error::Mongo(_)) = &result {
            self.failed = true;
        }
        result
    }

    /// Records a written row: its entry is rewritten on commit, and the queries whose
    /// membership changed between `old` and `new` are dropped.
    pub(crate) fn record_write<E: CachedEntity>(&mut self, old: Option<&E>, new: &Arc<E>) {
        let meta = E::meta();
        // With no old row (an update of non-key fields), membership cannot have changed.
        let queries = match old {
            Some(old) => {
                graph::query_keys(meta, Some(&old.index_values()), Some(&new.index_values()))
            }
            None => Vec::new(),
        };
        self.drop_keys(queries);
        self.wrote(meta);
        let key = CacheKey::row(meta, new.id().key_value());
        self.write_row(key, EntryData::Row(new.clone()));
    }

    /// Records an inserted row.
    pub(crate) fn record_insert<E: CachedEntity>(&mut self, new: &Arc<E>) {
        let meta = E::meta();
        self.drop_keys(graph::query_keys(meta, None, Some(&new.index_values())));
        self.wrote(meta);
        let key = CacheKey::row(meta, new.id().key_value());
        self.write_row(key, EntryData::Row(new.clone()));
    }

    /// Records a deleted row: its entry becomes a negative entry on commit.
    pub(crate) fn record_delete<E: CachedEntity>(&mut self, old: &E) {
        let meta = E::meta();
        self.drop_keys(graph::query_keys(meta, Some(&old.index_values()), None));
        self.wrote(meta);
        self.write_row(
            CacheKey::row(meta, old.id().key_value()),
            EntryData::Missing,
        );
    }

    /// Records a raw write's declared effect: these rows of `meta` and every query of `meta`
    /// (or every entry of `meta`); the view instances that read any of it follow at apply.
    pub(crate) fn record_touch(&mut self, meta: &'static EntityMeta, ids: Option<Vec<KeyValue>>) {
        match ids {
            Some(ids) => {
                self.drop_keys(ids.into_iter().map(|id| CacheKey::row(meta, id)).collect());
                views::push_bump(&mut self.pending.bumps, Bump::Queries(meta));
            }
            None => views::push_bump(&mut self.pending.bumps, Bump::Entity(meta)),
        }
        self.wrote(meta);
    }

    /// Records rows changed by a foreign key's action: their entries are dropped, with every
    /// query of their entity (which ones they left is not known without reading them).
    pub(crate) fn record_cascaded(&mut self, meta: &'static EntityMeta, ids: &[KeyValue]) {
        self.drop_keys(
            ids.iter()
                .map(|id| CacheKey::row(meta, id.clone()))
                .collect(),
        );
        views::push_bump(&mut self.pending.bumps, Bump::Queries(meta));
        self.wrote(meta);
    }

    /// A write to `meta`: views that declared `reads_all` of it are dropped as a whole.
    fn wrote(&mut self, meta: &'static EntityMeta) {
        views::coarse_bumps(meta, &mut self.pending.bumps);
    }

    fn drop_keys(&mut self, keys: Vec<CacheKey>) {
        for key in keys {
            self.pending.record(key, Change::Remove);
        }
    }

    fn write_row(&mut self, key: CacheKey, data: EntryData) {
        let token = Token {
            generation: self.ctx.inner.cache.generation(key.entity()),
            query_generation: self.ctx.inner.cache.query_generation(key.entity()),
            ..self.token
        };
        self.pending.record(key, Change::Write { data, token });
    }
}

/// Drops the keys of a commit whose database outcome is unknown because its future was
/// dropped during the database commit (see [`Transaction::commit`]). Forgotten once the
/// database answered.
struct UnknownOutcome<'a> {
    ctx: &'a Context,
    changes: &'a [(CacheKey, Change)],
    bumps: &'a [Bump],
}

impl Drop for UnknownOutcome<'_> {
    fn drop(&mut self) {
        let drops = self
            .changes
            .iter()
            .map(|(key, _)| (key.clone(), Change::Remove))
            .collect();
        self.ctx
            .apply(drops, self.bumps.to_vec(), Source::FailedCommit);
    }
}

/// Rolls back after `err`, and returns `err` whatever the rollback did: a failing rollback
/// must not hide why the transaction failed (the connection is closed either way).
pub(crate) async fn rollback_after(conn: Box<dyn TxOps>, err: Error) -> Error {
    let _ = conn.rollback().await;
    err
}

/// Runs `work` on a task of its own and waits for it, so that dropping the caller's future
/// does not stop it halfway (a commit between the database and the cache, a `BEGIN` in
/// flight). `None` if the runtime shut down first. Outside a Tokio runtime it runs inline.
async fn to_completion<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Some(work.await);
    };
    match runtime.spawn(work).await {
        Ok(done) => Some(done),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => None,
    }
}
