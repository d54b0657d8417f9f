//! Cache transactions: database writes whose invalidations apply only after the commit.
//!
//! A [`Transaction`] wraps a database transaction. Each write computes, from the old and the
//! new row, the cache changes it implies (rewrite the row entry, drop the query entries whose
//! membership changed) and records them ([`pending`]). [`Transaction::commit`] commits in the
//! database and then applies the recorded changes at once; [`Transaction::rollback`], an
//! error, or dropping the transaction discards them. Reads on a transaction go to the database
//! through the transaction's own connection: they see its writes and never fill the shared
//! cache.
//!
//! A commit runs to completion: polled in place while its caller waits, and moved to a task of
//! its own if the caller stops waiting (a timeout, a client that hung up), so it cannot stop
//! between the database commit and the cache apply. If even that task is stopped (its runtime
//! shuts down) while the database commit is under way, the keys the transaction touched are
//! dropped, never left as they were ([`guard`]).

mod guard;
mod pending;
pub(crate) mod raw;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(crate) use guard::RunToEnd;
use guard::{rollback_after, UnknownOutcome};
use pending::Pending;

use crate::cache::{Change, EntryData};
use crate::engine::{read, Announced, Engine, Point};
use crate::entity::{CachedEntity, EntityMeta, Patch};
use crate::error::{Error, Result};
use crate::graph;
use crate::hooks::Source;
use crate::key::{CacheKey, Predicate};
use crate::page::{Page, Paged};
use crate::report::CommitReport;
use crate::schema::{Action, Reach, Schema};
use crate::store::{id_of, Exec, TxOps};
use crate::value::{FromValue, KeyPart, KeyValue, Value};

/// How many times a transaction runs in all when the database aborts it with a retryable
/// conflict (a deadlock, a serialization failure, MongoDB's `TransientTransactionError`), as
/// the MongoDB driver documentation prescribes.
pub(crate) const ATTEMPTS: u32 = 5;

/// An open cache transaction. Like `sqlx::Transaction`: `commit` consumes it, and dropping it
/// rolls back.
#[must_use = "a transaction is rolled back when dropped; call `.commit().await`"]
pub struct Transaction {
    engine: Arc<Engine>,
    conn: Box<dyn TxOps>,
    /// The cascades a delete follows.
    schema: Arc<Schema>,
    pending: Pending,
    failed: bool,
}

fn not_found<E: CachedEntity>(id: &E::Id) -> Error {
    Error::NotFound {
        entity: E::meta().type_name,
        id: id.key_value().to_string(),
    }
}

/// [`Error::VersionConflict`] unless `current` (the row as the database holds it) is at
/// version `expected`. A conflict proves a cached copy at another version stale: it is
/// dropped at once (with what the unseen write may have changed), whether or not this
/// transaction commits, and the error says so.
fn check_version<E: CachedEntity>(engine: &Engine, current: &E, expected: i64) -> Result<()> {
    match current.version() {
        Some(found) if found != expected => Err(conflict(engine, current, expected)),
        _ => Ok(()),
    }
}

fn conflict<E: CachedEntity>(engine: &Engine, current: &E, expected: i64) -> Error {
    let meta = E::meta();
    let id = current.id().key_value();
    let cached = engine.cache.get(&CacheKey::row(meta, id.clone()));
    let stale = match cached {
        Some(EntryData::Row(row)) => read::downcast::<E>(row).version() != current.version(),
        // Cached as absent, while the database has it.
        Some(EntryData::Missing) => true,
        _ => false,
    };
    if stale {
        let (changes, bumps) = graph::row_changed_outside(meta, id.clone());
        engine.apply(changes, bumps, Source::Manual);
    }
    Error::VersionConflict {
        entity: meta.type_name,
        id: id.to_string(),
        expected,
        found: current.version().unwrap_or_default(),
        stale_cache_dropped: stale,
    }
}

impl Transaction {
    pub(crate) async fn begin(engine: Arc<Engine>) -> Result<Self> {
        let schema = engine.schema().await?;
        engine.before_begin().await?;
        // `BEGIN` runs to its end (on a task of its own once its caller is dropped): a caller
        // dropped while it is in flight would otherwise hand the connection back to the pool
        // inside a transaction, whose old snapshot later loads on that connection would read
        // and cache as fresh. Dropped unused on that task, the transaction rolls back the way
        // sqlx's always do.
        let begin = engine.store.begin();
        let conn = match engine.settings.guard_commits {
            true => RunToEnd::new(begin).await,
            false => begin.await,
        }?;
        // Taken after BEGIN: any commit applied to the cache after this point may be newer
        // than what this transaction writes, and makes its write-through fall back to a drop.
        let pending = Pending::new(engine.cache.token_now());
        Ok(Transaction {
            engine,
            conn,
            schema,
            pending,
            failed: false,
        })
    }

