//! A context's end of the broadcast: it starts the publisher and the listener, queues the
//! invalidations applied here, waits for Redis on a commit's behalf, and refuses a commit
//! when Redis has taken nothing from this instance for too long.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::queue::{Done, Hold, Outgoing, Shared, NEVER};
use super::shared::{Codec, Snapshot, Watermark, L2};
use super::{listen, outbox, publish, Receiver, RedisBroadcast};
use crate::cache::wire::Message;
use crate::cache::{Bump, Change, LocalCache};
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::stats::Counters;
use crate::store::{Ops, Store};

/// A context's end of the broadcast: where its invalidations go out.
pub(crate) struct Bus {
    pub(super) shared: Arc<Shared>,
    pub(super) outgoing: mpsc::UnboundedSender<Outgoing>,
    pub(super) commit_wait: Duration,
    /// The outbox's writing end, if the broadcast has one.
    pub(super) outbox: Option<Arc<outbox::Writer>>,
    /// Dropped with the context: stops the subscriber.
    pub(super) _stop: oneshot::Sender<()>,
}

/// The parts [`Bus::start`] needs once the context exists.
pub(crate) struct Pending {
    pub(super) broadcast: RedisBroadcast,
    pub(super) outgoing: mpsc::UnboundedReceiver<Outgoing>,
    pub(super) stop: oneshot::Receiver<()>,
    pub(super) relay: Option<outbox::Relay>,
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
        if broadcast.info_denied {
            if let Some(settings) = broadcast.shared.take() {
                tracing::warn!(
                    target: "cached",
                    "cannot read the Redis server's run_id (the user may not run INFO, or the \
                     server does not report one): the shared cache keeps its run in a key, and \
                     cannot tell a Redis restored from an older snapshot, or a replica that \
                     took over without the master's last writes, from an ordinary day \
                     (grant INFO: ACL SETUSER <user> +info)"
                );
                broadcast.shared = Some(settings.key_run());
            }
        }
        let runs_checked = !broadcast.shared.as_ref().is_some_and(|s| s.run_in_a_key);
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
            last_taken_seq: AtomicU64::new(0),
            outbox: writer.is_some(),
            fences: broadcast.fence_commits,
            fences_sent: AtomicU64::new(0),
            honor_fences: !broadcast.unfenced,
            ignore_releases: broadcast.ignore_releases,
            deaf: broadcast.deaf,
            echo_check: broadcast.echo_check,
            l2,
            pending: AtomicU64::new(0),
            applied: Watermark::new(
                std::mem::take(&mut broadcast.last_number.0),
                broadcast.last_number.1,
                runs_checked,
            ),
            progress: tokio::sync::Notify::new(),
            resync: tokio::sync::Notify::new(),
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

    /// Whether every shared-cache invalidation Redis had numbered at `snapshot` is applied
    /// here; `None` if the snapshot was taken in another run than this instance counts in.
    pub fn covers(&self, snapshot: &Snapshot) -> Option<bool> {
        self.shared.applied.covers(snapshot.run(), snapshot.inv)
    }

    /// This instance met another run of the shared cache than it counts in: it subscribes
    /// again (clearing, as after a lost connection) and counts from that run's last number.
    pub fn resync(&self) {
        self.shared.resync.notify_one();
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
        if self.shared.l2.is_some() {
            if let Some(receiver) = receiver.upgrade() {
                let checked = self.shared.applied.runs_checked();
                let counters = &receiver.cache().counters.shared;
                counters
                    .runs_checked
                    .store(checked, std::sync::atomic::Ordering::Relaxed);
            }
        }
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
pub(super) fn instance_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}
