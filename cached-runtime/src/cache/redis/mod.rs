//! Invalidation broadcast over Redis pub/sub, for many instances in front of one database.
//!
//! Every invalidation a context applies (a commit, a manual call, a clear) is published on one
//! channel; every other context subscribed to it drops the same keys, through the same apply
//! path as its own commits, so the stale-fill guard covers remote invalidations too: a load that
//! read the database before a remote commit cannot store its value after that commit's message.
//!
//! Nothing is lost without a trace (`publish` and `listen` say how):
//!
//! - each instance numbers its messages and sends a heartbeat when it has nothing to say; a
//!   receiver that sees a gap in a sender's numbers, or reads a message it cannot decode,
//!   clears its cache; one that hears nothing from a sender for that sender's silence bound
//!   (crashed, killed, cut off from Redis) clears its cache too;
//! - a sender that Redis has not taken a message from for half its silence bound refuses to
//!   commit (before the database commit), so every commit is either heard by the other
//!   instances or followed, within the bound, by their clearing;
//! - a receiver that loses its own subscription clears its cache and refuses every fill until
//!   it has subscribed again; one that just subscribed clears once more after the silence
//!   bound (an instance it has not heard of yet may have committed in that time);
//! - the queue is bounded (on overflow, everything queued goes as one clear), a message too
//!   large goes as whole-entity bumps (or a clear), and one Redis refuses goes as a clear;
//! - a message from a build whose invalidation graph differs (a rolling deploy) is applied
//!   conservatively;
//! - with an [`Outbox`], each commit's message is also written in its own transaction, and
//!   relayed by the instances alive should its writer not publish it (`outbox`): a writer's
//!   crash then costs no instance its cache.
//!
//! With a [`SharedCache`], the same Redis also holds a second cache level for the views and
//! rows shared (`shared`); every message is then published by the script that deletes the
//! shared entries it reaches.

mod fence;
mod listen;
mod outbox;
mod publish;
mod server;
pub(crate) mod shared;

pub(crate) use fence::Fenced;
pub use outbox::Outbox;
pub use shared::SharedCache;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::PubSub;
use tokio::sync::{mpsc, oneshot};

use self::server::{Conn, Server};
use self::shared::{Codec, Purge, L2};
use super::local::{Fence, Link};
use super::wire::Message;
use super::{Bump, Change, LocalCache};
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::stats::Counters;
use crate::store::{Ops, Store};

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A connection to the Redis channel that a context's invalidations are broadcast on. Build it
/// with [`RedisBroadcast::connect`] and hand it to [`crate::ContextBuilder::broadcast`]:
///
/// ```no_run
/// # async fn demo(pool: sqlx::SqlitePool) -> cached_runtime::Result<()> {
/// use cached_runtime::{Context, RedisBroadcast};
/// let bus = RedisBroadcast::connect("redis://127.0.0.1:6379", "studio:invalidations").await?;
/// let ctx = Context::builder(pool).broadcast(bus).build();
/// # Ok(()) }
/// ```
///
/// Every instance in front of the same database must use the same channel (and should use the
/// same [`silence`](RedisBroadcast::silence) bound). Entities and views are matched across
/// instances by Rust type name and key prefix; a message from a build whose invalidation graph
/// differs (another version, during a rolling deploy) is applied conservatively: every query
/// and view of each entity it names is dropped.
pub struct RedisBroadcast {
    server: Server,
    channel: String,
    pubsub: PubSub,
    publisher: Conn,
    runtime: tokio::runtime::Handle,
    commit_wait: Duration,
    silence: Duration,
    max_queued: usize,
    max_message_bytes: usize,
    outbox: Option<Outbox>,
    shared: Option<SharedCache>,
    /// The number of the last shared-cache invalidation when this instance subscribed.
    last_number: u64,
    /// Commits announce their invalidation before the database commit ([`fence`]).
    fence_commits: bool,
    /// Test only: received fences are applied as plain invalidations.
    unfenced: bool,
    /// Test only: received releases are ignored, as if each were lost.
    ignore_releases: bool,
}

impl RedisBroadcast {
    /// Connects to Redis at `url` and subscribes to `channel`. Fails with [`Error::Redis`] when
    /// Redis cannot be reached: a context that was asked to broadcast never starts without it.
    /// The publisher and the subscriber run on the Tokio runtime that calls this: should that
    /// runtime shut down while the context lives on, the context caches nothing any more
    /// (it could no longer hear the other instances).
    pub async fn connect(url: &str, channel: impl Into<String>) -> Result<Self> {
        let server = Server::one(url).map_err(Error::Redis)?;
        RedisBroadcast::connect_to(server, channel.into()).await
    }