    /// The keys this transaction will invalidate when it commits, so far. The view instances
    /// that read them are found when the commit applies, and are listed in its report.
    pub fn pending_keys(&self) -> &[CacheKey] {
        self.pending.keys()
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
    /// commit, then cache apply), moved to a task of its own, so a timeout or a client that
    /// hangs up can never leave the cache older than the database.
    pub async fn commit(self) -> Result<CommitReport> {
        if !self.engine.settings.guard_commits {
            return self.finish(false).await;
        }
        // If the runtime shuts down before the work ends, its guard drops the keys the
        // transaction touched once the database commit had begun.
        RunToEnd::new(self.finish(true)).await
    }

    /// The commit itself: database, then cache. `guarded`: if this future is dropped while
    /// the database commit is under way, drop the touched keys.
    async fn finish(self, guarded: bool) -> Result<CommitReport> {
        let Transaction {
            engine,
            conn,
            pending,
            failed,
            ..
        } = self;
        if failed {
            return Err(rollback_after(conn, Error::TransactionAborted).await);
        }
        let (changes, bumps) = pending.into_changes();
        let mut conn = conn;
        let mut announced = Announced::default();
        if !(changes.is_empty() && bumps.is_empty()) {
            let before = engine
                .before_commit(&mut *conn.ops(), &changes, &bumps)
                .await;
            match before {
                Ok(done) => announced = done,
                Err(err) => return Err(rollback_after(conn, err).await),
            }
        }
        engine.pause(Point::Commit).await;
        let guard = guarded.then(|| UnknownOutcome {
            engine: &engine,
            changes: &changes,
            bumps: &bumps,
        });
        let committed = conn.commit().await;
        // The database answered: defuse the guard (it only borrows).
        std::mem::forget(guard);
        match committed {
            Ok(()) => Ok(engine
                .apply_commit(changes, bumps, Source::Commit, announced)
                .await),
            // The database aborted the transaction: nothing was written, nothing to drop.
            Err(err) if err.is_retryable() => {
                engine.abandon(announced);
                Err(err)
            }
            Err(err) => {
                let drops = changes
                    .into_iter()
                    .map(|(key, _)| (key, Change::Remove))
                    .collect();
                engine
                    .apply_commit(drops, bumps, Source::FailedCommit, announced.fence_only())
                    .await;
                Err(err)
            }
        }
    }

    /// Rolls back. The cache is untouched.
    pub async fn rollback(self) -> Result<()> {
        self.conn.rollback().await
    }

    /// Starts a raw write. Dynamic SQL needs sqlx's `AssertSqlSafe`; the write runs only after
    /// it names what it touches. Grep for `raw_write` to audit every one.
    pub fn raw_write(&mut self, sql: impl sqlx::SqlSafeStr) -> raw::RawWrite<'_, raw::Untargeted> {
        raw::RawWrite::new(self, sql.into_sql_str())
    }

    /// Runs a raw write's statement and records what it declared it touches.
    pub(crate) async fn execute_raw(
        &mut self,
        sql: sqlx::SqlStr,
        values: Vec<Value>,
        touched: Vec<(&'static EntityMeta, Option<Vec<KeyValue>>)>,
    ) -> Result<u64> {
        let entity = touched.first().map_or("raw write", |(m, _)| m.type_name);
        let result = self.exec().execute(entity, sql, values).await;
        let affected = self.check(result)?;
        for (meta, ids) in touched {
            self.pending.touch(meta, ids);
        }
        Ok(affected)
    }

    fn exec(&mut self) -> Exec<'_> {
        Exec::new(self.conn.ops())
    }

    /// Marks the transaction failed: it can only roll back.
    fn fail(&mut self) {
        self.failed = true;
    }

