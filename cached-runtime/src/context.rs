//! The cache context: one store, one cache, its hooks and counters, shared by every handle.
//!
//! A [`Context`] is cheap to clone (an `Arc`). Reads through it use the cache; writes through
//! it run in their own transaction; [`Context::begin`] opens a [`Transaction`] for several
//! writes that commit (and invalidate) together.

use std::sync::Arc;

use crate::cache::clock::ManualClock;
use crate::cache::local::CacheSettings;
use crate::cache::{Bump, Change, LocalCache};
use crate::engine::warm::{Warmer, Warming, DEFAULT_WARM_AFTER};
use crate::engine::{read, Engine, Parts, Pauses, Settings};
use crate::entity::CachedEntity;
use crate::error::Result;
use crate::graph;
use crate::hooks::{Invalidation, Source};
use crate::key::{CacheKey, QueryKey};
use crate::report::CommitReport;
use crate::schema::SchemaReport;
use crate::stats::Stats;
use crate::store::Store;
use crate::tx::{self, Transaction};
use crate::value::{FromValue, KeyPart};

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
    engine: Arc<Engine>,
}

/// Configures a [`Context`].
#[must_use = "call `.build()` to get the context"]
pub struct ContextBuilder {
    store: Store,
    harmless_triggers: Vec<String>,
    cache: CacheSettings,
    settings: Settings,
    pauses: Option<Pauses>,
    warmers: Vec<(usize, Warmer)>,
    warm_after: u8,
    #[cfg(feature = "redis")]
    broadcast: Option<crate::cache::redis::RedisBroadcast>,
    /// What is shared through the broadcast's shared cache, by namespace slot.
    #[cfg(feature = "redis")]
    shared: Vec<(usize, crate::cache::redis::shared::Codec)>,
    #[cfg(feature = "feed")]
    feed: Option<crate::feed::ChangeFeed>,
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

    /// Applies the database's change feed here: commits made outside the application (plain
    /// SQL, another service) invalidate this context's cache like its own commits. See
    /// [`crate::ChangeFeed`]; [`Context::catch_up`] waits until the feed has applied
    /// everything committed before the call.
    #[cfg(feature = "feed")]
    pub fn change_feed(mut self, feed: crate::feed::ChangeFeed) -> Self {
        self.feed = Some(feed);
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
        self.cache.max_entries = max_entries;
        self
    }

