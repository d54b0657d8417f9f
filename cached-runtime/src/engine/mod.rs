//! The engine: what every handle of one context shares (the store, the in-process cache, the
//! hooks, the broadcast, the learned schema), the one path by which changes reach the cache
//! ([`Engine::apply`]), and the cached reads ([`read`]).
//!
//! It knows nothing of the handles built on it: a [`Transaction`](crate::Transaction) and a
//! [`Context`](crate::Context) each hold an `Arc<Engine>`. The broadcast reaches it through the
//! small [`Receiver`](crate::cache::redis::Receiver) trait, never the other way up.

pub(crate) mod aggregate;
pub(crate) mod join;
pub(crate) mod read;
mod seams;
pub(crate) mod shared;
pub(crate) mod warm;

use std::sync::{Arc, Weak};

pub(crate) use seams::{Pauses, Point};

use crate::cache::local::Fence;
use crate::cache::{Bump, Change, LocalCache};
use crate::error::Result;
use crate::hooks::{Hooks, Invalidation, Source};
use crate::key::CacheKey;
use crate::report::CommitReport;
use crate::schema::{Schema, SchemaReport};
use crate::stats::Counters;
use crate::store::Store;

/// What [`Engine::apply`] handed to the broadcast: hears when Redis has taken it.
#[cfg(feature = "redis")]
type Sent = Option<tokio::sync::oneshot::Receiver<bool>>;
#[cfg(not(feature = "redis"))]
type Sent = ();

/// What a commit announced before its database commit: the outbox row its message was
/// written to (if the broadcast has an outbox), and the fence sent to the other instances
/// (if it sends one; see `cache::redis::fence`).
#[derive(Default)]
pub(crate) struct Announced {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    outbox_row: Option<String>,
    #[cfg(feature = "redis")]
    fenced: Option<crate::cache::redis::Fenced>,
}

impl Announced {
    /// Without its outbox row: a commit whose outcome is unknown leaves the row to the relay
    /// (should it have committed, the instances alive relay it).
    pub fn fence_only(mut self) -> Announced {
        self.outbox_row = None;
        self
    }
}

/// The switches a context is built with. Each is on in production; tests turn one off to
/// prove what it prevents.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Whether view loads record what they read.
    pub track_reads: bool,
    /// Whether commits (and `BEGIN`s) run on a task of their own, out of reach of a caller
    /// that drops their future.
    pub guard_commits: bool,
    /// Whether deletes follow the catalog's cascades.
    pub follow_cascades: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            track_reads: true,
            guard_commits: true,
            follow_cascades: true,
        }
    }
}

/// The state shared by every handle of one context.
pub(crate) struct Engine {
    pub store: Store,
    pub cache: LocalCache,
    pub settings: Settings,
    /// Where a test pauses loads and commits; `None` in production.
    pub pauses: Option<Pauses>,
    hooks: Hooks,
    /// What the metrics recorder was last handed ([`crate::Context::record_metrics`]).
    pub exported: crate::metrics::Exported,
    /// The reloads of hot entries after their invalidation.
    warming: warm::Warming,
    /// This engine, for the tasks it starts.
    me: Weak<Engine>,
    /// Where invalidations go out to the other instances, if anywhere.
    #[cfg(feature = "redis")]
    bus: Option<crate::cache::redis::Bus>,
    /// What the database does behind the repository (cascades), read once from its catalog
    /// before the first transaction.
    schema: tokio::sync::OnceCell<Arc<Schema>>,
    /// Triggers declared harmless for `check_schema`.
    harmless_triggers: Vec<String>,
    /// The change feed, once started.
    #[cfg(feature = "feed")]
    feed: std::sync::OnceLock<crate::feed::Running>,
}

/// What [`Engine::new`] needs.
pub(crate) struct Parts {
    pub store: Store,
    pub cache: LocalCache,
    pub settings: Settings,
    pub pauses: Option<Pauses>,
    pub harmless_triggers: Vec<String>,
    /// What to warm, and after how many hits.
    pub warming: warm::Warming,
    #[cfg(feature = "redis")]
    pub broadcast: Option<crate::cache::redis::RedisBroadcast>,
    /// The views and entities shared through the broadcast's shared cache.
    #[cfg(feature = "redis")]
    pub shared: Vec<(usize, crate::cache::redis::shared::Codec)>,
    #[cfg(feature = "feed")]
    pub feed: Option<crate::feed::ChangeFeed>,
}

