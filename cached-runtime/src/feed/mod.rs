//! Change feeds: commits made outside this application (a `psql` session, a migration, a job
//! in another language, another service) invalidate the cache as the application's own do.
//!
//! Each backend turns the database's own change mechanism into [`Event`]s (PostgreSQL: row
//! triggers that `NOTIFY` at commit, see `postgres`; MongoDB: a change stream with pre-images,
//! see `mongo`), and every event goes through one apply ([`apply`]) that computes the keys the
//! same write through the repository would have changed ([`crate::graph::query_keys`]), or,
//! when the feed does not carry the old key-forming values, every query of the entity.
//!
//! Nothing is dropped silently: while a feed is disconnected the cache is cleared and refuses
//! every fill (reads go to the database), and it is cleared once more when the feed listens
//! again. [`crate::Context::catch_up`] is a barrier: it writes a marker through the same
//! mechanism and returns once the feed has applied it, hence everything committed before.

mod apply;
mod event;
#[cfg(feature = "mongo")]
mod mongo;
#[cfg(feature = "mysql-feed")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};

pub(crate) use apply::Tables;
pub(crate) use event::{Event, Image, Op, RowChange};

use crate::cache::{Bump, Change, LocalCache};
use crate::error::{Error, Result};
use crate::key::CacheKey;

/// How long [`crate::Context::catch_up`] waits by default.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a feed waits for a message before it checks that its connection answers.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How old a change may be when the feed applies it before the feed counts as behind.
const MAX_LAG: Duration = Duration::from_secs(30);
/// How many markers a feed remembers for callers of `catch_up` that have not looked yet.
const MARKS_KEPT: usize = 1024;

/// A connected change feed, for [`crate::ContextBuilder::change_feed`]. Built by
/// [`ChangeFeed::postgres`] or [`ChangeFeed::mongo`].
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> cached_runtime::Result<()> {
/// use cached_runtime::{ChangeFeed, Context, FeedSetup};
/// let feed = ChangeFeed::postgres(&pool, FeedSetup::Install).await?;
/// let ctx = Context::builder(pool).change_feed(feed).build();
/// // ... another program updates a row with plain SQL ...
/// ctx.catch_up().await?; // the cache has applied everything committed before this call
/// # Ok(()) }
/// ```
pub struct ChangeFeed {
    source: Source,
    catch_up_timeout: Duration,
    max_lag: Duration,
    runtime: tokio::runtime::Handle,
}

/// What a feed listens with, per backend.
enum Source {
    #[cfg(feature = "postgres")]
    Postgres(postgres::Listening),
    #[cfg(feature = "mongo")]
    Mongo(mongo::Watching),
    #[cfg(feature = "mysql-feed")]
    MySql(mysql::Tailing),
}

/// Whether [`ChangeFeed::postgres`] creates what the feed needs in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedSetup {
    /// Create (or replace) the trigger function and the triggers on every cached table. Needs
    /// the right to create functions and triggers.
    Install,
    /// Only check that they exist; fail with [`Error::Schema`] listing what is missing and the
    /// SQL to run ([`ChangeFeed::postgres_setup_sql`]) otherwise.
    Verify,
}

impl ChangeFeed {
    /// How long [`crate::Context::catch_up`] waits for the feed (default 10 s).
    pub fn catch_up_timeout(mut self, timeout: Duration) -> Self {
        self.catch_up_timeout = timeout;
        self
    }

    /// How far behind the feed may fall (default 30 s): a change applied longer than this
    /// after it was written (its statement on PostgreSQL, its commit on MongoDB, by the
    /// database's clock) takes the cache offline (cleared, no fills) until the feed has caught
    /// up: a change arrives within half the bound, or the feed has been quiet for a second.
    /// A long transaction's changes count from their statement on PostgreSQL, so keep the
    /// bound above the longest transaction that writes cached tables.
    pub fn max_lag(mut self, max_lag: Duration) -> Self {
        self.max_lag = max_lag;
        self
    }

