//! The cache context: one store, one cache, its hooks and counters, shared by every handle.
//!
//! A [`Context`] is cheap to clone (an `Arc`). Reads through it use the cache; writes through
//! it run in their own transaction; [`Context::begin`] opens a [`Transaction`] for several
//! writes that commit (and invalidate) together.

use std::sync::Arc;

use crate::cache::{Bump, Change, LocalCache};
use crate::entity::CachedEntity;
use crate::error::Result;
use crate::hooks::{Hooks, Invalidation, Source};
use crate::key::{CacheKey, QueryKey};
use crate::schema::{Schema, SchemaReport};
use crate::stats::Stats;
use crate::store::Store;
use crate::tx::{CommitReport, Transaction};
use crate::value::KeyPart;

/// What [`Context::apply`] handed to the broadcast: hears when Redis has taken it.
#[cfg(feature = "redis")]
type Sent = Option<tokio::sync::oneshot::Receiver<()>>;
#[cfg(not(feature = "redis"))]
type Sent = ();

/// The default number of entries the in-process cache holds.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// The entry point: a store with a cache in front of it.
///
/// ```no_run
/// # async fn demo(pool: sqlx::SqlitePool) -> cached_runtime::Result<()> {
/// let ctx = cached_runtime::Context::builder(pool).max_entries(50_000).build();
/// let mut tx = ctx.begin().await?;
/// // ... writes through `Scene::repo(&mut tx)` ...
/// let report = tx.commit().await?;
/// println!("{report}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub cache: LocalCache,
    hooks: Hooks,
    /// Where invalidations go out to the other instances, if anywhere.
    #[cfg(feature = "redis")]
    pub bus: Option<crate::cache::redis::Bus>,
    /// What the database does behind the repository (cascades), read once from its catalog
    /// before the first transaction.
    schema: tokio::sync::OnceCell<Arc<Schema>>,
    /// Triggers declared harmless for [`Context::check_schema`].
    harmless_triggers: Vec<String>,
    /// Test only: commit on the caller's task, unguarded, to prove that a dropped commit
    /// future leaves the cache stale without the guard.
    #[cfg(feature = "__testing")]
    pub commit_inline: bool,
}

/// Configures a [`Context`].
#[must_use = "call `.build()` to get the context"]
pub struct ContextBuilder {
    store: Store,
    harmless_triggers: Vec<String>,
    max_entries: u64,
    protect_fills: bool,
    #[cfg(feature = "__testing")]
    fill_delay: Option<(u64, std::time::Duration)>,
    #[cfg(feature = "__testing")]
    commit_delay: Option<std::time::Duration>,
    #[cfg(feature = "__testing")]
    commit_inline: bool,
    #[cfg(feature = "__testing")]
    fold_text: bool,
    #[cfg(feature = "__testing")]
    track_reads: bool,
    #[cfg(feature = "__testing")]
    ignore_cascades: bool,
    #[cfg(feature = "redis")]
    broadcast: Option<crate::cache::redis::RedisBroadcast>,
}

impl ContextBuilder {
    /// Broadcasts this context's invalidations to every other context on the same Redis
    /// channel, and applies theirs here: many instances in front of one database drop the
    /// same keys. See [`crate::RedisBroadcast`].
    #[cfg(feature = "redis")]
    pub fn broadcast(mut self, broadcast: crate::cache::redis::RedisBroadcast) -> Self {
        self.broadcast = Some(broadcast);
        self
    }

    /// Declares a trigger on a cached table harmless: it writes nothing any cached entity
    /// reads (an audit log into an uncached table, say), so [`Context::check_schema`] does not
    /// report it.
    pub fn harmless_trigger(mut self, name: impl Into<String>) -> Self {
        self.harmless_triggers.push(name.into());
        self
    }