    /// [`RedisBroadcast::connect`] for a Redis Cluster reachable through `urls` (any of its
    /// nodes; the others are found from them). The channel is an ordinary pub/sub channel,
    /// which the cluster propagates to every node: each instance subscribes on one node and
    /// moves to another when that node goes. Every key of the
    /// [`shared_cache`](RedisBroadcast::shared_cache) carries the channel as its hash tag, so
    /// one slot (one master, then its replica after a failover) holds them all: an
    /// invalidation deletes the entries of many entities in one atomic script.
    pub async fn connect_cluster(urls: &[&str], channel: impl Into<String>) -> Result<Self> {
        let server = Server::cluster(urls).map_err(Error::Redis)?;
        RedisBroadcast::connect_to(server, channel.into()).await
    }

    async fn connect_to(server: Server, channel: String) -> Result<Self> {
        let publisher = server.connect().await.map_err(Error::Redis)?;
        let pubsub = listen::subscribe(&server, &channel)
            .await
            .map_err(Error::Redis)?;
        // After subscribing: every shared-cache invalidation numbered up to here was published
        // before this instance could cache anything.
        let last_number = shared::last_number(&server, &channel)
            .await
            .map_err(Error::Redis)?;
        Ok(RedisBroadcast {
            last_number,
            server,
            channel,
            pubsub,
            publisher,
            runtime: tokio::runtime::Handle::current(),
            commit_wait: Duration::from_secs(1),
            silence: Duration::from_secs(3),
            max_queued: 10_000,
            max_message_bytes: 512 * 1024,
            outbox: None,
            shared: None,
            fence_commits: true,
            unfenced: false,
            ignore_releases: false,
        })
    }

    /// How long `commit()` waits for Redis to take the transaction's invalidation before it
    /// returns anyway (default 1 s). The message is not lost when the wait runs out: it is
    /// published as soon as Redis takes it, and should it never be (this process dies
    /// first), the other instances clear their caches within the
    /// [`silence`](RedisBroadcast::silence) bound. While it waits, the commit is already
    /// durable and applied here; the wait makes the other instances drop the keys within tens
    /// of microseconds of `commit()` returning, at the price of one Redis round trip per
    /// commit. `Duration::ZERO` returns at once (the other instances then drop the keys about
    /// one round trip after `commit()` returns).
    pub fn commit_wait(mut self, wait: Duration) -> Self {
        self.commit_wait = wait;
        self
    }

    /// Whether a commit sends its invalidation while the database commits (default: yes),
    /// instead of after. Redis's round trip then overlaps the database's, and the other
    /// instances store nothing the commit changes from the moment they hear of it until it
    /// is visible (a fence, lowered by a release sent after the commit, or after the silence
    /// bound should that be lost). Off, a commit publishes after its database commit and
    /// waits for Redis: one round trip more. Ignored with an [`Outbox`] or a
    /// [`SharedCache`], which always publish after the commit.
    pub fn fence_commits(mut self, on: bool) -> Self {
        self.fence_commits = on;
        self
    }