    /// Marks the transaction failed when a database statement failed, so that it cannot
    /// commit half of its work.
    fn check<T>(&mut self, result: Result<T>) -> Result<T> {
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

    /// One row, read through this transaction (sees its own writes; fills nothing).
    pub(crate) async fn read_one<E: CachedEntity>(&mut self, id: &E::Id) -> Result<Option<E>> {
        let result = self.exec().fetch_by_id::<E>(id).await;
        self.check(result)
    }

    /// A row that must exist, read before a write to compute the old row's tags: locked
    /// (`FOR UPDATE`; SQLite's write transaction is exclusive already), so no other writer can
    /// change it before this one does.
    async fn read_existing<E: CachedEntity>(&mut self, id: &E::Id) -> Result<E> {
        let result = self.exec().fetch_by_id_locked::<E>(id).await;
        self.check(result)?.ok_or_else(|| not_found::<E>(id))
    }

    pub(crate) async fn read_many<E: CachedEntity>(
        &mut self,
        ids: &[E::Id],
    ) -> Result<Vec<Option<Arc<E>>>> {
        let keys: Vec<KeyValue> = ids.iter().map(KeyPart::key_value).collect();
        let result = self.exec().fetch_asked::<E>(&keys, false).await;
        self.check(result)
    }

    pub(crate) async fn read_where<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
    ) -> Result<Vec<Arc<E>>> {
        let result = self.exec().fetch_where::<E>(predicate).await;
        Ok(self.check(result)?.into_iter().map(Arc::new).collect())
    }