    /// The most entries the in-process cache holds before it evicts (default 100,000).
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Test only: turn the stale-fill guard off, so that a torture test can prove it finds the
    /// stale reads the guard prevents. Never use this outside such a test.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __disable_stale_fill_protection(mut self) -> Self {
        self.protect_fills = false;
        self
    }

    /// Test only: pause every load between its database read and its fill, so that a test can
    /// commit in between (a slow reader, on demand).
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __fill_delay(self, delay: std::time::Duration) -> Self {
        self.__fill_delay_every(1, delay)
    }

    /// Test only: like [`ContextBuilder::__fill_delay`], for every `every`-th load only (a few
    /// slow readers among fast ones).
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __fill_delay_every(mut self, every: u64, delay: std::time::Duration) -> Self {
        assert!(every > 0, "`every` counts loads and starts at 1");
        self.fill_delay = Some((every, delay));
        self
    }

    /// Test only: pause every commit between resolving its view instances and the database
    /// commit, so that a test can interleave another transaction there.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __commit_delay(mut self, delay: std::time::Duration) -> Self {
        self.commit_delay = Some(delay);
        self
    }

    /// Test only: key text exactly as given, without folding it the way case- and
    /// accent-insensitive collations compare it, so that a test can prove what folding
    /// prevents.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __disable_text_folding(mut self) -> Self {
        self.fold_text = false;
        self
    }

    /// Test only: ignore the foreign keys' actions (cascades) the catalog declares, so that a
    /// test can prove what following them prevents.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __ignore_cascades(mut self) -> Self {
        self.ignore_cascades = true;
        self
    }

    /// Test only: view loads record nothing they read, so that only their TTL (and
    /// `reads_all`) drops them; proves what read-set tracking prevents.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __disable_read_tracking(mut self) -> Self {
        self.track_reads = false;
        self
    }

    /// Test only: run commits (and `BEGIN`s) on the caller's task without the cancellation
    /// guard, so that a test can prove that a dropped future then leaves the cache stale.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __unguarded_commits(mut self) -> Self {
        self.commit_inline = true;
        self
    }

    /// Builds the context.
    pub fn build(self) -> Context {
        #[allow(unused_mut)]
        let mut cache = LocalCache::new(self.max_entries, self.protect_fills);
        #[cfg(feature = "__testing")]
        {
            cache.fill_delay =
                self.fill_delay
                    .map(|(every, delay)| crate::cache::local::FillDelay {
                        every,
                        delay,
                        loads: Default::default(),
                        paused: Default::default(),
                    });
            cache.commit_delay = self.commit_delay;
            cache.fold_text = self.fold_text;
            cache.track_reads = self.track_reads;
        }
        #[cfg(feature = "redis")]
        let (bus, pending) = match self.broadcast {
            Some(broadcast) => {
                let (bus, pending) = crate::cache::redis::Bus::new(broadcast);
                (Some(bus), Some(pending))
            }
            None => (None, None),
        };
        let inner = Arc::new(Inner {
            store: self.store,
            schema: tokio::sync::OnceCell::new_with({
                #[cfg(feature = "__testing")]
                let ignored = self.ignore_cascades.then(|| Arc::new(Schema::default()));
                #[cfg(not(feature = "__testing"))]
                let ignored = None;
                ignored
            }),
            harmless_triggers: self.harmless_triggers,
            cache,
            hooks: Hooks::default(),
            #[cfg(feature = "redis")]
            bus,
            #[cfg(feature = "__testing")]
            commit_inline: self.commit_inline,
        });
        #[cfg(feature = "redis")]
        if let (Some(bus), Some(pending)) = (&inner.bus, pending) {
            bus.start(pending, &inner);
        }
        Context { inner }
    }
}

impl Context {
    /// A context in front of `store` (a `sqlx::SqlitePool`, or any [`Store`]).
    pub fn builder(store: impl Into<Store>) -> ContextBuilder {
        ContextBuilder {
            store: store.into(),
            harmless_triggers: Vec::new(),
            max_entries: DEFAULT_MAX_ENTRIES,
            protect_fills: true,
            #[cfg(feature = "__testing")]
            fill_delay: None,
            #[cfg(feature = "__testing")]
            commit_delay: None,
            #[cfg(feature = "__testing")]
            commit_inline: false,
            #[cfg(feature = "__testing")]
            fold_text: true,
            #[cfg(feature = "__testing")]
            track_reads: true,
            #[cfg(feature = "__testing")]
            ignore_cascades: false,
            #[cfg(feature = "redis")]
            broadcast: None,
        }
    }

    /// A context with default settings.
    pub fn new(store: impl Into<Store>) -> Self {
        Self::builder(store).build()
    }

    /// Compares the cached entities with the live database's catalog: every table and column
    /// exists, no trigger on a cached table writes behind the cache (unless declared with
    /// [`ContextBuilder::harmless_trigger`]), and every foreign key whose actions change child
    /// rows is one the graph follows. Returns the cascades followed, or [`Error::Schema`] with
    /// one line per problem. Call it at start-up; nothing else calls it for you.
    ///
    /// [`Error::Schema`]: crate::Error::Schema
    pub async fn check_schema(&self) -> Result<SchemaReport> {
        crate::schema::check(&self.inner.store, &self.inner.harmless_triggers).await
    }