    /// Test only: this instance applies the other instances' fences as plain invalidations
    /// (it drops the keys, and then stores what it loads), to prove what a fence prevents.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __unfenced(mut self) -> Self {
        self.unfenced = true;
        self
    }

    /// Test only: this instance ignores the releases it receives, as if each were lost
    /// (its fences then come down after the sender's silence bound).
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __ignore_releases(mut self) -> Self {
        self.ignore_releases = true;
        self
    }

    /// The silence bound (default 3 s): the longest a commit's invalidation can go unheard.
    /// This instance sends a heartbeat every third of it when it has nothing else to say; an
    /// instance that hears nothing from it for this long clears its cache (it may have
    /// missed a commit's message: the process died, or lost Redis); and this instance refuses
    /// to commit (with [`Error::BroadcastUnreachable`], before the database commit) once Redis
    /// has taken nothing from it for half of it. A shorter bound clears sooner after a crash
    /// and refuses writes sooner in a Redis outage; a longer one tolerates longer pauses.
    pub fn silence(mut self, bound: Duration) -> Self {
        self.silence = bound.max(Duration::from_millis(30));
        self
    }

    /// The most invalidations queued for Redis (default 10,000). When Redis does not take
    /// them fast enough to stay under it, everything queued is sent as one clear instead
    /// (counted in [`Stats::broadcast_degraded`](crate::Stats::broadcast_degraded)).
    pub fn max_queued(mut self, messages: usize) -> Self {
        self.max_queued = messages.max(1);
        self
    }

    /// The largest message sent (default 512 KiB, under any Redis server's limit). A larger
    /// invalidation (a huge `insert_many`) goes as whole-entity bumps, or as a clear.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Writes each commit's invalidation to an [`Outbox`] table in the commit's own
    /// transaction, and relays from it what a writer did not publish: a process killed (or
    /// cut off from Redis) after its database commit has its keys dropped everywhere within
    /// [`Outbox::relay_after`] and two polls, precisely. Between instances that both have one,
    /// a sender's silence clears nothing (what it committed is in the outbox); other
    /// instances still clear on it. Give every instance the same setting.
    pub fn outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Keeps a shared cache in the same Redis: an instance that misses a shared view or row
    /// in process reads it from Redis before the database, and stores what it loads there
    /// for the other instances. Choose what is shared on the context
    /// ([`ContextBuilder::share_view`](crate::ContextBuilder::share_view),
    /// [`ContextBuilder::share_rows`](crate::ContextBuilder::share_rows)); nothing is
    /// without it. Every instance on the channel must have it: the invalidations of one
    /// without it would not delete the shared entries.
    pub fn shared_cache(mut self, settings: SharedCache) -> Self {
        self.shared = Some(settings);
        self
    }
}

impl std::fmt::Debug for RedisBroadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroadcast")
            .field("channel", &self.channel)
            .field("silence", &self.silence)
            .finish_non_exhaustive()
    }
}

/// What the broadcast needs from the instance it serves: its cache (to count, to take it
/// offline and clear it), and a way to apply another instance's invalidation there the same
/// way as its own commits. Held weakly: the broadcast stops once the instance is dropped.
pub(crate) trait Receiver: Send + Sync + 'static {
    /// The instance's in-process cache.
    fn cache(&self) -> &LocalCache;
    /// Applies another instance's invalidation here (and nowhere else), as `how` says.
    fn apply_remote(&self, keys: Vec<CacheKey>, bumps: Vec<Bump>, how: Remote<'_>);
}

/// How a remote invalidation is applied.
pub(crate) enum Remote<'a> {
    /// As any invalidation: dropped, counted, told to the hooks.
    Plain,
    /// As a fence (see [`fence`]): also fenced, recorded here.
    Fence(&'a mut Fence),
    /// As the end of a fence raised here: dropped again, silently (the fence's apply was
    /// the one counted and told to the hooks).
    Again,
}

/// One item for the publisher; `done` hears when Redis has taken it.
enum Outgoing {
    /// An invalidation applied here, and what it deletes from the shared cache.
    Message {
        message: Message,
        purge: Option<Purge>,
        done: Done,
    },
    /// A commit asks whether Redis takes this instance's messages: publish (a heartbeat,
    /// if nothing else) now.
    Probe { done: Done },
}

impl Outgoing {
    fn into_done(self) -> Done {
        match self {
            Outgoing::Message { done, .. } | Outgoing::Probe { done } => done,
        }
    }
}

/// What is released once Redis has taken an item: its sender's wait (told whether the
/// item went as it was queued, not made smaller or part of a clear), and its hold on the
/// shared cache.
struct Done {
    ack: oneshot::Sender<bool>,
    _hold: Option<Hold>,
}

impl Done {
    fn signal(self, intact: bool) {
        let _: Result<(), bool> = self.ack.send(intact);
    }
}

/// An invalidation applied (or about to be applied) here that Redis has not taken yet: while
/// one exists, this instance does not read the shared cache (what it would read there may be
/// what that invalidation deletes). Taken before the local apply, released once Redis took
/// the message (or it was dropped).
pub(crate) struct Hold(Arc<Shared>);

impl Drop for Hold {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Relaxed) == 1 {
            self.0.progress.notify_waiters();
        }
    }
}