    /// One keyset page, read through the transaction (it sees its own writes).
    pub(crate) async fn read_page<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
        order_at: usize,
        page: Page,
    ) -> Result<Paged<E>> {
        let meta = E::meta();
        let order = &meta.orders[order_at];
        read::check_cursor(&page, meta, order, predicate)?;
        let after = page.after.map(|c| (c.order, c.id));
        let limit = page.limit;
        let result = self
            .exec()
            .fetch_page::<E>(predicate, order, after.as_ref(), limit.saturating_add(1))
            .await;
        let rows = self.check(result)?.into_iter().map(Arc::new).collect();
        Ok(read::paged(order_at, rows, limit as usize, || {
            read::cursor_scope(meta, order, predicate)
        }))
    }

    pub(crate) async fn count_where<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
    ) -> Result<i64> {
        let result = self.exec().count_where::<E>(predicate).await;
        self.check(result)
    }

    /// The grouped counts of a key-forming field, read through the transaction.
    pub(crate) async fn count_grouped<E: CachedEntity, T: FromValue>(
        &mut self,
        column: &'static str,
    ) -> Result<Vec<(T, i64)>> {
        let result = self.exec().count_grouped::<E, T>(column).await;
        self.check(result)
    }

    /// The largest or smallest value of `column` among `predicate`'s rows, read through the
    /// transaction.
    pub(crate) async fn extreme<E: CachedEntity, T: FromValue>(
        &mut self,
        predicate: &Predicate,
        column: &'static str,
        max: bool,
    ) -> Result<Option<T>> {
        let result = self.exec().extreme::<E, T>(predicate, column, max).await;
        self.check(result)
    }

    /// Inserts rows (one statement per chunk) and records them for write-through.
    pub(crate) async fn insert_rows<E: CachedEntity>(
        &mut self,
        rows: Vec<Vec<Value>>,
    ) -> Result<Vec<Arc<E>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let asked = rows.len();
        let result = self.exec().insert::<E>(rows).await;
        let stored: Vec<Arc<E>> = self.check(result)?.into_iter().map(Arc::new).collect();
        if stored.len() != asked {
            self.fail();
            return Err(Error::ReadBack {
                entity: E::meta().type_name,
                expected: asked,
                found: stored.len(),
            });
        }
        for row in &stored {
            self.pending.insert(&self.engine.cache, row);
        }
        Ok(stored)
    }

    /// Applies a patch. The old row is read first only when the patch assigns a key-forming
    /// field; otherwise no query can have changed and one `UPDATE ... RETURNING` suffices.
    pub(crate) async fn update_row<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        patch: &E::Update,
    ) -> Result<Arc<E>> {
        let assignments = patch.assignments();
        if assignments.is_empty() {
            return Ok(Arc::new(self.read_existing::<E>(id).await?));
        }
        if E::meta().assigns_keys(&assignments) {
            // Both rows: the old one's tags say which queries the row leaves.
            let result = self.exec().update_keeping_old::<E>(id, assignments).await;
            let (old, new) = self.check(result)?.ok_or_else(|| not_found::<E>(id))?;
            let new = Arc::new(new);
            self.pending.write(&self.engine.cache, Some(&old), &new);
            return Ok(new);
        }
        let result = self.exec().update::<E>(id, assignments).await;
        let new = Arc::new(self.check(result)?.ok_or_else(|| not_found::<E>(id))?);
        self.pending.write(&self.engine.cache, None, &new);
        Ok(new)
    }

    /// Applies a patch if the row's version is still `expected`, in one conditional
    /// statement; otherwise fails with [`Error::VersionConflict`] (or [`Error::NotFound`]) and
    /// writes nothing, so the transaction can go on. The old row is read (locked) first only
    /// when the patch assigns a key-forming field, as in [`Transaction::update_row`].
    pub(crate) async fn update_if_version<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        expected: i64,
        patch: &E::Update,
    ) -> Result<Arc<E>> {
        let assignments = patch.assignments();
        let old = match assignments.is_empty() || E::meta().assigns_keys(&assignments) {
            true => {
                let old = self.read_existing::<E>(id).await?;
                check_version::<E>(&self.engine, &old, expected)?;
                if assignments.is_empty() {
                    return Ok(Arc::new(old));
                }
                Some(old)
            }
            false => None,
        };
        let result = self
            .exec()
            .update_if_version::<E>(id, assignments, expected)
            .await;
        let Some(new) = self.check(result)? else {
            // No row with this id and version: absent, or at another version.
            return match self.read_one::<E>(id).await? {
                Some(current) => Err(conflict(&self.engine, &current, expected)),
                None => Err(not_found::<E>(id)),
            };
        };
        let new = Arc::new(new);
        self.pending.write(&self.engine.cache, old.as_ref(), &new);
        Ok(new)
    }

    /// The rows with these ids, in the order asked (`None` where absent), locked against
    /// other writers until this transaction ends. Never fills the shared cache.
    pub(crate) async fn read_for_update<E: CachedEntity>(
        &mut self,
        ids: &[E::Id],
    ) -> Result<Vec<Option<Arc<E>>>> {
        let keys: Vec<KeyValue> = ids.iter().map(KeyPart::key_value).collect();
        let result = self.exec().fetch_asked::<E>(&keys, true).await;
        self.check(result)
    }

    /// Adds `delta` to an integer column in one statement; the row entry is rewritten with the
    /// returned row, and queries, counts and pages are touched only if the column is
    /// key-forming ([`EntityMeta::forms_keys`]: an index, a foreign key, a composite's or a
    /// unique's column, an order's column).
    pub(crate) async fn add_to<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        delta: i64,
    ) -> Result<Arc<E>> {
        let old = match E::meta().forms_keys(column) {
            true => Some(self.read_existing::<E>(id).await?),
            false => None,
        };
        let result = self.exec().add::<E>(id, column, delta).await;
        let new = Arc::new(self.check(result)?.ok_or_else(|| not_found::<E>(id))?);
        self.pending.write(&self.engine.cache, old.as_ref(), &new);
        Ok(new)
    }

    /// Applies a patch to every row matching `predicate`: the matching rows are read (locked)
    /// first, so each updated row invalidates exactly the queries its old and new values
    /// belong to; the rows are read back and written through. Returns them, ordered by id.
    pub(crate) async fn update_where<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
        patch: &E::Update,
    ) -> Result<Vec<Arc<E>>> {
        let result = self.exec().fetch_where_locked::<E>(predicate).await;
        let old = self.check(result)?;
        let assignments = patch.assignments();
        if old.is_empty() || assignments.is_empty() {
            return Ok(old.into_iter().map(Arc::new).collect());
        }
        let ids: Vec<KeyValue> = old.iter().map(id_of).collect();
        let result = self.exec().update_ids::<E>(&ids, assignments).await;
        self.check(result)?;
        let result = self.exec().fetch_by_ids::<E>(&ids).await;
        let mut new = self.check(result)?;
        new.sort_by_key(id_of);
        let before: HashMap<KeyValue, &E> = ids.into_iter().zip(old.iter()).collect();
        let mut updated = Vec::with_capacity(new.len());
        for row in new {
            let row = Arc::new(row);
            let old = before.get(&id_of(&*row)).copied();
            self.pending.write(&self.engine.cache, old, &row);
            updated.push(row);
        }
        Ok(updated)
    }

    /// Appends an item to (or removes it from) a list field in one operation; the cached row
    /// is rewritten with the row as updated.
    pub(crate) async fn list_op<E: CachedEntity>(
        &mut self,
        id: &E::Id,
        column: &'static str,
        item: Value,
        append: bool,
    ) -> Result<Arc<E>> {
        let old = match E::meta().forms_keys(column) {
            true => Some(self.read_existing::<E>(id).await?),
            false => None,
        };
        let result = self.exec().list_op::<E>(id, column, item, append).await;
        let new = Arc::new(self.check(result)?.ok_or_else(|| not_found::<E>(id))?);
        self.pending.write(&self.engine.cache, old.as_ref(), &new);
        Ok(new)
    }

    /// Deletes rows by id; returns the rows that existed. Rows that the database changes in
    /// the same statement through foreign keys (`ON DELETE CASCADE` / `SET NULL` / `SET
    /// DEFAULT`, learned from the catalog) are found first and dropped on commit too.
    pub(crate) async fn delete_rows<E: CachedEntity>(&mut self, ids: &[E::Id]) -> Result<Vec<E>> {
        let keys: Vec<KeyValue> = ids.iter().map(KeyPart::key_value).collect();
        let result = self.follow_cascades(E::meta(), keys.clone()).await;
        self.check(result)?;
        let result = self.exec().delete::<E>(&keys).await;
        let deleted = self.check(result)?;
        for row in &deleted {
            self.pending.delete(&self.engine.cache, row);
        }
        Ok(deleted)
    }

    /// Locks and records the rows a delete of `meta`'s rows with these ids reaches through
    /// foreign keys, level by level (a cascade's cascades), before the delete runs.
    ///
    /// The parents are locked first: a child another transaction inserts meanwhile holds a
    /// key-share lock on its parent (PostgreSQL) or a shared lock on the parent's index record
    /// (InnoDB) until it commits, so the lock waits for that insert and the children read
    /// after it include its row, which the cascade will remove. Read before the lock, that
    /// child would be missed and stay cached. (SQLite: the writer holds the database, no
    /// other insert can be under way.)
    async fn follow_cascades(
        &mut self,
        meta: &'static EntityMeta,
        ids: Vec<KeyValue>,
    ) -> Result<()> {
        let schema = self.schema.clone();
        if schema.reach(meta).next().is_some() {
            self.exec().lock_ids(meta, &ids).await?;
        }
        let mut work = vec![(meta, ids)];
        let mut seen: HashSet<(usize, KeyValue)> = HashSet::new();
        while let Some((parent, ids)) = work.pop() {
            for reach in schema.reach(parent) {
                let (child, column, action) = match reach {
                    Reach::Rows {
                        child,
                        column,
                        action,
                    } => (*child, column, *action),
                    Reach::Whole(child) => {
                        self.pending.touch(child, None);
                        continue;
                    }
                };
                let found = self.exec().fetch_ids_where_in(child, column, &ids).await?;
                let at = std::ptr::from_ref(child) as usize;
                let fresh: Vec<KeyValue> = found
                    .into_iter()
                    .filter(|id| seen.insert((at, id.clone())))
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                match action {
                    // What each row leaves (and, set to NULL, enters), as a repository write
                    // of it would: read whole, already locked.
                    Action::Cascade | Action::SetNull => {
                        let rows = self.exec().fetch_rows(child, &fresh).await?;
                        let null = (action == Action::SetNull).then_some(column.as_str());
                        self.pending
                            .cascaded_rows(child, fresh.clone(), &rows, null);
                    }
                    _ => self.pending.cascaded(child, fresh.clone()),
                }
                if action == Action::Cascade {
                    work.push((child, fresh));
                }
            }
        }
        Ok(())
    }

    /// Deletes the rows matching `predicate` (read locked first, so that each drops what its
    /// values were in); returns how many there were.
    pub(crate) async fn delete_where<E: CachedEntity>(
        &mut self,
        predicate: &Predicate,
    ) -> Result<u64> {
        let result = self.exec().fetch_where_locked::<E>(predicate).await;
        let rows = self.check(result)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<E::Id> = rows.iter().map(|row| row.id().clone()).collect();
        Ok(self.delete_rows::<E>(&ids).await?.len() as u64)
    }

    /// Deletes one row that must exist.
    pub(crate) async fn delete_one<E: CachedEntity>(&mut self, id: &E::Id) -> Result<E> {
        let mut deleted = self.delete_rows::<E>(std::slice::from_ref(id)).await?;
        deleted.pop().ok_or_else(|| not_found::<E>(id))
    }
}
