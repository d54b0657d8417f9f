//! What a context's bus, its publisher and its listener share: the queue of items for the
//! publisher (bounded, collapsing into one clear on overflow), their acknowledgements, and
//! the holds on the shared cache.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::shared::{Purge, Watermark, L2};
use crate::cache::local::Link;
use crate::cache::wire::Message;
use crate::cache::LocalCache;

/// One item for the publisher; `done` hears when Redis has taken it.
pub(super) enum Outgoing {
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
    pub(super) fn into_done(self) -> Done {
        match self {
            Outgoing::Message { done, .. } | Outgoing::Probe { done } => done,
        }
    }
}

/// What is released once Redis has taken an item: its sender's wait (told whether the
/// item went as it was queued, not made smaller or part of a clear), and its hold on the
/// shared cache.
pub(super) struct Done {
    pub(super) ack: oneshot::Sender<bool>,
    pub(super) _hold: Option<Hold>,
}

impl Done {
    pub(super) fn signal(self, intact: bool) {
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
pub(super) struct Shared {
    /// This instance, so that it can ignore its own messages.
    pub(super) id: u64,
    pub(super) silence: Duration,
    pub(super) max_queued: usize,
    pub(super) max_message_bytes: usize,
    /// Items sent to the publisher and not yet taken by it.
    pub(super) queued: AtomicUsize,
    /// A send found the queue full: the publisher sends one clear for everything queued.
    pub(super) overflowed: AtomicBool,
    /// The acknowledgements of the sends that found the queue full.
    pub(super) overflow_acks: Mutex<Vec<Done>>,
    pub(super) epoch: Instant,
    /// When Redis last took a message from this instance (µs since `epoch`), or [`NEVER`].
    pub(super) last_taken: AtomicU64,
    /// The number of the last message Redis took from this instance (0 before the first).
    pub(super) last_taken_seq: AtomicU64,
    /// This instance writes its commits' messages to an outbox, and relays from it.
    pub(super) outbox: bool,
    /// This instance's commits announce their invalidation before the database commit.
    pub(super) fences: bool,
    /// The number of the last fence this instance sent.
    pub(super) fences_sent: AtomicU64,
    /// Test only (else true): received fences are raised.
    pub(super) honor_fences: bool,
    /// Test only (else false): received releases are ignored.
    pub(super) ignore_releases: bool,
    /// Test only (else false): the listener drops everything it receives.
    pub(super) deaf: bool,
    /// Test only (else true): the listener checks that its own messages come back.
    pub(super) echo_check: bool,
    /// The shared cache, if there is one.
    pub(super) l2: Option<L2>,
    /// Invalidations applied here that Redis has not taken yet ([`Hold`]).
    pub(super) pending: AtomicU64,
    /// The run and number of the last shared-cache invalidation applied here (or known to
    /// predate this instance's subscription).
    pub(super) applied: Watermark,
    /// Signalled when `pending` falls to 0 or `applied` rises (loads wait for either).
    pub(super) progress: tokio::sync::Notify,
    /// Signalled when this instance met another run of the shared cache than it counts in
    /// (a restart or a failover of Redis): the listener then subscribes again, as after a
    /// lost connection.
    pub(super) resync: tokio::sync::Notify,
    /// The publisher's queue, for the listener's own purges of the shared cache (weak: it
    /// must not keep the publisher alive once the context is gone).
    pub(super) outgoing: mpsc::WeakUnboundedSender<Outgoing>,
}

/// `Shared::last_taken` before Redis took anything.
pub(super) const NEVER: u64 = u64::MAX;

impl Shared {
    /// Redis just took this instance's messages up to the one numbered `seq`.
    pub(super) fn taken(&self, seq: u64) {
        self.last_taken
            .store(self.epoch.elapsed().as_micros() as u64, Relaxed);
        self.last_taken_seq.fetch_max(seq, Relaxed);
    }

    /// How long since Redis last took a message from this instance (`Duration::MAX` before
    /// the first: a commit waits for the instance's first heartbeat, so that every other
    /// instance subscribed then knows of it before it can commit).
    pub(super) fn since_taken(&self) -> Duration {
        match self.last_taken.load(Relaxed) {
            NEVER => Duration::MAX,
            at => self
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_micros(at)),
        }
    }

    /// How long the publisher stays quiet before it sends a heartbeat.
    pub(super) fn heartbeat(&self) -> Duration {
        self.silence / 3
    }

    /// How long without Redis taking a message before commits are refused.
    pub(super) fn refuse_after(&self) -> Duration {
        self.silence / 2
    }

    /// Queues a message for the publisher, within the bound: when Redis has not kept up
    /// (`max_queued` waiting), this and everything queued will go as one clear. `None` when
    /// the publisher is gone (see [`Bus::send`]).
    pub(super) fn enqueue(
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
    pub(super) fn enqueue_purge(
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
    pub(super) fn enqueue_with(
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
    pub(super) fn hold(self: &Arc<Self>) -> Option<Hold> {
        self.l2.as_ref()?;
        self.pending.fetch_add(1, Relaxed);
        Some(Hold(self.clone()))
    }

    /// Hands an item to the publisher; if it is gone, the cache stops caching.
    pub(super) fn queue(
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

    pub(super) fn overflow_acks(&self) -> std::sync::MutexGuard<'_, Vec<Done>> {
        self.overflow_acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}