    /// Bounds the in-process cache by bytes instead of entries: each entry weighs its key,
    /// its bookkeeping and its value (a row's struct and the heap its fields own, a query's
    /// ids), and moka evicts the least useful entries once the total passes `max_bytes`.
    /// Replaces [`ContextBuilder::max_entries`]. The weights are estimates (see
    /// `benches/memory.rs` for what a cached row really costs).
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.cache.max_bytes = Some(max_bytes);
        self
    }

    /// The heaviest value the cache keeps (in the weight [`ContextBuilder::max_bytes`] uses):
    /// a heavier row, query result or view instance is returned to its reader but not cached
    /// (counted in [`Stats::too_large`](crate::Stats::too_large)), and a write-through of one
    /// drops its key. Default: no limit.
    pub fn max_entry_bytes(mut self, max_entry_bytes: u32) -> Self {
        self.cache.max_entry_bytes = max_entry_bytes;
        self
    }

    /// The clock TTLs are read against: a [`ManualClock`] that a test advances past a TTL
    /// instead of sleeping. By default each context has a coarse clock of its own (20 ms
    /// ticks, advanced by a thread that stops with the context).
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.cache.clock = Some(clock.clock());
        self
    }

    /// Test only: turn the stale-fill guard off, so that a torture test can prove it finds the
    /// stale reads the guard prevents. Never use this outside such a test.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __disable_stale_fill_protection(mut self) -> Self {
        self.cache.protect_fills = false;
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
        self.pauses.get_or_insert_with(Pauses::default).fill = Some((every, delay));
        self
    }

    /// Test only: pause every commit between announcing its invalidation (a broadcast's
    /// fence is out) and the database commit, so that a test can interleave another
    /// transaction, or a read, there.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __commit_delay(mut self, delay: std::time::Duration) -> Self {
        self.pauses.get_or_insert_with(Pauses::default).commit = Some(delay);
        self
    }

    /// Test only: key text exactly as given, without folding it the way case- and
    /// accent-insensitive collations compare it, so that a test can prove what folding
    /// prevents.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __disable_text_folding(mut self) -> Self {
        self.cache.fold_text = false;
        self
    }

    /// Test only: ignore the foreign keys' actions (cascades) the catalog declares, so that a
    /// test can prove what following them prevents.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __ignore_cascades(mut self) -> Self {
        self.settings.follow_cascades = false;
        self
    }

    /// Test only: view loads record nothing they read, so that only their TTL (and
    /// `reads_all`) drops them; proves what read-set tracking prevents.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __disable_read_tracking(mut self) -> Self {
        self.settings.track_reads = false;
        self
    }

    /// Test only: run commits (and `BEGIN`s) on the caller's task without the cancellation
    /// guard, so that a test can prove that a dropped future then leaves the cache stale.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __unguarded_commits(mut self) -> Self {
        self.settings.guard_commits = false;
        self
    }

    /// Warms the entries of `E` (rows, queries, counts) after an invalidation: an entry read
    /// at least [`ContextBuilder::warm_after`] times since it was filled (2 by default) is
    /// reloaded in the background as soon as a commit (here, on another instance, or heard
    /// through the change feed) drops it, so that the next reader hits. The reload is the
    /// ordinary guarded load: it reads after the commit, a reader arriving meanwhile waits for
    /// it, and a commit that lands while it reads makes the cache refuse it, so it never
    /// serves the old value. At most 4 reloads run at once; counted in
    /// [`Stats::warmed`](crate::Stats::warmed). Hits of the entities not warmed are not
    /// counted at all.
    pub fn warm<E: CachedEntity>(self) -> Self
    where
        E::Id: FromValue,
    {
        let warmer: Warmer = Arc::new(|engine: Arc<Engine>, key: CacheKey| {
            Box::pin(async move {
                if let Some(id) = key.row_id() {
                    return match E::Id::from_value(id.to_value()) {
                        Ok(id) => read::get::<E>(&engine, id).await.is_ok(),
                        Err(_) => false,
                    };
                }
                let Some(predicate) = key.predicate().cloned() else {
                    return false;
                };
                if key.is_count() {
                    read::count::<E>(&engine, predicate).await.is_ok()
                } else if key == CacheKey::list(E::meta(), predicate.clone()) {
                    read::find::<E>(&engine, predicate).await.is_ok()
                } else {
                    false
                }
            })
        });
        self.warm_namespace(E::meta(), warmer)
    }

    /// Reloads with `warmer` the hot entries of `namespace` (an entity's, or a view's with
    /// [`ContextBuilder::warm_view`](crate::ContextBuilder::warm_view)).
    /// Shares the rows of `E` (by id) through the broadcast's shared cache
    /// ([`RedisBroadcast::shared_cache`](crate::RedisBroadcast::shared_cache)), as
    /// [`ContextBuilder::share_view`] does a view's instances. A plain row rarely pays: a
    /// primary-key select costs about what a Redis round trip does (see the guide's numbers).
    #[cfg(feature = "redis")]
    pub fn share_rows<E>(self) -> Self
    where
        E: crate::entity::CachedEntity + serde::Serialize + serde::de::DeserializeOwned,
    {
        let meta = E::meta();
        let codec = crate::cache::redis::shared::Codec::rows::<E>(&meta.namespace);
        self.share_namespace(&meta.namespace, codec)
    }

    /// Shares `namespace`'s entries through the broadcast's shared cache, with `codec`.
    #[cfg(feature = "redis")]
    pub(crate) fn share_namespace(
        mut self,
        namespace: &'static crate::Namespace,
        codec: crate::cache::redis::shared::Codec,
    ) -> Self {
        let slot = crate::registry::slot(namespace);
        self.shared.retain(|(s, _)| *s != slot);
        self.shared.push((slot, codec));
        self
    }

    pub(crate) fn warm_namespace(
        mut self,
        namespace: &'static crate::Namespace,
        warmer: Warmer,
    ) -> Self {
        let slot = crate::registry::slot(namespace);
        self.warmers.retain(|(s, _)| *s != slot);
        self.warmers.push((slot, warmer));
        self.cache.warm.push(slot);
        self
    }

    /// How many hits since its fill make an entry of a warmed entity or view worth reloading
    /// after its invalidation (2 by default; at least 1).
    pub fn warm_after(mut self, hits: u8) -> Self {
        self.warm_after = hits.max(1);
        self
    }

    /// Builds the context.
    pub fn build(self) -> Context {
        let engine = Engine::new(Parts {
            store: self.store,
            cache: LocalCache::new(self.cache),
            settings: self.settings,
            pauses: self.pauses,
            harmless_triggers: self.harmless_triggers,
            warming: Warming::new(self.warmers, self.warm_after),
            #[cfg(feature = "redis")]
            broadcast: self.broadcast,
            #[cfg(feature = "redis")]
            shared: self.shared,
            #[cfg(feature = "feed")]
            feed: self.feed,
        });
        Context { engine }
    }
}