impl Engine {
    /// Builds the engine and starts its broadcast, if it has one.
    pub fn new(parts: Parts) -> Arc<Engine> {
        #[cfg(feature = "redis")]
        let (bus, pending) = match parts.broadcast {
            Some(broadcast) => {
                let (bus, pending) = crate::cache::redis::Bus::new(broadcast, parts.shared);
                (Some(bus), Some(pending))
            }
            None => (None, None),
        };
        let schema = match parts.settings.follow_cascades {
            true => tokio::sync::OnceCell::new(),
            false => tokio::sync::OnceCell::new_with(Some(Arc::new(Schema::default()))),
        };
        let engine = Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            warming: parts.warming,
            exported: Default::default(),
            store: parts.store,
            cache: parts.cache,
            settings: parts.settings,
            pauses: parts.pauses,
            hooks: Hooks::default(),
            #[cfg(feature = "redis")]
            bus,
            schema,
            harmless_triggers: parts.harmless_triggers,
            #[cfg(feature = "feed")]
            feed: std::sync::OnceLock::new(),
        });
        #[cfg(feature = "feed")]
        if let Some(feed) = parts.feed {
            let sink: std::sync::Weak<dyn crate::feed::Sink> = Arc::downgrade(&engine) as _;
            let _ = engine.feed.set(crate::feed::Running::start(feed, sink));
        }
        #[cfg(feature = "redis")]
        if let (Some(bus), Some(pending)) = (&engine.bus, pending) {
            let receiver: std::sync::Weak<dyn crate::cache::redis::Receiver> =
                Arc::downgrade(&engine) as _;
            bus.start(pending, receiver, &engine.store);
        }
        engine
    }

    /// The cascades among the cached tables, read from the catalog on first use.
    pub async fn schema(&self) -> Result<Arc<Schema>> {
        let schema = self
            .schema
            .get_or_try_init(|| async { Schema::learn(&self.store).await.map(Arc::new) })
            .await?;
        Ok(schema.clone())
    }

    /// Compares the cached entities with the live database's catalog.
    pub async fn check_schema(&self) -> Result<SchemaReport> {
        crate::schema::check(&self.store, &self.harmless_triggers).await
    }

    /// Returns once the change feed has applied every commit made before the call.
    #[cfg(feature = "feed")]
    pub async fn catch_up(&self) -> Result<()> {
        match self.feed.get() {
            Some(feed) => feed.catch_up().await,
            None => Err(crate::error::Error::ChangeFeed {
                message: "this context has no change feed; build it with \
                          `ContextBuilder::change_feed`"
                    .to_string(),
            }),
        }
    }

    /// Registers a callback that receives every invalidation this engine applies.
    pub fn on_invalidate(&self, hook: impl Fn(&Invalidation<'_>) + Send + Sync + 'static) {
        self.hooks.add(Arc::new(hook));
    }

    /// Waits at a pause point, if a test set one there.
    pub async fn pause(&self, point: Point) {
        if let Some(delay) = self.pauses.as_ref().and_then(|p| p.at(point)) {
            tokio::time::sleep(delay).await;
        }
    }

    /// Before a transaction begins: with a broadcast's outbox, makes its table if it does
    /// not exist.
    pub async fn before_begin(&self) -> Result<()> {
        #[cfg(feature = "redis")]
        if let Some(bus) = &self.bus {
            return bus.prepare().await;
        }
        Ok(())
    }

    /// Before a database commit that changes cached data, in its transaction: with a
    /// broadcast, fails with [`crate::Error::BroadcastUnreachable`] unless Redis takes this
    /// instance's messages (the other instances must hear of the commit, or give up on this
    /// one, within the silence bound); with its outbox, writes the commit's message there and
    /// returns the row.
    pub async fn before_commit(
        &self,
        _ops: &mut (dyn crate::store::Ops + '_),
        _changes: &[(CacheKey, Change)],
        _bumps: &[Bump],
    ) -> Result<Announced> {
        #[cfg(feature = "redis")]
        if let Some(bus) = &self.bus {
            bus.reachable(&self.cache).await?;
            let outbox_row = bus.record(_ops, _changes, _bumps).await?;
            // Last, right before the database commit: the fence goes out while it runs.
            let fenced = bus.fence(&self.cache, _changes, _bumps);
            return Ok(Announced { outbox_row, fenced });
        }
        Ok(Announced::default())
    }

    /// The database aborted a transaction whose commit was announced: nothing was written, so
    /// the other instances lower their fence with nothing more to drop.
    pub fn abandon(&self, _announced: Announced) {
        #[cfg(feature = "redis")]
        if let (Some(fenced), Some(bus)) = (_announced.fenced, &self.bus) {
            let _ = bus.release(&self.cache, fenced, &[], &[]);
        }
    }

    /// Drops every entry, here and (with a broadcast) on every other instance.
    pub fn clear(&self) {
        #[cfg(feature = "redis")]
        let hold = self.bus.as_ref().and_then(|bus| bus.hold());
        self.cache.clear();
        #[cfg(feature = "redis")]
        if let Some(bus) = &self.bus {
            bus.send(&self.cache, true, &[], &[], hold);
        }
    }

    /// The broadcast, if this context has one.
    #[cfg(feature = "redis")]
    pub fn bus(&self) -> Option<&crate::cache::redis::Bus> {
        self.bus.as_ref()
    }

    /// Applies changes to the cache and broadcasts them to the other instances, if any.
    pub fn apply(
        &self,
        changes: Vec<(CacheKey, Change)>,
        bumps: Vec<Bump>,
        source: Source,
    ) -> CommitReport {
        self.apply_and_send(changes, bumps, source).0
    }

    /// [`Engine::apply`] for a commit: also waits until the other instances can hear of it
    /// (Redis has taken the message), so that a request they serve after `commit()` returns
    /// finds the keys already dropped.
    pub async fn apply_commit(
        &self,
        changes: Vec<(CacheKey, Change)>,
        bumps: Vec<Bump>,
        source: Source,
        _announced: Announced,
    ) -> CommitReport {
        #[cfg(feature = "redis")]
        if let (Some(fenced), Some(bus)) = (_announced.fenced, &self.bus) {
            // Announced by a fence: apply here, release it, and wait for the fence only.
            let report = self.apply_observed(changes, &bumps, source, None);
            crate::hooks::note_for_request(&report.keys, &report.namespaces);
            let released = bus.release(&self.cache, fenced, &report.keys, &bumps);
            self.run_hooks(&report, source);
            bus.settle(released).await;
            return report;
        }
        let (report, _sent) = self.apply_and_send(changes, bumps, source);
        #[cfg(feature = "redis")]
        if let (Some(acked), Some(bus)) = (_sent, &self.bus) {
            bus.wait(acked, _announced.outbox_row).await;
        }
        report
    }

    /// Applies here, queues the broadcast, and only then runs the hooks: a hook (user code)
    /// can neither delay nor, by panicking, suppress what the other instances must hear.
    fn apply_and_send(
        &self,
        changes: Vec<(CacheKey, Change)>,
        bumps: Vec<Bump>,
        source: Source,
    ) -> (CommitReport, Sent) {
        // With a shared cache, held from before the local apply until Redis has the message.
        #[cfg(feature = "redis")]
        let hold = self.bus.as_ref().and_then(|bus| bus.hold());
        let report = self.apply_observed(changes, &bumps, source, None);
        crate::hooks::note_for_request(&report.keys, &report.namespaces);
        #[cfg(feature = "redis")]
        let sent = self
            .bus
            .as_ref()
            .and_then(|bus| bus.send(&self.cache, false, &report.keys, &bumps, hold));
        #[cfg(not(feature = "redis"))]
        let sent = ();
        self.run_hooks(&report, source);
        (report, sent)
    }

    /// [`Engine::apply_here`], timed and reported (a debug event, metrics) when anyone listens.
    fn apply_observed(
        &self,
        changes: Vec<(CacheKey, Change)>,
        bumps: &[Bump],
        source: Source,
        fence: Option<&mut Fence>,
    ) -> CommitReport {
        let started = (crate::metrics::times_applies()
            || tracing::enabled!(target: "cached", tracing::Level::DEBUG))
        .then(std::time::Instant::now);
        let fenced = fence.is_some();
        let report = self.apply_here(changes, bumps, fence);
        self.count_invalidations(&report);
        if let Some(started) = started {
            if !report.keys.is_empty() || !report.entities.is_empty() {
                let took = started.elapsed();
                crate::metrics::invalidated(source, &report.keys, &report.entities, took);
                tracing::debug!(
                    target: "cached",
                    ?source,
                    keys = report.keys.len(),
                    entities = report.entities.len(),
                    apply_us = took.as_micros() as u64,
                    "invalidated"
                );
            }
        }
        // Under a fence nothing would be stored: the entries are warmed on its release.
        if !fenced {
            self.warming.after_apply(&self.me, &report.keys);
        }
        report
    }

    /// Runs the hooks on an applied invalidation. A panicking hook is caught and counted
    /// ([`Stats::hook_panics`](crate::Stats::hook_panics)); the other hooks still run.
    fn run_hooks(&self, report: &CommitReport, source: Source) {
        if report.keys.is_empty() && report.entities.is_empty() {
            return;
        }
        let panics = self.hooks.run(&Invalidation {
            source,
            keys: &report.keys,
            entities: &report.entities,
        });
        Counters::add(&self.cache.counters.hook_panics, panics);
    }

    /// Applies changes to this instance's cache (queries first, generation bumps last), with
    /// `fence` raising a fence over what they reach; the caller counts them and runs the
    /// hooks.
    fn apply_here(
        &self,
        mut changes: Vec<(CacheKey, Change)>,
        bumps: &[Bump],
        fence: Option<&mut Fence>,
    ) -> CommitReport {
        if changes.is_empty() && bumps.is_empty() {
            return CommitReport::default();
        }
        // Text outside the plain class reaches spellings that cannot be listed: its entity's
        // queries (or entries) go as a whole (see `collation`).
        // (A copy of the bumps only when there is one to add: this is every write's path.)
        let wide = self.cache.wide_bumps(&changes);
        let mut bumps = std::borrow::Cow::Borrowed(bumps);
        for bump in wide {
            Bump::push(bumps.to_mut(), bump);
        }
        let bumps = &bumps[..];
        changes.sort_by_key(|(key, _)| !key.is_query());
        let cache = &self.cache;
        let mut dependents = cache.apply_fencing(&changes, bumps, fence);
        dependents.sort_by_cached_key(ToString::to_string);
        let mut keys: Vec<CacheKey> = changes.into_iter().map(|(k, _)| k).collect();
        keys.extend(dependents);
        let entities: Vec<&'static str> = bumps.iter().map(Bump::type_name).collect();
        let namespaces = bumps.iter().map(|bump| bump.namespace().name).collect();
        CommitReport {
            keys,
            entities,
            namespaces,
        }
    }

    /// Counts what `report` invalidated, per entity, in the stats: one relaxed add per key.
    fn count_invalidations(&self, report: &CommitReport) {
        let counters = &self.cache.counters;
        for key in &report.keys {
            counters.invalidated(crate::registry::slot(key.namespace()));
        }
        for name in &report.namespaces {
            let namespace = crate::registry::namespaces()
                .iter()
                .find(|namespace| namespace.name == *name);
            if let Some(namespace) = namespace {
                counters.invalidated(crate::registry::slot(namespace));
            }
        }
    }
}

#[cfg(feature = "redis")]
use crate::cache::redis::Remote;

#[cfg(feature = "redis")]
impl crate::cache::redis::Receiver for Engine {
    fn cache(&self) -> &LocalCache {
        &self.cache
    }

    fn apply_remote(&self, keys: Vec<CacheKey>, bumps: Vec<Bump>, how: Remote<'_>) {
        let changes = keys.into_iter().map(|k| (k, Change::Remove)).collect();
        let fence = match how {
            Remote::Again => {
                let report = self.apply_here(changes, &bumps, None);
                self.warming.after_apply(&self.me, &report.keys);
                return;
            }
            Remote::Fence(fence) => Some(fence),
            Remote::Plain => None,
        };
        let report = self.apply_observed(changes, &bumps, Source::Remote, fence);
        self.run_hooks(&report, Source::Remote);
    }
}

#[cfg(feature = "feed")]
impl crate::feed::Sink for Engine {
    fn cache(&self) -> &LocalCache {
        &self.cache
    }

    fn apply_feed(&self, changes: Vec<(CacheKey, Change)>, bumps: Vec<Bump>) {
        // With a shared cache, an outside write must delete the shared entries it reaches
        // too: sent like a commit of this instance (the others apply it twice, harmlessly).
        #[cfg(feature = "redis")]
        if self
            .bus
            .as_ref()
            .is_some_and(|bus| bus.shared_cache().is_some())
        {
            let (report, _sent) = self.apply_and_send(changes, bumps, Source::Feed);
            drop(report);
            return;
        }
        let report = self.apply_observed(changes, &bumps, Source::Feed, None);
        self.run_hooks(&report, Source::Feed);
    }
}
