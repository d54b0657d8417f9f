//! Cache transactions: database writes whose invalidations apply only after the commit.
//!
//! A [`Transaction`] wraps a database transaction. Each write computes, from the old and the
//! new row, the cache changes it implies (rewrite the row entry, drop the query entries whose
//! membership changed) and records them. [`Transaction::commit`] commits in the database and
//! then applies the recorded changes at once; [`Transaction::rollback`], an error, or dropping
//! the transaction discards them. Reads on a transaction go to the database through the
//! transaction's own connection: they see its writes and never fill the shared cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::cache::{Bump, Change, EntryData, Token};
use crate::context::Context;
use crate::entity::{CachedEntity, EntityMeta};
use crate::error::{Error, Result};
use crate::graph::{self, views::ViewSeed};
use crate::hooks::Source;
use crate::key::CacheKey;
use crate::store::{Exec, TxConn};
use crate::value::{KeyPart as _, KeyValue};

/// An open cache transaction. Like `sqlx::Transaction`: `commit` consumes it, and dropping it
/// rolls back.
#[must_use = "a transaction is rolled back when dropped; call `.commit().await`"]
pub struct Transaction {
    ctx: Context,
    conn: TxConn,
    token: Token,
    pending: Pending,
    failed: bool,
}

/// The cache changes recorded so far, last change per key wins, in first-touch order; the
/// writes views must hear about; whole-entity bumps.
#[derive(Default)]
pub(crate) struct Pending {
    order: Vec<CacheKey>,
    changes: HashMap<CacheKey, Change>,
    seeds: Vec<ViewSeed>,
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
        let conn = ctx.inner.store.begin().await?;
        // Taken after BEGIN: any commit applied to the cache after this point may be newer
        // than what this transaction writes, and makes its write-through fall back to a drop.
        let token = ctx.inner.cache.token_now();
        Ok(Transaction {
            ctx,
            conn,
            token,
            pending: Pending::default(),
            failed: false,
        })
    }

    /// The context this transaction belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The keys this transaction will invalidate when it commits, so far. View instances are
    /// resolved at commit (chains read through the transaction) and are not listed yet.
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
    pub async fn commit(mut self) -> Result<CommitReport> {
        let mut recheck = Vec::new();
        if !self.failed {
            // Which view instances the writes reach; chains read through this transaction.
            let seeds = std::mem::take(&mut self.pending.seeds);
            if self.ctx.inner.store.needs_chain_recheck() {
                recheck = seeds.clone();
            }
            let resolved = graph::views::resolve(&mut self.exec(), &seeds).await;
            match self.check(resolved) {
                Ok((keys, bumps)) => {
                    for key in keys {
                        self.pending.record(key, Change::Remove);
                    }
                    self.pending.bumps.extend(bumps);
                }
                Err(err) => {
                    self.conn.rollback().await?;
                    return Err(err);
                }
            }
        }
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
            conn.rollback().await?;
            return Err(Error::TransactionAborted);
        }
        let (changes, bumps) = pending.into_changes();
        match conn.commit().await {
            Ok(()) => {
                let (mut changes, mut bumps) = (changes, bumps);
                if !recheck.is_empty() {
                    // Walk the chains again now that the commit is in, and before applying it,
                    // so that the transaction is still applied exactly once.
                    let (keys, more) =
                        graph::views::recheck_chains(&ctx.inner.store, &recheck).await;
                    for key in keys {
                        if !changes.iter().any(|(k, _)| *k == key) {
                            changes.push((key, Change::Remove));
                        }
                    }
                    for bump in more {
                        graph::views::push_bump(&mut bumps, bump);
                    }
                }
                Ok(ctx.apply_commit(changes, bumps, Source::Commit).await)
            }
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
        Exec::Tx(&mut self.conn)
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
        let old_values = old.map(E::index_values);
        // With no old row (an update of non-key fields), membership cannot have changed.
        let new_values = new.index_values();
        let queries = match &old_values {
            Some(old) => graph::query_keys(meta, Some(old), Some(&new_values)),
            None => Vec::new(),
        };
        self.drop_keys(queries);
        let id = new.id().key_value();
        self.seed(ViewSeed::new(
            meta,
            id.clone(),
            old_values,
            Some(new_values),
        ));
        self.write_row(CacheKey::row(meta, id), EntryData::Row(new.clone()));
    }

    /// Records an inserted row.
    pub(crate) fn record_insert<E: CachedEntity>(&mut self, new: &Arc<E>) {
        let meta = E::meta();
        let values = new.index_values();
        self.drop_keys(graph::query_keys(meta, None, Some(&values)));
        let id = new.id().key_value();
        self.seed(ViewSeed::new(meta, id.clone(), None, Some(values)));
        self.write_row(CacheKey::row(meta, id), EntryData::Row(new.clone()));
    }

    /// Records a deleted row: its entry becomes a negative entry on commit.
    pub(crate) fn record_delete<E: CachedEntity>(&mut self, old: &E) {
        let meta = E::meta();
        let values = old.index_values();
        self.drop_keys(graph::query_keys(meta, Some(&values), None));
        let id = old.id().key_value();
        self.seed(ViewSeed::new(meta, id.clone(), Some(values), None));
        self.write_row(CacheKey::row(meta, id), EntryData::Missing);
    }

    fn seed(&mut self, seed: Option<ViewSeed>) {
        self.pending.seeds.extend(seed);
    }

    /// Records a raw write's declared effect: these rows of `meta` (or all of them), every
    /// query of `meta`, and every view that reads `meta`.
    pub(crate) fn record_touch(&mut self, meta: &'static EntityMeta, ids: Option<Vec<KeyValue>>) {
        match ids {
            Some(ids) => {
                self.drop_keys(ids.into_iter().map(|id| CacheKey::row(meta, id)).collect());
                self.pending.bumps.push(Bump::Queries(meta));
            }
            None => self.pending.bumps.push(Bump::Entity(meta)),
        }
        for reader in crate::view::registry::readers(meta) {
            self.pending.bumps.push(Bump::Entity(reader.view.entity));
        }
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