impl Context {
    /// A context in front of `store` (a `sqlx::SqlitePool`, or any [`Store`]).
    pub fn builder(store: impl Into<Store>) -> ContextBuilder {
        ContextBuilder {
            store: store.into(),
            harmless_triggers: Vec::new(),
            cache: CacheSettings {
                max_entries: DEFAULT_MAX_ENTRIES,
                max_bytes: None,
                max_entry_bytes: u32::MAX,
                protect_fills: true,
                fold_text: true,
                clock: None,
                warm: Vec::new(),
            },
            settings: Settings::default(),
            pauses: None,
            warmers: Vec::new(),
            warm_after: DEFAULT_WARM_AFTER,
            #[cfg(feature = "redis")]
            broadcast: None,
            #[cfg(feature = "redis")]
            shared: Vec::new(),
            #[cfg(feature = "feed")]
            feed: None,
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
        self.engine.check_schema().await
    }

    /// Opens a transaction. Writes on it reach the cache only when [`Transaction::commit`]
    /// succeeds; dropping it rolls back and touches nothing.
    pub async fn begin(&self) -> Result<Transaction> {
        Transaction::begin(self.engine.clone()).await
    }

    /// Runs `body` in a transaction and commits it; when the database aborts the transaction
    /// with a retryable conflict (a deadlock, a serialization failure, MongoDB's
    /// `TransientTransactionError`, at any statement or at the commit), runs the whole body
    /// again on a fresh transaction, up to 5 attempts in all, as the MongoDB driver
    /// documentation prescribes. Only the attempt that commits touches the cache.
    ///
    /// Write the body as `async move |tx| { ... }`: the closure then owns what it captures, and
    /// the future this returns is `Send`, as a web handler (axum) or `tokio::spawn` requires.
    /// With a plain `async |tx|`, rustc cannot prove that future `Send` for every lifetime of
    /// the borrows the closure holds ("implementation of `Send` is not general enough"): a
    /// known compiler limitation with async closures in `Send` futures
    /// (<https://github.com/rust-lang/rust/issues/110338>,
    /// <https://github.com/rust-lang/rust/issues/139475>); lifting it here would take a
    /// signature that makes every body box its future. The body may run more than once, so
    /// clone inside it what a write consumes.
    ///
    /// ```no_run
    /// # use cached_runtime::{Context, Result};
    /// # async fn demo(ctx: Context) -> Result<()> {
    /// let (moved, report) = ctx
    ///     .transaction(async move |tx| {
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
                Err(err) if err.is_retryable() && attempt < tx::ATTEMPTS => {
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
        &self.engine.store
    }

    /// Test only: how many loads have read the database and begun their pause before the fill
    /// (see [`ContextBuilder::__fill_delay`]), so that a test can wait for exactly that moment.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __paused_loads(&self) -> u64 {
        self.engine.pauses.as_ref().map_or(0, Pauses::paused_loads)
    }

