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
//!   bound (an instance it has not heard of yet may have committed in that time); a
//!   subscription that stays open but stops delivering (on a cluster, a node cut off from
//!   the others' bus) is lost too: each instance hears its own messages come back, or
//!   subscribes again (`echo`);
//! - the queue is bounded (on overflow, everything queued goes as one clear), a message too
//!   large goes as whole-entity bumps (or a clear), and one Redis refuses goes as a clear;
//! - a message from a build whose invalidation graph differs (a rolling deploy) is applied
//!   conservatively;
//! - a commit's message goes out while the database commits, as a fence the receivers keep
//!   until its release, sent after the commit (`fence`): Redis's round trip overlaps the
//!   database's;
//! - with an [`Outbox`], each commit's message is also written in its own transaction, and
//!   relayed by the instances alive should its writer not publish it (`outbox`): a writer's
//!   crash then costs no instance its cache.
//!
//! With a [`SharedCache`], the same Redis also holds a second cache level for the views and
//! rows shared (`shared`); every message is then published by the script that deletes the
//! shared entries it reaches.

mod bus;
mod echo;
mod fence;
mod listen;
mod outbox;
mod publish;
mod queue;
mod server;
pub(crate) mod shared;

pub(crate) use bus::Bus;
pub(crate) use fence::Fenced;
pub use outbox::Outbox;
pub(crate) use queue::Hold;
use queue::{Outgoing, Shared};
pub use shared::SharedCache;

use std::time::Duration;

use redis::aio::PubSub;

use self::server::{Conn, Server};
use super::local::Fence;
use super::{Bump, LocalCache};
use crate::error::{Error, Result};
use crate::key::CacheKey;

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
    /// The run and the number of the last shared-cache invalidation when this instance
    /// subscribed.
    last_number: (String, u64),
    /// The server's `run_id` cannot be read (this Redis user may not run `INFO`, or the
    /// server does not report one): a shared cache keeps its run in a key.
    info_denied: bool,
    /// Commits announce their invalidation before the database commit ([`fence`]).
    fence_commits: bool,
    /// Test only: received fences are applied as plain invalidations.
    unfenced: bool,
    /// Test only: received releases are ignored, as if each were lost.
    ignore_releases: bool,
    /// Test only: the subscription delivers nothing.
    deaf: bool,
    /// Test only (else true): a subscription that does not deliver this instance's own
    /// messages counts as lost.
    echo_check: bool,
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
        // `o`: a broadcast without a shared cache works for a user denied `INFO` too.
        let (run, n) = shared::last_number(&server, &channel, "o")
            .await
            .map_err(Error::Redis)?;
        let info_denied = run.is_none();
        let last_number = (run.unwrap_or_default(), n);
        Ok(RedisBroadcast {
            last_number,
            info_denied,
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
            deaf: false,
            echo_check: true,
        })
    }

    /// How long `commit()` waits for Redis to take the transaction's invalidation before it
    /// returns anyway (default 1 s). The message is not lost when the wait runs out: it is
    /// published as soon as Redis takes it, and should it never be (this process dies
    /// first), the other instances clear their caches within the
    /// [`silence`](RedisBroadcast::silence) bound. The wait makes the other instances drop
    /// the keys within tens of microseconds of `commit()` returning. With fenced commits
    /// (the default, [`fence_commits`](RedisBroadcast::fence_commits)) the message left
    /// before the database commit, so the wait mostly overlaps it; without, it costs one
    /// Redis round trip after it. `Duration::ZERO` returns at once (the other instances then
    /// drop the keys about one round trip after `commit()` returns).
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

    /// Test only: this instance's subscriptions stay open and answer `PING`, but deliver
    /// nothing (as on a cluster node cut off from the others' bus).
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __deaf(mut self) -> Self {
        self.deaf = true;
        self
    }

    /// Test only: this instance does not check that its own messages come back, to prove
    /// what the check catches.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __without_echo_check(mut self) -> Self {
        self.echo_check = false;
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