    fn new(source: Source) -> ChangeFeed {
        ChangeFeed {
            source,
            catch_up_timeout: CATCH_UP_TIMEOUT,
            max_lag: MAX_LAG,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.source {
            #[cfg(feature = "postgres")]
            Source::Postgres(_) => "PostgreSQL",
            #[cfg(feature = "mongo")]
            Source::Mongo(_) => "MongoDB",
            #[cfg(feature = "mysql-feed")]
            Source::MySql(_) => "MySQL/MariaDB",
        };
        f.debug_struct("ChangeFeed")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

/// What a feed needs from the instance it serves: its cache (to take it offline and clear
/// it) and the apply. Held weakly: the feed stops once the instance is dropped.
pub(crate) trait Sink: Send + Sync + 'static {
    /// The instance's in-process cache.
    fn cache(&self) -> &LocalCache;
    /// Applies an outside commit's changes here (and nowhere else: every instance has its
    /// own feed).
    fn apply_feed(&self, changes: Vec<(CacheKey, Change)>, bumps: Vec<Bump>);
}

/// What the feed task and `catch_up` share.
#[derive(Default)]
struct Shared {
    /// Markers seen, newest last.
    marks: Mutex<VecDeque<u64>>,
    /// Bumped on every marker seen and every resync, so that `catch_up` wakes up.
    progress: watch::Sender<u64>,
    /// How many times the feed listened again after a loss (each time with the cache cleared).
    resyncs: std::sync::atomic::AtomicU64,
    /// Where in the binary log the feed has applied everything before (MySQL/MariaDB).
    #[cfg(feature = "mysql-feed")]
    position: Mutex<Option<mysql::Position>>,
}

impl Shared {
    fn mark_seen(&self, mark: u64) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        if marks.len() == MARKS_KEPT {
            marks.pop_front();
        }
        marks.push_back(mark);
        drop(marks);
        self.progress.send_modify(|n| *n += 1);
    }

    fn take_mark(&self, mark: u64) -> bool {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        match marks.iter().position(|m| *m == mark) {
            Some(at) => {
                marks.remove(at);
                true
            }
            None => false,
        }
    }

    fn resynced(&self) {
        self.resyncs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.progress.send_modify(|n| *n += 1);
    }

    #[cfg(feature = "mysql-feed")]
    fn passed(&self, target: &mysql::Position) -> bool {
        let position = self.position.lock().unwrap_or_else(|e| e.into_inner());
        position.as_ref().is_some_and(|p| p >= target)
    }

    fn resync_count(&self) -> u64 {
        self.resyncs.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A started feed, kept by the engine: the barrier's side, and the switch that stops the task.
pub(crate) struct Running {
    shared: Arc<Shared>,
    marker: Marker,
    catch_up_timeout: Duration,
    /// Dropped with the engine: stops the task.
    _stop: oneshot::Sender<()>,
}

/// How `catch_up` writes a marker through the feed's mechanism.
enum Marker {
    #[cfg(feature = "postgres")]
    Postgres(postgres::Marker),
    #[cfg(feature = "mongo")]
    Mongo(mongo::Marker),
    #[cfg(feature = "mysql-feed")]
    MySql(mysql::Marker),
}

/// What `catch_up` waits for: its marker, or (MySQL/MariaDB) a position in the log.
enum Barrier {
    #[cfg_attr(not(any(feature = "postgres", feature = "mongo")), allow(dead_code))]
    Mark(u64),
    #[cfg(feature = "mysql-feed")]
    Position(mysql::Position),
}

impl Running {
    /// Starts the feed's task on the runtime that connected it.
    pub fn start(feed: ChangeFeed, sink: Weak<dyn Sink>) -> Running {
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop) = oneshot::channel();
        let task = Task {
            shared: shared.clone(),
            sink: sink.clone(),
            max_lag: feed.max_lag,
            behind: std::sync::atomic::AtomicBool::new(false),
        };
        let marker = match feed.source {
            #[cfg(feature = "postgres")]
            Source::Postgres(listening) => {
                let marker = listening.marker();
                feed.runtime
                    .spawn(postgres::run(listening, task, stop, OfflineOnExit(sink)));
                Marker::Postgres(marker)
            }
            #[cfg(feature = "mongo")]
            Source::Mongo(watching) => {
                let marker = watching.marker();
                feed.runtime
                    .spawn(mongo::run(watching, task, stop, OfflineOnExit(sink)));
                Marker::Mongo(marker)
            }
            #[cfg(feature = "mysql-feed")]
            Source::MySql(tailing) => {
                let marker = tailing.marker();
                feed.runtime
                    .spawn(mysql::run(tailing, task, stop, OfflineOnExit(sink)));
                Marker::MySql(marker)
            }
        };
        Running {
            shared,
            marker,
            catch_up_timeout: feed.catch_up_timeout,
            _stop: stop_tx,
        }
    }

    /// Returns once the feed has applied everything the database had committed when this was
    /// called: it commits a marker through the feed's own mechanism (committed after all of
    /// that, so delivered after it) and waits until the feed has seen it, or has listened again
    /// after a loss (which clears the cache: nothing from before can be served).
    pub async fn catch_up(&self) -> Result<()> {
        let mut progress = self.shared.progress.subscribe();
        let resyncs = self.shared.resync_count();
        let barrier = match &self.marker {
            #[cfg(feature = "postgres")]
            Marker::Postgres(marker) => {
                let mark = random_mark();
                marker.emit(mark).await?;
                Barrier::Mark(mark)
            }
            #[cfg(feature = "mongo")]
            Marker::Mongo(marker) => {
                let mark = random_mark();
                marker.emit(mark).await?;
                Barrier::Mark(mark)
            }
            #[cfg(feature = "mysql-feed")]
            Marker::MySql(marker) => Barrier::Position(marker.position().await?),
        };
        let passed = || match &barrier {
            Barrier::Mark(mark) => self.shared.take_mark(*mark),
            #[cfg(feature = "mysql-feed")]
            Barrier::Position(position) => self.shared.passed(position),
        };
        let wait = async {
            loop {
                if passed() || self.shared.resync_count() != resyncs {
                    return Ok(());
                }
                if progress.changed().await.is_err() {
                    return Err(());
                }
            }
        };
        match tokio::time::timeout(self.catch_up_timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Error::ChangeFeed {
                message: format!(
                    "the change feed did not apply its marker within {:?}: it is disconnected \
                     (the cache refuses fills meanwhile) or far behind; see `Stats::feed_outages`",
                    self.catch_up_timeout
                ),
            }),
        }
    }
}

/// A random marker, unique enough among the `catch_up` calls in flight.
#[cfg_attr(not(any(feature = "postgres", feature = "mongo")), allow(dead_code))]
fn random_mark() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::Instant::now())) >> 11
}

