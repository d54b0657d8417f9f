//! Commits announced before the database commit: the fence and its release.
//!
//! Without a fence, a commit publishes its invalidation after `COMMIT` and waits for Redis to
//! take it: one Redis round trip after the database's. With one, the invalidation goes out
//! *before* `COMMIT`, so the two round trips overlap:
//!
//! 1. the writer queues the message as a fence (`Message::fence`) and commits in the
//!    database meanwhile;
//! 2. each receiver drops the keys and raises a fence over them (`cache::local::fence`):
//!    nothing they reach is stored, since a load may still read the database from before
//!    the commit;
//! 3. after `COMMIT` the writer applies here and queues the release (the same invalidation,
//!    `Message::release`), and `commit()` returns once Redis has taken the fence;
//! 4. each receiver applies the release (refusing every load that read while the fence was
//!    up), then lowers the fence.
//!
//! So once `commit()` returns, every receiver has the keys dropped and fenced (or hears so
//! within the same tens of microseconds as before), and no value read before the commit can
//! be stored after it. A receiver lowers a fence whose release never came (the writer died,
//! the release was lost) after the writer's silence bound, applying it again first; the
//! writer, whose commit took longer than half that bound, waits for its release to be taken
//! too, so that no receiver lowers the fence before the commit is visible. A fence that did
//! not travel as one (made smaller, part of a clear) also makes the writer wait for its
//! release. Not used with an outbox or a shared cache, whose messages keep to the order
//! "commit, then publish" (the outbox row is written in the commit, the shared cache's
//! entries are deleted by the script that publishes).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Bus, Receiver, Remote};
use crate::cache::local::Fence;
use crate::cache::wire::Message;
use crate::cache::{Bump, Change, LocalCache};
use crate::key::CacheKey;

/// A commit's invalidation queued as a fence, before its database commit.
pub(crate) struct Fenced {
    id: u64,
    acked: oneshot::Receiver<bool>,
    sent: Instant,
}

/// What `commit()` waits for once the release is queued.
pub(crate) struct Released {
    fence: oneshot::Receiver<bool>,
    release: Option<oneshot::Receiver<bool>>,
    /// The database commit ended within half the silence bound of the fence: no receiver
    /// can have lowered the fence on its own before the commit was visible.
    in_time: bool,
}

impl Bus {
    /// Queues a commit's invalidation as a fence, to go out while the database commits; `None`
    /// when this broadcast publishes after the commit instead (an outbox, a shared cache, or
    /// fences turned off) or there is nothing to say.
    pub fn fence(
        &self,
        cache: &LocalCache,
        changes: &[(CacheKey, Change)],
        bumps: &[Bump],
    ) -> Option<Fenced> {
        let shared = &self.shared;
        if !shared.fences || shared.l2.is_some() || self.outbox.is_some() {
            return None;
        }
        if changes.is_empty() && bumps.is_empty() {
            return None;
        }
        let keys: Vec<CacheKey> = changes.iter().map(|(key, _)| key.clone()).collect();
        let mut message = Message::new(shared.id, false, &keys, bumps);
        let id = shared.fences_sent.fetch_add(1, Relaxed) + 1;
        message.fence = id;
        let acked = shared.enqueue(&self.outgoing, cache, message, None)?;
        Some(Fenced {
            id,
            acked,
            sent: Instant::now(),
        })
    }

    /// After the database commit (or its failure) and the apply here: queues the release of
    /// `fenced`, naming what was applied (`keys` and `bumps`; nothing when the database
    /// aborted the transaction).
    pub fn release(
        &self,
        cache: &LocalCache,
        fenced: Fenced,
        keys: &[CacheKey],
        bumps: &[Bump],
    ) -> Released {
        let mut message = Message::new(self.shared.id, false, keys, bumps);
        message.release = fenced.id;
        let in_time = fenced.sent.elapsed() < self.shared.refuse_after();
        let release = self.shared.enqueue(&self.outgoing, cache, message, None);
        Released {
            fence: fenced.acked,
            release,
            in_time,
        }
    }

    /// Waits, at most `commit_wait`, until the other instances can no longer store what this
    /// commit changed: Redis took the fence (and, if the fence did not travel whole or the
    /// commit was slow, the release too).
    pub async fn settle(&self, released: Released) {
        let deadline = tokio::time::Instant::now() + self.commit_wait;
        let whole = matches!(
            tokio::time::timeout_at(deadline, released.fence).await,
            Ok(Ok(true))
        );
        if whole && released.in_time {
            return;
        }
        if let Some(release) = released.release {
            let _ = tokio::time::timeout_at(deadline, release).await;
        }
    }
}

/// One fence raised here, until its release.
struct Raised {
    at: Instant,
    /// The sender's silence bound: lowered on its own after it.
    bound: Duration,
    keys: Vec<CacheKey>,
    bumps: Vec<Bump>,
    fence: Fence,
}

/// The fences the listener holds, by sender and number.
#[derive(Default)]
pub(super) struct Fences {
    raised: HashMap<(u64, u64), Raised>,
}

/// A fence or a release as received: its sender, its number, what it names here.
pub(super) struct Announced {
    pub from: u64,
    pub id: u64,
    pub keys: Vec<CacheKey>,
    pub bumps: Vec<Bump>,
}

impl Fences {
    /// Applies a fence message: drops its keys and raises a fence over what that reached,
    /// until its release or its sender's silence `bound`. A fence already raised under this
    /// number (a duplicate) is applied without another.
    pub fn raise(&mut self, receiver: &dyn Receiver, announced: Announced, bound: Duration) {
        let Announced { keys, bumps, .. } = announced;
        let id = (announced.from, announced.id);
        if self.raised.contains_key(&id) {
            receiver.apply_remote(keys, bumps, Remote::Plain);
            return;
        }
        let mut fence = Fence::default();
        receiver.apply_remote(keys.clone(), bumps.clone(), Remote::Fence(&mut fence));
        let raised = Raised {
            at: Instant::now(),
            bound,
            keys,
            bumps,
            fence,
        };
        self.raised.insert(id, raised);
    }

    /// Applies a release, then lowers its fence (a release whose fence was not raised
    /// here, lost or lowered already, is applied as any invalidation).
    pub fn release(&mut self, receiver: &dyn Receiver, announced: Announced) {
        let Announced { keys, bumps, .. } = announced;
        match self.raised.remove(&(announced.from, announced.id)) {
            Some(raised) => {
                receiver.apply_remote(keys, bumps, Remote::Again);
                receiver.cache().unfence(raised.fence);
            }
            None => receiver.apply_remote(keys, bumps, Remote::Plain),
        }
    }

    /// Lowers the fences whose release did not come within their sender's bound, applying
    /// each again first (the commit it announced is visible by now, or was never made);
    /// returns how many.
    pub fn expire(&mut self, receiver: &dyn Receiver) -> u64 {
        let expired: Vec<(u64, u64)> = self
            .raised
            .iter()
            .filter(|(_, raised)| raised.at.elapsed() > raised.bound)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            if let Some(raised) = self.raised.remove(id) {
                receiver.apply_remote(raised.keys, raised.bumps, Remote::Again);
                receiver.cache().unfence(raised.fence);
            }
        }
        expired.len() as u64
    }
}