/// What a context's bus, its publisher and its listener share.
struct Shared {
    /// This instance, so that it can ignore its own messages.
    id: u64,
    silence: Duration,
    max_queued: usize,
    max_message_bytes: usize,
    /// Items sent to the publisher and not yet taken by it.
    queued: AtomicUsize,
    /// A send found the queue full: the publisher sends one clear for everything queued.
    overflowed: AtomicBool,
    /// The acknowledgements of the sends that found the queue full.
    overflow_acks: Mutex<Vec<Done>>,
    epoch: Instant,
    /// When Redis last took a message from this instance (µs since `epoch`), or [`NEVER`].
    last_taken: AtomicU64,
    /// This instance writes its commits' messages to an outbox, and relays from it.
    outbox: bool,
    /// This instance's commits announce their invalidation before the database commit.
    fences: bool,
    /// The number of the last fence this instance sent.
    fences_sent: AtomicU64,
    /// Test only (else true): received fences are raised.
    honor_fences: bool,
    /// Test only (else false): received releases are ignored.
    ignore_releases: bool,
    /// The shared cache, if there is one.
    l2: Option<L2>,
    /// Invalidations applied here that Redis has not taken yet ([`Hold`]).
    pending: AtomicU64,
    /// The number of the last shared-cache invalidation applied here (or known to predate
    /// this instance's subscription).
    applied: AtomicU64,
    /// Signalled when `pending` falls to 0 or `applied` rises (loads wait for either).
    progress: tokio::sync::Notify,
    /// The publisher's queue, for the listener's own purges of the shared cache (weak: it
    /// must not keep the publisher alive once the context is gone).
    outgoing: mpsc::WeakUnboundedSender<Outgoing>,
}

/// `Shared::last_taken` before Redis took anything.
const NEVER: u64 = u64::MAX;

impl Shared {
    /// Redis just took a message.
    fn taken(&self) {
        self.last_taken
            .store(self.epoch.elapsed().as_micros() as u64, Relaxed);
    }

    /// How long since Redis last took a message from this instance (`Duration::MAX` before
    /// the first: a commit waits for the instance's first heartbeat, so that every other
    /// instance subscribed then knows of it before it can commit).
    fn since_taken(&self) -> Duration {
        match self.last_taken.load(Relaxed) {
            NEVER => Duration::MAX,
            at => self
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_micros(at)),
        }
    }

    /// How long the publisher stays quiet before it sends a heartbeat.
    fn heartbeat(&self) -> Duration {
        self.silence / 3
    }

    /// How long without Redis taking a message before commits are refused.
    fn refuse_after(&self) -> Duration {
        self.silence / 2
    }

    /// Queues a message for the publisher, within the bound: when Redis has not kept up
    /// (`max_queued` waiting), this and everything queued will go as one clear. `None` when
    /// the publisher is gone (see [`Bus::send`]).
    fn enqueue(
        &self,
        outgoing: &mpsc::UnboundedSender<Outgoing>,
        cache: &LocalCache,
        message: Message,
        hold: Option<Hold>,
    ) -> Option<oneshot::Receiver<bool>> {
        let purge = self.l2.as_ref().map(|_| {
            let remote = message.resolve();
            Purge::of(cache, remote.clear, &remote.keys, &remote.bumps)
        });
        self.enqueue_with(outgoing, cache, message, purge, hold)
    }

    /// Queues a message that purges `purge` from the shared cache (and names nothing else).
    fn enqueue_purge(
        &self,
        outgoing: &mpsc::UnboundedSender<Outgoing>,
        cache: &LocalCache,
        message: Message,
        purge: Purge,
        hold: Hold,
    ) {
        let _ = self.enqueue_with(outgoing, cache, message, Some(purge), Some(hold));
    }

    /// [`Shared::enqueue`] with the purge given.
    fn enqueue_with(
        &self,
        outgoing: &mpsc::UnboundedSender<Outgoing>,
        cache: &LocalCache,
        message: Message,
        purge: Option<Purge>,
        hold: Option<Hold>,
    ) -> Option<oneshot::Receiver<bool>> {
        let (ack, acked) = oneshot::channel();
        let done = Done { ack, _hold: hold };
        if self.queued.load(Relaxed) >= self.max_queued {
            self.overflow_acks().push(done);
            self.overflowed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Some(acked);
        }
        let item = Outgoing::Message {
            message,
            purge,
            done,
        };
        self.queue(outgoing, cache, item).map(|()| acked)
    }

    /// A hold on the shared cache for an invalidation about to be applied here (`None`
    /// without a shared cache).
    fn hold(self: &Arc<Self>) -> Option<Hold> {
        self.l2.as_ref()?;
        self.pending.fetch_add(1, Relaxed);
        Some(Hold(self.clone()))
    }

    /// Hands an item to the publisher; if it is gone, the cache stops caching.
    fn queue(
        &self,
        outgoing: &mpsc::UnboundedSender<Outgoing>,
        cache: &LocalCache,
        item: Outgoing,
    ) -> Option<()> {
        self.queued.fetch_add(1, Relaxed);
        if outgoing.send(item).is_err() {
            self.queued.fetch_sub(1, Relaxed);
            cache.set_link(Link::Broadcast, false);
            return None;
        }
        Some(())
    }

    fn overflow_acks(&self) -> std::sync::MutexGuard<'_, Vec<Done>> {
        self.overflow_acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A context's end of the broadcast: where its invalidations go out.