/// The feed task's side: where events go.
pub(crate) struct Task {
    shared: Arc<Shared>,
    sink: Weak<dyn Sink>,
    max_lag: Duration,
    /// Whether the last change came later than `max_lag` (the cache is offline meanwhile).
    behind: std::sync::atomic::AtomicBool,
}

impl Task {
    /// The instance, unless it was dropped (then the task ends).
    fn sink(&self) -> Option<Arc<dyn Sink>> {
        self.sink.upgrade()
    }

    /// Applies one event, written at `written` by the database's clock (if the feed says);
    /// `false` once the instance is gone.
    fn handle(&self, tables: &Tables, event: Event, written: Option<SystemTime>) -> bool {
        let Some(sink) = self.sink() else {
            return false;
        };
        let age = written.and_then(|at| SystemTime::now().duration_since(at).ok());
        if let Some(age) = age {
            if age > self.max_lag && !self.behind.load(std::sync::atomic::Ordering::Relaxed) {
                // Behind: whatever was read meanwhile may have missed changes still queued.
                self.behind
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                sink.cache()
                    .set_link(crate::cache::local::Link::Feed, false);
                crate::stats::Counters::add(&sink.cache().counters.feed_outages, 1);
            } else if age <= self.max_lag / 2
                && self.behind.load(std::sync::atomic::Ordering::Relaxed)
            {
                self.caught_up(&*sink);
            }
        }
        match event {
            Event::Mark(mark) => self.shared.mark_seen(mark),
            Event::Undecodable => {
                // Whatever it changed, dropping everything covers it.
                sink.cache().clear();
                crate::stats::Counters::add(&sink.cache().counters.feed_outages, 1);
                tracing::warn!(target: "cached", "an undecodable change-feed event: cleared");
            }
            event => {
                let (changes, bumps) = tables.changes_of(&event);
                crate::stats::Counters::add(&sink.cache().counters.feed_events, 1);
                tracing::debug!(
                    target: "cached",
                    keys = changes.len(),
                    bumps = bumps.len(),
                    "change feed event"
                );
                sink.apply_feed(changes, bumps);
            }
        }
        true
    }