    /// The cascades among the cached tables, read from the catalog on first use.
    pub(crate) async fn schema(&self) -> Result<Arc<Schema>> {
        let schema = self
            .inner
            .schema
            .get_or_try_init(|| async { Schema::learn(&self.inner.store).await.map(Arc::new) })
            .await?;
        Ok(schema.clone())
    }

    /// Opens a transaction. Writes on it reach the cache only when [`Transaction::commit`]
    /// succeeds; dropping it rolls back and touches nothing.
    pub async fn begin(&self) -> Result<Transaction> {
        Transaction::begin(self.clone()).await
    }

    /// Runs `body` in a transaction and commits it; when the database aborts the transaction
    /// with a retryable conflict (a deadlock, a serialization failure, MongoDB's
    /// `TransientTransactionError`, at any statement or at the commit), runs the whole body
    /// again on a fresh transaction, up to 5 attempts in all, as the MongoDB driver
    /// documentation prescribes. Only the attempt that commits touches the cache.
    ///
    /// ```no_run
    /// # use cached_runtime::{Context, Result};
    /// # async fn demo(ctx: Context) -> Result<()> {
    /// let (moved, report) = ctx
    ///     .transaction(async |tx| {
    ///         // ... writes through `Scene::repo(&mut *tx)` ...
    ///         Ok(2)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T>(
        &self,
        mut body: impl AsyncFnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, CommitReport)> {
        let mut attempt = 1;
        loop {
            let mut tx = self.begin().await?;
            let result = match body(&mut tx).await {
                Ok(out) => tx.commit().await.map(|report| (out, report)),
                Err(err) => {
                    let _ = tx.rollback().await;
                    Err(err)
                }
            };
            match result {
                Err(err) if err.is_retryable() && attempt < crate::repo::WRITE_ATTEMPTS => {
                    attempt += 1;
                    tokio::task::yield_now().await;
                }
                done => return done,
            }
        }
    }

    /// The store behind the cache: clone it into another context (another instance over the
    /// same database). Its pool is reachable only through [`Store::raw_unchecked`].
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Test only: how many loads have read the database and begun their pause before the fill
    /// (see [`ContextBuilder::__fill_delay`]), so that a test can wait for exactly that moment.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __paused_loads(&self) -> u64 {
        self.inner
            .cache
            .fill_delay
            .as_ref()
            .map_or(0, |d| d.paused.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Test only: how many view instances the dependency index holds, and how many distinct
    /// keys they read.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __dependency_index_size(&self) -> (usize, usize) {
        self.inner.cache.dependency_index_size()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.cache.counters.snapshot()
    }

    /// The number of entries the in-process cache holds.
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// Whether a readable entry is cached under `key` (`SceneKey(42)`, a query's
    /// `list_key()`, ...). For tests and debugging: the answer can change at any moment.
    pub fn is_cached(&self, key: impl Into<CacheKey>) -> bool {
        self.inner.cache.get(&key.into()).is_some()
    }

    /// Registers a callback that receives every invalidation this context applies.
    pub fn on_invalidate(&self, hook: impl Fn(&Invalidation<'_>) + Send + Sync + 'static) {
        self.inner.hooks.add(Arc::new(hook));
    }

    /// Drops the cached row of `E` with this id (queries are unaffected: the database did not
    /// change through the cache). Use it when something outside the cache changed the row.
    pub fn invalidate<E: CachedEntity>(&self, id: impl Into<E::Id>) -> CommitReport {
        self.invalidate_key(CacheKey::row(E::meta(), id.into().key_value()))
    }

    /// Drops one entry by key (`SceneKey(42)`, or any [`CacheKey`]).
    pub fn invalidate_key(&self, key: impl Into<CacheKey>) -> CommitReport {
        self.remove_keys(vec![key.into()], Source::Manual)
    }

    /// Drops a cached query and its count (`SceneQuery::ByStatus("draft".into())`).
    pub fn invalidate_query(&self, query: &impl QueryKey) -> CommitReport {
        self.remove_keys(vec![query.list_key(), query.count_key()], Source::Manual)
    }

    /// Makes every cached entry of `E` (rows, queries, counts) unreadable at once. Costs the
    /// same whatever the cache holds: no key is scanned.
    pub fn invalidate_entity<E: CachedEntity>(&self) -> CommitReport {
        self.apply(Vec::new(), vec![Bump::Entity(E::meta())], Source::Manual)
    }

    /// Drops every entry (on every instance, with a broadcast).
    pub fn clear(&self) {
        self.inner.cache.clear();
        #[cfg(feature = "redis")]
        if let Some(bus) = &self.inner.bus {
            self.send(bus, true, &[], &[]);
        }
    }

    /// Reloads one row from the database into the cache and returns it.
    pub async fn refresh<E: CachedEntity>(&self, id: impl Into<E::Id>) -> Result<Option<Arc<E>>> {
        let id = id.into();
        self.invalidate::<E>(id.clone());
        crate::repo::read::get::<E>(self, id).await
    }

    /// Loads these rows into the cache (one query for the ones not cached yet) and returns how
    /// many exist.
    pub async fn preload<E: CachedEntity>(
        &self,
        ids: impl IntoIterator<Item = E::Id>,
    ) -> Result<usize> {
        let ids: Vec<E::Id> = ids.into_iter().collect();
        let rows = crate::repo::read::get_many::<E>(self, &ids).await?;
        Ok(rows.iter().flatten().count())
    }

    fn remove_keys(&self, keys: Vec<CacheKey>, source: Source) -> CommitReport {
        let changes: Vec<(CacheKey, Change)> =
            keys.into_iter().map(|k| (k, Change::Remove)).collect();
        self.apply(changes, Vec::new(), source)
    }

    /// Applies changes to the cache and broadcasts them to the other instances, if any.
    pub(crate) fn apply(
        &self,
        changes: Vec<(CacheKey, Change)>,
        bumps: Vec<Bump>,
        source: Source,
    ) -> CommitReport {
        self.apply_and_send(changes, bumps, source).0
    }

    /// [`Context::apply`] for a commit: also waits until the other instances can hear of it
    /// (Redis has taken the message), so that a request they serve after `commit()` returns
    /// finds the keys already dropped.
    pub(crate) async fn apply_commit(
        &self,
        changes: Vec<(CacheKey, Change)>,
        bumps: Vec<Bump>,
        source: Source,
    ) -> CommitReport {
        let (report, _sent) = self.apply_and_send(changes, bumps, source);
        #[cfg(feature = "redis")]
        if let (Some(acked), Some(bus)) = (_sent, &self.inner.bus) {
            bus.wait(acked).await;
        }
        report
    }

    fn apply_and_send(
        &self,
        changes: Vec<(CacheKey, Change)>,
        bumps: Vec<Bump>,
        source: Source,
    ) -> (CommitReport, Sent) {
        let report = self.apply_here(changes, &bumps, source);
        #[cfg(feature = "redis")]
        let sent = self.broadcast(&report, &bumps);
        #[cfg(not(feature = "redis"))]
        let sent = ();
        (report, sent)
    }

    /// Applies changes to this context's cache (queries first, generation bumps last), counts
    /// them and runs the hooks.
    pub(crate) fn apply_here(
        &self,
        mut changes: Vec<(CacheKey, Change)>,
        bumps: &[Bump],
        source: Source,
    ) -> CommitReport {
        if changes.is_empty() && bumps.is_empty() {
            return CommitReport::default();
        }
        changes.sort_by_key(|(key, _)| !key.is_query());
        let cache = &self.inner.cache;
        let mut dependents = cache.apply(&changes, bumps);
        dependents.sort_by_cached_key(ToString::to_string);
        let mut keys: Vec<CacheKey> = changes.into_iter().map(|(k, _)| k).collect();
        keys.extend(dependents);
        let entities: Vec<&'static str> = bumps.iter().map(Bump::type_name).collect();
        let mut per_entity: Vec<(&'static str, u64)> = Vec::new();
        let names = keys.iter().map(|k| k.entity().type_name);
        for name in names.chain(entities.iter().copied()) {
            match per_entity.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => per_entity.push((name, 1)),
            }
        }
        for (name, count) in per_entity {
            cache.counters.record_invalidations(name, count);
        }
        self.inner.hooks.run(&Invalidation {
            source,
            keys: &keys,
            entities: &entities,
        });
        CommitReport { keys, entities }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}
