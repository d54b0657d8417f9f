//! The listener: one task per context that applies the other instances' invalidations, and
//! notices what it cannot have heard.
//!
//! Per sender it keeps the last number and when it last heard from it. A gap, a message it
//! cannot read, or a sender silent past its bound clears the cache (whatever was missed,
//! dropping everything covers it; the clear also refuses every load that read before it). A
//! lost connection takes the cache offline until it has subscribed again; a connection that
//! stops answering without closing counts as lost (the listener pings Redis), and so does one
//! that answers but does not bring this instance's own messages back (`echo`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use redis::aio::PubSub;

use tokio::sync::{mpsc, oneshot};

use super::echo::Echo;
use super::fence::{Announced, Fences};
use super::server::Server;
use super::shared::{Advance, Purge};
use super::{Outgoing, Receiver, Remote, Shared, MAX_BACKOFF, MIN_BACKOFF};
use crate::cache::local::Link;
use crate::cache::wire::Message;
use crate::stats::Counters;

/// The longest the listener waits between two checks of its connection and of the senders.
const TICK: Duration = Duration::from_secs(1);

pub(super) async fn subscribe(server: &Server, channel: &str) -> redis::RedisResult<PubSub> {
    let mut pubsub = server.pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// [`subscribe`], then (with a shared cache) learns the number of the last invalidation Redis
/// numbered: every one up to it was published before this subscription, when this instance
/// was not caching (it was starting, or it had cleared its cache on losing the connection),
/// and every later one comes through the subscription.
async fn subscribe_numbered(
    server: &Server,
    channel: &str,
    shared: &Shared,
) -> redis::RedisResult<PubSub> {
    let pubsub = subscribe(server, channel).await?;
    if let Some(l2) = &shared.l2 {
        // Stored, not raised: a Redis restarted or failed over numbers from below again.
        let (run, last) = l2.last_number().await?;
        shared.applied.reset(run, last);
        shared.progress.notify_waiters();
    }
    Ok(pubsub)
}

/// Applies the other instances' invalidations until the context is dropped; resubscribes after
/// a lost connection, with the cache offline meanwhile.
pub(super) async fn listen(
    server: Server,
    channel: String,
    mut subscribed: Option<PubSub>,
    shared: Arc<Shared>,
    receiver: Weak<dyn Receiver>,
    mut stop: oneshot::Receiver<()>,
    // An argument, not a local: dropped with the task even if it never ran.
    _offline_on_exit: OfflineOnExit,
) {
    let mut senders = Senders {
        me: shared.id,
        silence: shared.silence,
        relays: shared.outbox,
        known: HashMap::new(),
        outgoing: shared.outgoing.clone(),
        shared: shared.clone(),
        fences: Fences::default(),
        echo: Echo::default(),
    };
    let tick = TICK.min(shared.heartbeat());
    let mut backoff = MIN_BACKOFF;
    loop {
        let pubsub = match subscribed.take() {
            Some(pubsub) => pubsub,
            None => {
                let attempt = tokio::select! {
                    attempt = subscribe_numbered(&server, &channel, &shared) => attempt,
                    _ = &mut stop => return,
                };
                match attempt {
                    Ok(pubsub) => {
                        let Some(receiver) = receiver.upgrade() else {
                            return;
                        };
                        // A request to start over made before this subscription counted
                        // from the run Redis has now is answered by it.
                        let _ = shared.resync.notified().now_or_never();
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
        senders.resubscribed();
        // An instance this one has not heard of yet, cut off from Redis before this
        // subscription, may still commit for half its silence bound: clear once it passed.
        let mut young_until = Some(Instant::now() + shared.silence);
        let (mut sink, mut messages) = pubsub.split();
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        let mut last_ping = Instant::now();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { break };
                    let Some(receiver) = receiver.upgrade() else { return };
                    senders.receive(&*receiver, message.get_payload_bytes());
                }
                _ = ticks.tick() => {
                    let Some(receiver) = receiver.upgrade() else { return };
                    senders.check_silence(&*receiver);
                    senders.fences.expire(&*receiver);
                    if senders.deaf() {
                        break;
                    }
                    if young_until.is_some_and(|at| Instant::now() >= at) {
                        young_until = None;
                        receiver.cache().clear();
                    }
                    drop(receiver);
                    if last_ping.elapsed() >= TICK {
                        // A connection can die without closing (a dropped route, a paused
                        // server): one that does not answer a PING in time counts as lost.
                        last_ping = Instant::now();
                        let pong = tokio::time::timeout(TICK, sink.ping::<redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
                // Redis restarted or failed over (see `shared::watermark`): start over.
                _ = shared.resync.notified() => break,
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
pub(super) struct OfflineOnExit(pub Weak<dyn Receiver>);

impl Drop for OfflineOnExit {
    fn drop(&mut self) {
        if let Some(receiver) = self.0.upgrade() {
            receiver.cache().set_link(Link::Broadcast, false);
        }
    }
}

/// What the listener knows of one other instance.
struct Heard {
    /// Its last number (0: accept any next one, as after this listener resubscribed).
    seq: u64,
    at: Instant,
    silence: Duration,
    /// It writes its commits' messages to the outbox first.
    outbox: bool,
}

/// The other instances heard on the channel.
struct Senders {
    me: u64,
    /// This instance's bound, for senders that do not say theirs.
    silence: Duration,
    /// This instance relays from the outbox: what a silent sender with an outbox committed
    /// reaches it from there.
    relays: bool,
    known: HashMap<u64, Heard>,
    shared: Arc<Shared>,
    /// Where this listener's own shared-cache purges go out (weak: it must not keep the
    /// publisher alive once the context is gone).
    outgoing: mpsc::WeakUnboundedSender<Outgoing>,
    /// The fences raised here by the other instances' commits under way.
    fences: Fences,
    /// Whether this instance's own messages come back.
    echo: Echo,
}

impl Senders {
    /// A message applied here: with a shared cache, its number is now applied. A number of
    /// another run than this instance counts in (Redis restarted or failed over) makes it
    /// subscribe again.
    fn applied(&self, message: &Message) {
        if message.l2 == 0 {
            return;
        }
        match self.shared.applied.heard(&message.l2run, message.l2) {
            Advance::Raised => self.shared.progress.notify_waiters(),
            Advance::Behind => {}
            Advance::OtherRun => self.shared.resync.notify_one(),
        }
    }

    /// Something may have been missed: clear here, and the shared cache too.
    fn lost(&self, cache: &crate::cache::LocalCache) {
        lost(&self.shared, &self.outgoing, cache);
    }

    /// Sends a purge of the shared cache for what this instance applies (the local apply
    /// follows, under `hold`).
    fn purge(
        &self,
        cache: &crate::cache::LocalCache,
        keys: &[crate::key::CacheKey],
        bumps: &[crate::cache::Bump],
        hold: super::Hold,
    ) {
        if let Some(outgoing) = self.outgoing.upgrade() {
            let purge = Purge::of(cache, false, keys, bumps);
            purge_now(&self.shared, &outgoing, cache, purge, hold);
        }
    }

    /// After (re)subscribing: numbers continue from wherever the senders are now, and their
    /// silence counts from now (an outage of this listener already cleared the cache).
    fn resubscribed(&mut self) {
        self.echo.restart();
        let now = Instant::now();
        for heard in self.known.values_mut() {
            heard.seq = 0;
            heard.at = now;
        }
    }

    /// Whether the subscription has not brought back a message Redis took from this
    /// instance within the silence bound: it is deaf, and counts as lost.
    fn deaf(&mut self) -> bool {
        if !self.shared.echo_check {
            return false;
        }
        let taken = self
            .shared
            .last_taken_seq
            .load(std::sync::atomic::Ordering::Relaxed);
        let deaf = self.echo.deaf(taken, self.silence);
        if deaf {
            tracing::warn!(
                target: "cached",
                "this instance's own messages do not come back through its subscription: \
                 subscribing again"
            );
        }
        deaf
    }

    /// Applies one received message.
    fn receive(&mut self, receiver: &dyn Receiver, payload: &[u8]) {
        if self.shared.deaf {
            return; // test only: as if the subscription delivered nothing
        }
        let cache = receiver.cache();
        let Ok(message) = Message::decode(payload) else {
            // Not ours to read (another program on the channel, a newer format): whatever it
            // invalidated, dropping everything covers it.
            self.lost(cache);
            Counters::add(&cache.counters.broadcast_gaps, 1);
            tracing::warn!(target: "cached", "an unreadable broadcast message: cleared");
            return;
        };
        if message.from == self.me {
            // Applied here before it was sent.
            self.echo.heard(message.seq);
            self.applied(&message);
            return;
        }
        let fresh = self.track(receiver, &message);
        if message.release > 0 && self.shared.ignore_releases {
            return; // test only: as if it were lost
        }
        if message.is_heartbeat() && message.release == 0 {
            self.applied(&message);
            return;
        }
        let (remote, foreign) = message.resolve_here();
        // Another build's keys may miss shared entries this build's views read: purge what
        // this build would have (held before the local apply, like a commit's).
        let hold = foreign.then(|| self.shared.hold()).flatten();
        if foreign {
            Counters::add(&cache.counters.broadcast_foreign, 1);
        }
        if remote.clear {
            cache.clear();
        }
        if let Some(hold) = hold {
            self.purge(cache, &remote.keys, &remote.bumps, hold);
        }
        tracing::debug!(
            target: "cached",
            from = message.from,
            seq = message.seq,
            keys = remote.keys.len(),
            clear = remote.clear,
            foreign,
            "broadcast received"
        );
        let announced = Announced {
            from: message.from,
            // (A message is a fence, a release, or neither.)
            id: message.release.max(message.fence),
            keys: remote.keys,
            bumps: remote.bumps,
        };
        if message.release > 0 {
            self.fences.release(receiver, announced);
            // Not counted: a release ends the invalidation its fence was counted as.
            return;
        }
        if message.fence > 0 && self.shared.honor_fences {
            let bound = self.bound_of(&message);
            self.fences.raise(receiver, announced, bound);
        } else {
            receiver.apply_remote(announced.keys, announced.bumps, Remote::Plain);
        }
        self.applied(&message);
        // Counted once applied: "received" means "in effect here"; a duplicate or a late
        // message is applied all the same, but counted once.
        if fresh {
            Counters::add(&cache.counters.broadcasts_received, 1);
        }
        if message.at_us > 0 {
            let lag = crate::cache::wire::now_us().saturating_sub(message.at_us);
            crate::metrics::broadcast_lag(std::time::Duration::from_micros(lag));
        }
    }

    /// The silence bound of a message's sender (this instance's own if it does not say).
    fn bound_of(&self, message: &Message) -> Duration {
        match message.silence_ms {
            0 => self.silence,
            ms => Duration::from_millis(ms),
        }
    }

    /// Follows the sender's numbers: a gap clears the cache. A duplicate or a late message
    /// is applied all the same (dropping keys twice is harmless). Returns whether the
    /// message is new: not numbered at or below one already heard from its sender.
    fn track(&mut self, receiver: &dyn Receiver, message: &Message) -> bool {
        if message.bye {
            self.known.remove(&message.from);
            return true;
        }
        if message.seq == 0 {
            return true; // a sender that does not number its messages
        }
        let silence = self.bound_of(message);
        let heard = self.known.entry(message.from).or_insert(Heard {
            seq: 0,
            at: Instant::now(),
            silence,
            outbox: message.outbox,
        });
        if heard.seq != 0 && message.seq > heard.seq + 1 {
            let cache = receiver.cache();
            let (shared, outgoing) = (&self.shared, &self.outgoing);
            lost(shared, outgoing, cache);
            Counters::add(&cache.counters.broadcast_gaps, 1);
            tracing::warn!(
                target: "cached",
                from = message.from,
                expected = heard.seq + 1,
                got = message.seq,
                "a broadcast message was lost: cleared"
            );
        }
        let fresh = heard.seq == 0 || message.seq > heard.seq;
        heard.seq = heard.seq.max(message.seq);
        heard.at = Instant::now();
        heard.silence = silence;
        heard.outbox = message.outbox;
        fresh
    }

    /// Forgets the senders silent past their bound, and clears the cache if there were any
    /// (one of them may have committed a write whose message never came), unless every one
    /// of them wrote to the outbox this instance relays from.
    fn check_silence(&mut self, receiver: &dyn Receiver) {
        let (mut silent, mut uncovered) = (0, false);
        let relays = self.relays;
        self.known.retain(|_, heard| {
            let quiet = heard.at.elapsed() > heard.silence;
            if quiet {
                silent += 1;
                uncovered |= !(heard.outbox && relays);
            }
            !quiet
        });
        if silent > 0 {
            let cache = receiver.cache();
            if uncovered {
                self.lost(cache);
            }
            Counters::add(&cache.counters.broadcast_silences, silent);
            tracing::warn!(
                target: "cached",
                silent,
                cleared = uncovered,
                "instances silent past their bound"
            );
        }
    }
}

/// A loss (a gap, an unreadable message, a silent sender): this instance clears its cache,
/// and, with a shared cache, the shared cache too: what it missed may be a commit whose
/// writer never deleted the shared entries it reached. The hold is taken before the local
/// clear, so that this instance does not read the shared cache until the purge is in Redis.
fn lost(
    shared: &Arc<Shared>,
    outgoing: &mpsc::WeakUnboundedSender<Outgoing>,
    cache: &crate::cache::LocalCache,
) {
    let hold = shared.hold();
    cache.clear();
    if let (Some(hold), Some(outgoing)) = (hold, outgoing.upgrade()) {
        purge_now(shared, &outgoing, cache, Purge::clear(), hold);
    }
}

/// Queues `purge` as a message of its own (naming nothing here: the other instances only
/// learn its number).
fn purge_now(
    shared: &Shared,
    outgoing: &mpsc::UnboundedSender<Outgoing>,
    cache: &crate::cache::LocalCache,
    purge: Purge,
    hold: super::Hold,
) {
    let message = Message::new(shared.id, false, &[], &[]);
    shared.enqueue_purge(outgoing, cache, message, purge, hold);
}
