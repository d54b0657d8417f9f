//! Invalidation broadcast over Redis pub/sub, for many instances in front of one database.
//!
//! Every invalidation a context applies (a commit, a manual call, a clear) is published on one
//! channel; every other context subscribed to it drops the same keys, through the same apply
//! path as its own commits, so the stale-fill guard covers remote invalidations too: a load that
//! read the database before a remote commit cannot store its value after that commit's message.
//!
//! Nothing is dropped silently. A publish that fails is retried (with backoff) until Redis takes
//! it. A subscriber that loses its connection cannot know what it missed, so it clears its cache
//! and refuses every fill until it has subscribed again (reads go to the database meanwhile),
//! then clears once more. A connection that stops answering without closing counts as lost:
//! the subscriber pings Redis every second.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSub};
use tokio::sync::{mpsc, oneshot};

use super::local::Link;
use super::wire::Message;
use super::{Bump, LocalCache};
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::stats::Counters;

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often a subscriber checks that its connection answers, and how long it waits.
const HEARTBEAT: Duration = Duration::from_secs(1);

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
/// Every instance in front of the same database must use the same channel. Entities and views
/// are matched across instances by Rust type name and key prefix: instances running different
/// builds still understand each other for every entity they share (a key of an entity or index
/// unknown to the receiver is one it cannot have cached).
pub struct RedisBroadcast {
    client: redis::Client,
    channel: String,
    pubsub: PubSub,
    publisher: MultiplexedConnection,
    runtime: tokio::runtime::Handle,
    commit_wait: Duration,
}

impl RedisBroadcast {
    /// Connects to Redis at `url` and subscribes to `channel`. Fails with [`Error::Redis`] when
    /// Redis cannot be reached: a context that was asked to broadcast never starts without it.
    /// The publisher and the subscriber run on the Tokio runtime that calls this: should that
    /// runtime shut down while the context lives on, the context caches nothing any more
    /// (it could no longer hear the other instances).
    pub async fn connect(url: &str, channel: impl Into<String>) -> Result<Self> {
        let channel = channel.into();
        let client = redis::Client::open(url).map_err(Error::Redis)?;
        let publisher = client
            .get_multiplexed_async_connection()
            .await
            .map_err(Error::Redis)?;
        let pubsub = subscribe(&client, &channel).await.map_err(Error::Redis)?;
        Ok(RedisBroadcast {
            client,
            channel,
            pubsub,
            publisher,
            runtime: tokio::runtime::Handle::current(),
            commit_wait: Duration::from_secs(1),
        })
    }

    /// How long `commit()` waits for Redis to take the transaction's invalidation before it
    /// returns anyway (default 1 s). The message is not lost when the wait runs out: it is
    /// published as soon as Redis takes it. While it waits, the commit is already durable and
    /// applied here; the wait makes the other instances drop the keys within tens of
    /// microseconds of `commit()` returning, at the price of one Redis round trip per commit.
    /// `Duration::ZERO` returns at once (the other instances then drop the keys about one
    /// round trip after `commit()` returns).
    pub fn commit_wait(mut self, wait: Duration) -> Self {
        self.commit_wait = wait;
        self
    }
}

impl std::fmt::Debug for RedisBroadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroadcast")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

async fn subscribe(client: &redis::Client, channel: &str) -> redis::RedisResult<PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// What the broadcast needs from the instance it serves: its cache (to count, to take it
/// offline and clear it), and a way to apply another instance's invalidation there the same
/// way as its own commits. Held weakly: the broadcast stops once the instance is dropped.
pub(crate) trait Receiver: Send + Sync + 'static {
    /// The instance's in-process cache.
    fn cache(&self) -> &LocalCache;
    /// Applies another instance's invalidation here (and nowhere else).
    fn apply_remote(&self, keys: Vec<CacheKey>, bumps: Vec<Bump>);
}

/// One message on its way to Redis; `ack` hears when Redis has taken it.
struct Outgoing {
    payload: Vec<u8>,
    ack: oneshot::Sender<()>,
}

/// A context's end of the broadcast: where its invalidations go out.
pub(crate) struct Bus {
    /// This instance, so that it can ignore its own messages.
    id: u64,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    commit_wait: Duration,
    /// Dropped with the context: stops the subscriber.
    _stop: oneshot::Sender<()>,
}

/// The parts [`Bus::start`] needs once the context exists.
pub(crate) struct Pending {
    broadcast: RedisBroadcast,
    outgoing: mpsc::UnboundedReceiver<Outgoing>,
    stop: oneshot::Receiver<()>,
}