    /// Test only: how many view instances the dependency index holds, and how many distinct
    /// keys they read.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __dependency_index_size(&self) -> (usize, usize) {
        self.engine.cache.dependency_index_size()
    }

    /// Test only: lets moka evict what it is due to and releases, at once, the registrations
    /// of the view instances it evicted (the cache does so a few at a time, as it registers
    /// others).
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __settle(&self) {
        self.engine.cache.settle();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.engine.cache.counters.snapshot()
    }

    /// Sets every counter of [`Context::stats`] back to zero (a fresh measurement: the admin
    /// router's `POST /reset-metrics`). What was already handed to a metrics recorder stays
    /// there: its counters never go backwards.
    pub fn reset_stats(&self) {
        self.engine.cache.counters.reset();
    }

    /// Hands the cache's counts to the installed [`metrics`](https://docs.rs/metrics)
    /// recorder (the `metrics` feature): each counter grows by what happened since the last
    /// call, and the gauges (`cached_entries`, `cached_consistency_ratio`) are set. Call it
    /// before rendering, e.g. first thing in a `/metrics` handler; events (loads,
    /// invalidations, refused fills, broadcast lag) reach the recorder as they happen. See
    /// docs/operations.md for the metric names.
    pub fn record_metrics(&self) {
        let stats = self.stats();
        let cache = &self.engine.cache;
        self.engine
            .exported
            .record(&stats, cache.entry_count(), cache.bytes());
    }

    /// The number of entries the in-process cache holds.
    pub fn entry_count(&self) -> u64 {
        self.engine.cache.entry_count()
    }

    /// Whether a readable entry is cached under `key` (`SceneKey(42)`, a query's
    /// `list_key()`, ...). For tests and debugging: the answer can change at any moment.
    pub fn is_cached(&self, key: impl Into<CacheKey>) -> bool {
        self.engine.cache.get(&key.into()).is_some()
    }

    /// Registers a callback that receives every invalidation this context applies.
    pub fn on_invalidate(&self, hook: impl Fn(&Invalidation<'_>) + Send + Sync + 'static) {
        self.engine.on_invalidate(hook);
    }

    /// Call it after a write outside the cache (a migration, `psql`, another service) changed,
    /// inserted or deleted the row of `E` with this id: drops the row's entry and every query,
    /// count and page of `E` (which ones the row left or entered cannot be known from here),
    /// with the view instances that read any of them, and the entries of the other entities
    /// over the same table. Loads of any of those already in flight are refused their fill.
    ///
    /// It costs the same whatever the cache holds (the queries are dropped by one generation
    /// bump, not scanned). To drop just one entry, use [`Context::invalidate_key`].
    pub fn invalidate<E: CachedEntity>(&self, id: impl Into<E::Id>) -> CommitReport {
        self.invalidate_row(E::meta(), id.into().key_value())
    }

    /// [`Context::invalidate`] by entity metadata (the admin router's by-name form).
    pub(crate) fn invalidate_row(
        &self,
        meta: &'static crate::EntityMeta,
        id: crate::KeyValue,
    ) -> CommitReport {
        let (changes, bumps) = graph::row_changed_outside(meta, id);
        self.engine.apply(changes, bumps, Source::Manual)
    }

    /// Drops one entry by key (`SceneKey(42)`, or any [`CacheKey`]).
    pub fn invalidate_key(&self, key: impl Into<CacheKey>) -> CommitReport {
        self.remove_keys(vec![key.into()], Source::Manual)
    }

    /// Drops a cached query and its count (`SceneQuery::ByStatus("draft".into())`), and the
    /// grouped counts of its field (`count_grouped_by_status()`).
    pub fn invalidate_query(&self, query: &impl QueryKey) -> CommitReport {
        self.invalidate_query_keys(query.list_key(), query.count_key())
    }

    /// [`Context::invalidate_query`] by the query's keys.
    pub(crate) fn invalidate_query_keys(&self, list: CacheKey, count: CacheKey) -> CommitReport {
        let groups = count.groups_of_count();
        let mut keys = vec![list, count];
        keys.extend(groups);
        self.remove_keys(keys, Source::Manual)
    }

    /// Makes every cached entry of `E` (rows, queries, counts) unreadable at once. Costs the
    /// same whatever the cache holds: no key is scanned.
    pub fn invalidate_entity<E: CachedEntity>(&self) -> CommitReport {
        self.invalidate_namespace(E::meta())
    }

    /// [`Context::invalidate_entity`] of any namespace (an entity or a view).
    pub(crate) fn invalidate_namespace(
        &self,
        namespace: &'static crate::Namespace,
    ) -> CommitReport {
        self.engine
            .apply(Vec::new(), vec![Bump::Entity(namespace)], Source::Manual)
    }

    /// Returns once the change feed has applied every commit the database had made when this
    /// was called, so that a script or a test reads its own outside write through the cache.
    /// It commits a marker through the feed's own mechanism and waits for it (one round trip
    /// plus the feed's lag). Fails with [`Error::ChangeFeed`](crate::Error::ChangeFeed) when
    /// the context has no feed, or the feed does not catch up within
    /// [`ChangeFeed::catch_up_timeout`](crate::ChangeFeed::catch_up_timeout) (it is
    /// disconnected: the cache refuses fills meanwhile, so reads are still fresh).
    #[cfg(feature = "feed")]
    pub async fn catch_up(&self) -> Result<()> {
        self.engine.catch_up().await
    }

    /// Drops every entry (on every instance, with a broadcast).
    pub fn clear(&self) {
        self.engine.clear();
    }

    /// Reloads one row from the database into the cache and returns it.
    pub async fn refresh<E: CachedEntity>(&self, id: impl Into<E::Id>) -> Result<Option<Arc<E>>> {
        let id = id.into();
        self.invalidate::<E>(id.clone());
        read::get::<E>(&self.engine, id).await
    }

    /// Loads these rows into the cache (one query for the ones not cached yet) and returns how
    /// many exist.
    pub async fn preload<E: CachedEntity>(
        &self,
        ids: impl IntoIterator<Item = E::Id>,
    ) -> Result<usize> {
        let ids: Vec<E::Id> = ids.into_iter().collect();
        let rows = read::get_many::<E>(&self.engine, &ids).await?;
        Ok(rows.iter().flatten().count())
    }

    fn remove_keys(&self, keys: Vec<CacheKey>, source: Source) -> CommitReport {
        let changes: Vec<(CacheKey, Change)> =
            keys.into_iter().map(|k| (k, Change::Remove)).collect();
        self.engine.apply(changes, Vec::new(), source)
    }

    /// The engine behind this context, for the layers built on it (views, repositories).
    pub(crate) fn from_engine(engine: Arc<Engine>) -> Context {
        Context { engine }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("store", &self.engine.store)
            .finish_non_exhaustive()
    }
}