pub(crate) struct Bus {
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    commit_wait: Duration,
    /// The outbox's writing end, if the broadcast has one.
    outbox: Option<Arc<outbox::Writer>>,
    /// Dropped with the context: stops the subscriber.
    _stop: oneshot::Sender<()>,
}

/// The parts [`Bus::start`] needs once the context exists.
pub(crate) struct Pending {
    broadcast: RedisBroadcast,
    outgoing: mpsc::UnboundedReceiver<Outgoing>,
    stop: oneshot::Receiver<()>,
    relay: Option<outbox::Relay>,
}

impl Bus {
    /// The bus a context keeps, and what to start once the context is built; `codecs` are
    /// the views and entities shared through the shared cache, if the broadcast has one.
    pub fn new(mut broadcast: RedisBroadcast, codecs: Vec<(usize, Codec)>) -> (Bus, Pending) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (writer, relay) = match broadcast.outbox.take() {
            Some(settings) => {
                let (writer, relay) = outbox::Writer::new(settings);
                (Some(writer), Some(relay))
            }
            None => (None, None),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let id = instance_id();
        if broadcast.shared.is_none() && !codecs.is_empty() {
            tracing::warn!(
                target: "cached",
                "views or rows are shared, but the broadcast has no shared cache: \
                 add RedisBroadcast::shared_cache(SharedCache::new())"
            );
        }
        let l2 = broadcast.shared.take().map(|settings| {
            L2::new(
                settings,
                broadcast.server.clone(),
                &broadcast.channel,
                codecs,
                id,
            )
        });
        let shared = Arc::new(Shared {
            id,
            silence: broadcast.silence,
            max_queued: broadcast.max_queued,
            max_message_bytes: broadcast.max_message_bytes,
            queued: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            overflow_acks: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            last_taken: AtomicU64::new(NEVER),
            outbox: writer.is_some(),
            fences: broadcast.fence_commits,
            fences_sent: AtomicU64::new(0),
            honor_fences: !broadcast.unfenced,
            ignore_releases: broadcast.ignore_releases,
            l2,
            pending: AtomicU64::new(0),
            applied: AtomicU64::new(broadcast.last_number),
            progress: tokio::sync::Notify::new(),
            outgoing: tx.downgrade(),
        });
        let bus = Bus {
            shared,
            outgoing: tx,
            commit_wait: broadcast.commit_wait,
            outbox: writer,
            _stop: stop_tx,
        };
        let pending = Pending {
            broadcast,
            outgoing: rx,
            stop: stop_rx,
            relay,
        };
        (bus, pending)
    }

    /// The shared cache, if the broadcast has one.
    #[inline]
    pub fn shared_cache(&self) -> Option<&L2> {
        self.shared.l2.as_ref()
    }

    /// Whether every invalidation applied here so far has been taken by Redis (so that the
    /// shared cache holds nothing they delete).
    pub fn settled(&self) -> bool {
        self.shared
            .pending
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
    }