impl Bus {
    /// The bus a context keeps, and what to start once the context is built.
    pub fn new(broadcast: RedisBroadcast) -> (Bus, Pending) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let bus = Bus {
            id: instance_id(),
            outgoing: tx,
            commit_wait: broadcast.commit_wait,
            _stop: stop_tx,
        };
        let pending = Pending {
            broadcast,
            outgoing: rx,
            stop: stop_rx,
        };
        (bus, pending)
    }

    /// Starts the publisher and the subscriber once the instance they serve exists.
    pub fn start(&self, pending: Pending, receiver: Weak<dyn Receiver>) {
        let Pending {
            broadcast,
            outgoing,
            stop,
        } = pending;
        let runtime = broadcast.runtime.clone();
        runtime.spawn(publish(
            broadcast.client.clone(),
            broadcast.channel.clone(),
            broadcast.publisher,
            outgoing,
            receiver.clone(),
        ));
        runtime.spawn(listen(
            broadcast.client,
            broadcast.channel,
            Some(broadcast.pubsub),
            self.id,
            receiver.clone(),
            stop,
            OfflineOnExit(receiver),
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
    ) -> Option<oneshot::Receiver<()>> {
        if !clear && keys.is_empty() && bumps.is_empty() {
            return None;
        }
        let message = Message::new(self.id, clear, keys, bumps);
        let (ack, acked) = oneshot::channel();
        let outgoing = Outgoing {
            payload: message.encode(),
            ack,
        };
        let sent = self.outgoing.send(outgoing).ok().map(|()| acked);
        if sent.is_none() {
            cache.set_link(Link::Broadcast, false);
        }
        sent
    }

    /// Waits (at most the configured time) until Redis has taken a commit's invalidation.
    pub async fn wait(&self, acked: oneshot::Receiver<()>) {
        let _ = tokio::time::timeout(self.commit_wait, acked).await;
    }
}

/// A random id for this instance.
fn instance_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}

/// The most queued messages sent in one pipeline.
const BATCH: usize = 64;

/// Publishes queued messages in order, those queued meanwhile together in one pipeline; a
/// batch that Redis does not take is retried until it does.
async fn publish(
    client: redis::Client,
    channel: String,
    connection: MultiplexedConnection,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    receiver: Weak<dyn Receiver>,
) {
    let mut connection = Some(connection);
    let mut batch = Vec::with_capacity(BATCH);
    while outgoing.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for message in &batch {
            pipe.cmd("PUBLISH")
                .arg(&channel)
                .arg(&message.payload)
                .ignore();
        }
        let mut backoff = MIN_BACKOFF;
        loop {
            if connection.is_none() {
                connection = client.get_multiplexed_async_connection().await.ok();
            }
            if let Some(conn) = connection.as_mut() {
                match pipe.query_async::<()>(conn).await {
                    Ok(()) => break,
                    Err(_) => connection = None,
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        if let Some(receiver) = receiver.upgrade() {
            Counters::add(
                &receiver.cache().counters.broadcasts_sent,
                batch.len() as u64,
            );
        }
        for message in batch.drain(..) {
            let _ = message.ack.send(());
        }
    }
}

/// Applies the other instances' invalidations until the context is dropped; resubscribes after
/// a lost connection, with the cache offline meanwhile.
async fn listen(
    client: redis::Client,
    channel: String,
    mut subscribed: Option<PubSub>,
    me: u64,
    receiver: Weak<dyn Receiver>,
    mut stop: oneshot::Receiver<()>,
    // An argument, not a local: dropped with the task even if it never ran.
    _offline_on_exit: OfflineOnExit,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let pubsub = match subscribed.take() {
            Some(pubsub) => pubsub,
            None => {
                let attempt = tokio::select! {
                    attempt = subscribe(&client, &channel) => attempt,
                    _ = &mut stop => return,
                };
                match attempt {
                    Ok(pubsub) => {
                        let Some(receiver) = receiver.upgrade() else {
                            return;
                        };
                        receiver.cache().set_link(Link::Broadcast, true);
                        backoff = MIN_BACKOFF;
                        pubsub
                    }
                    Err(_) => {
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = &mut stop => return,
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
        };
        let (mut sink, mut messages) = pubsub.split();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { break };
                    let Some(receiver) = receiver.upgrade() else { return };
                    receive(&*receiver, me, message.get_payload_bytes());
                }
                _ = heartbeat.tick() => {
                    // A connection can die without closing (a dropped route, a paused
                    // server): one that does not answer a PING in time counts as lost.
                    let pong = tokio::time::timeout(HEARTBEAT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
                _ = &mut stop => return,
            }
        }
        // The connection is gone, and with it whatever was published meanwhile.
        let Some(receiver) = receiver.upgrade() else {
            return;
        };
        receiver.cache().set_link(Link::Broadcast, false);
        Counters::add(&receiver.cache().counters.broadcast_outages, 1);
    }
}

/// Takes a still-living context offline when its subscriber stops for good: the runtime that
/// ran it shut down, and no invalidation from another instance can be heard any more.
struct OfflineOnExit(Weak<dyn Receiver>);

impl Drop for OfflineOnExit {
    fn drop(&mut self) {
        if let Some(receiver) = self.0.upgrade() {
            receiver.cache().set_link(Link::Broadcast, false);
        }
    }
}

/// Applies one received message.
fn receive(receiver: &dyn Receiver, me: u64, payload: &[u8]) {
    let Ok(message) = Message::decode(payload) else {
        // Not ours to read (another program on the channel, a newer format): whatever it
        // invalidated, dropping everything covers it.
        receiver.cache().clear();
        return;
    };
    if message.from == me {
        return;
    }
    let remote = message.resolve();
    if remote.clear {
        receiver.cache().clear();
    }
    receiver.apply_remote(remote.keys, remote.bumps);
    // Counted once applied: "received" means "in effect here".
    Counters::add(&receiver.cache().counters.broadcasts_received, 1);
}