    /// The feed has applied the binary log up to `position`.
    #[cfg(feature = "mysql-feed")]
    fn at_position(&self, position: &mysql::Position) {
        let mut at = self
            .shared
            .position
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if at.as_ref() != Some(position) {
            *at = Some(position.clone());
            drop(at);
            self.shared.progress.send_modify(|n| *n += 1);
        }
    }

    /// The feed was quiet (nothing queued): if it was behind, it has caught up.
    fn quiet(&self) {
        if let (true, Some(sink)) = (
            self.behind.load(std::sync::atomic::Ordering::Relaxed),
            self.sink(),
        ) {
            self.caught_up(&*sink);
        }
    }

    fn caught_up(&self, sink: &dyn Sink) {
        self.behind
            .store(false, std::sync::atomic::Ordering::Relaxed);
        sink.cache().set_link(crate::cache::local::Link::Feed, true);
        self.shared.resynced();
    }

    /// The connection is gone: nothing may be served or filled until the feed listens again.
    fn lost(&self) -> bool {
        let Some(sink) = self.sink() else {
            return false;
        };
        sink.cache()
            .set_link(crate::cache::local::Link::Feed, false);
        crate::stats::Counters::add(&sink.cache().counters.feed_outages, 1);
        true
    }

    /// The feed listens again: the cache starts empty (whatever was committed meanwhile is
    /// covered) and fills again.
    fn resumed(&self) -> bool {
        let Some(sink) = self.sink() else {
            return false;
        };
        self.behind
            .store(false, std::sync::atomic::Ordering::Relaxed);
        sink.cache().set_link(crate::cache::local::Link::Feed, true);
        self.shared.resynced();
        true
    }
}

/// Takes a still-living context offline when its feed task stops for good (the runtime that
/// ran it shut down): no outside commit can be heard any more.
pub(crate) struct OfflineOnExit(Weak<dyn Sink>);

impl Drop for OfflineOnExit {
    fn drop(&mut self) {
        if let Some(sink) = self.0.upgrade() {
            sink.cache()
                .set_link(crate::cache::local::Link::Feed, false);
        }
    }
}

/// Connects again, with backoff, until `connect` succeeds; then the cache resumes (see
/// [`Task::resumed`]). `None` when the feed is stopped or its instance is gone.
async fn reconnect<T, F, Fut>(
    task: &Task,
    stop: &mut oneshot::Receiver<()>,
    mut connect: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let mut delay = MIN_BACKOFF;
    loop {
        let attempt = tokio::select! {
            attempt = connect() => attempt,
            _ = &mut *stop => return None,
        };
        match attempt {
            Some(connected) => return task.resumed().then_some(connected),
            None => {
                if !backoff(&mut delay, stop).await {
                    return None;
                }
            }
        }
    }
}

/// Sleeps for the backoff (doubling it) unless the feed is stopped; `false` when stopped.
async fn backoff(delay: &mut Duration, stop: &mut oneshot::Receiver<()>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(*delay) => {
            *delay = (*delay * 2).min(MAX_BACKOFF);
            true
        }
        _ = stop => false,
    }
}