    /// The number of the last shared-cache invalidation applied here.
    pub fn applied(&self) -> u64 {
        self.shared
            .applied
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `done` holds for this bus (it is checked again each time `pending` falls to
    /// 0 or `applied` rises), at most until `deadline`; whether it holds. A load waits so for
    /// the listener, usually a few microseconds behind, rather than skip the shared cache.
    pub async fn wait_until(&self, deadline: Instant, done: impl Fn(&Bus) -> bool) -> bool {
        loop {
            let mut notified = std::pin::pin!(self.shared.progress.notified());
            // Registered before the check: a change between the check and the wait wakes it.
            notified.as_mut().enable();
            if done(self) {
                return true;
            }
            let deadline = tokio::time::Instant::from_std(deadline);
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(self);
            }
        }
    }

    /// A hold on the shared cache, to take before applying an invalidation here and hand to
    /// [`Bus::send`] (`None` without a shared cache).
    pub fn hold(&self) -> Option<Hold> {
        self.shared.hold()
    }

    /// Starts the publisher and the subscriber (and the outbox's relay) once the instance
    /// they serve exists.
    pub fn start(&self, pending: Pending, receiver: Weak<dyn Receiver>, store: &Store) {
        let Pending {
            broadcast,
            outgoing,
            stop,
            relay,
        } = pending;
        let runtime = broadcast.runtime.clone();
        if let (Some(writer), Some(relay)) = (&self.outbox, relay) {
            writer.attach(store.clone());
            runtime.spawn(outbox::relay(
                writer.clone(),
                relay,
                self.shared.clone(),
                self.outgoing.clone(),
                receiver.clone(),
            ));
        }
        runtime.spawn(publish::publish(
            broadcast.server.clone(),
            broadcast.channel.clone(),
            broadcast.publisher,
            outgoing,
            self.shared.clone(),
            receiver.clone(),
        ));
        runtime.spawn(listen::listen(
            broadcast.server,
            broadcast.channel,
            Some(broadcast.pubsub),
            self.shared.clone(),
            receiver.clone(),
            stop,
            listen::OfflineOnExit(receiver),
        ));
    }

    /// Queues an invalidation applied here (a clear, or keys and bumps) for the other
    /// instances; the receiver hears when Redis has taken it. Nothing to say (no keys, no
    /// bumps, no clear) sends nothing. If the publisher is gone (the runtime that ran it shut
    /// down), the other instances cannot hear of this one's writes, nor it of theirs: `cache`
    /// stops caching.
    pub fn send(
        &self,
        cache: &LocalCache,
        clear: bool,
        keys: &[CacheKey],
        bumps: &[Bump],
        hold: Option<Hold>,
    ) -> Option<oneshot::Receiver<bool>> {
        if !clear && keys.is_empty() && bumps.is_empty() {
            return None;
        }
        let message = Message::new(self.shared.id, clear, keys, bumps);
        self.shared.enqueue(&self.outgoing, cache, message, hold)
    }

    /// Waits (at most the configured time) until Redis has taken a commit's invalidation;
    /// then (whenever that is) its outbox row, if it has one, can go.
    pub async fn wait(&self, mut acked: oneshot::Receiver<bool>, outbox_row: Option<String>) {
        let taken = tokio::time::timeout(self.commit_wait, &mut acked).await;
        let (Some(writer), Some(row)) = (&self.outbox, outbox_row) else {
            return;
        };
        match taken {
            Ok(Ok(_)) => writer.taken(row),
            // Not yet: the row goes once Redis takes the message (or a relay deletes it).
            Err(_) => {
                let writer = writer.clone();
                tokio::spawn(async move {
                    if acked.await.is_ok() {
                        writer.taken(row);
                    }
                });
            }
            Ok(Err(_)) => {}
        }
    }

    /// Before a transaction begins: with an outbox, makes its table if it does not exist.
    pub async fn prepare(&self) -> Result<()> {
        match &self.outbox {
            Some(writer) => writer.prepare().await,
            None => Ok(()),
        }
    }

    /// Before a database commit, in its transaction: with an outbox, writes the commit's
    /// message there; returns the row's id.
    pub async fn record(
        &self,
        ops: &mut (dyn Ops + '_),
        changes: &[(CacheKey, Change)],
        bumps: &[Bump],
    ) -> Result<Option<String>> {
        let Some(writer) = &self.outbox else {
            return Ok(None);
        };
        let keys: Vec<CacheKey> = changes.iter().map(|(key, _)| key.clone()).collect();
        writer
            .record(&self.shared, ops, &keys, bumps)
            .await
            .map(Some)
    }

    /// Before a database commit: fails unless Redis has taken a message from this instance
    /// within half the silence bound (asking for a heartbeat now, and waiting up to that
    /// long, when it has not), so that no other instance can have given up on hearing from
    /// this one when the commit lands.
    pub async fn reachable(&self, cache: &LocalCache) -> Result<()> {
        let fence = self.shared.refuse_after();
        if self.shared.since_taken() <= fence {
            return Ok(());
        }
        let (ack, acked) = oneshot::channel();
        let done = Done { ack, _hold: None };
        if self
            .shared
            .queue(&self.outgoing, cache, Outgoing::Probe { done })
            .is_some()
        {
            let _ = tokio::time::timeout(fence, acked).await;
        }
        let silent_for = self.shared.since_taken();
        if silent_for <= fence {
            return Ok(());
        }
        Counters::add(&cache.counters.broadcast_refused_commits, 1);
        Err(Error::BroadcastUnreachable { silent_for })
    }
}

/// A random id for this instance.
fn instance_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}
