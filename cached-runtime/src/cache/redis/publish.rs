//! The publisher: one task per context that sends its invalidations to Redis, in order.
//!
//! Messages queued meanwhile go together in one pipeline. Each is numbered (heartbeats too:
//! a receiver that sees a gap knows it missed one), stamped with the graph fingerprint and the
//! silence bound, and kept under the size limit. A batch Redis does not take is retried with
//! backoff until it does (the bus refuses commits meanwhile, once half the silence bound has
//! passed); a batch Redis answers with a refusal goes again as one clear. With a shared cache,
//! each invalidation is published by the script that deletes the shared entries it reaches.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::mpsc;

use super::server::{Conn, Server};
use super::shared::{Purge, L2};
use super::{Outgoing, Receiver, Shared, MAX_BACKOFF, MIN_BACKOFF};
use crate::cache::wire::Message;
use crate::stats::Counters;

/// The most queued messages sent in one pipeline.
const BATCH: usize = 64;

/// Publishes until the context is dropped (then says goodbye).
pub(super) async fn publish(
    server: Server,
    channel: String,
    connection: Conn,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
    receiver: Weak<dyn Receiver>,
) {
    let mut connection = Some(connection);
    let mut numbering = Numbering {
        next: 1,
        graph: crate::registry::fingerprint(),
        silence_ms: shared.silence.as_millis() as u64,
        outbox: shared.outbox,
    };
    let mut batch = Vec::with_capacity(BATCH);
    // The first heartbeat goes at once: the other instances learn of this one (and will
    // notice its silence) before it can commit anything.
    let mut quiet = std::time::Duration::ZERO;
    loop {
        // Nothing to say for a third of the silence bound: a heartbeat.
        let open = tokio::select! {
            n = outgoing.recv_many(&mut batch, BATCH) => n > 0,
            _ = tokio::time::sleep(quiet) => true,
        };
        quiet = shared.heartbeat();
        let releases_only = !batch.is_empty()
            && batch.iter().all(
                |item| matches!(item, Outgoing::Message { message, .. } if message.release > 0),
            );
        if releases_only {
            // Nobody waits for a release: let the tasks woken by the fence's reply (the
            // commit, a receiver in this process) run first.
            tokio::task::yield_now().await;
        }
        shared.queued.fetch_sub(batch.len(), Relaxed);
        let mut dones = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.len());
        for item in batch.drain(..) {
            match item {
                Outgoing::Message {
                    message,
                    purge,
                    done,
                } => {
                    messages.push((message, purge));
                    dones.push(done);
                }
                Outgoing::Probe { done } => dones.push(done),
            }
        }
        let mut degraded = 0;
        if shared.overflowed.swap(false, SeqCst) {
            // Everything queued, and what could not be queued, as one clear.
            while let Ok(item) = outgoing.try_recv() {
                shared.queued.fetch_sub(1, Relaxed);
                dones.push(item.into_done());
            }
            dones.append(&mut shared.overflow_acks());
            messages = vec![cleared(&shared)];
            degraded += 1;
        }
        if !open || messages.is_empty() {
            let mut beat = Message::new(shared.id, false, &[], &[]);
            beat.bye = !open;
            messages.push((beat, None));
        }
        // A release is not counted: it ends the invalidation its fence was counted as.
        let sent = messages
            .iter()
            .filter(|(m, _)| !m.is_heartbeat() && m.release == 0)
            .count() as u64;
        let first = numbering.next;
        let mut payloads = Vec::with_capacity(messages.len());
        for (message, purge) in messages {
            let release = message.release > 0;
            let (payload, smaller) = numbering.stamp(message, shared.max_message_bytes);
            // A release made smaller is not counted either: its fence was.
            degraded += u64::from(smaller && !release);
            // Made smaller: the shared cache loses everything rather than work out the
            // entities of a message this large.
            let purge = purge.map(|purge| if smaller { Purge::clear() } else { purge });
            payloads.push((payload, purge));
        }
        // When the context is gone, its goodbye gets one silence bound to land.
        let give_up = (!open).then(|| Instant::now() + shared.silence);
        let mut refused = false;
        let mut backoff = MIN_BACKOFF;
        loop {
            if connection.is_none() {
                connection = server.connect().await.ok();
            }
            if let Some(conn) = connection.as_mut() {
                let mut pipe = redis::pipe();
                for (payload, purge) in &payloads {
                    match (&shared.l2, purge) {
                        (Some(l2), Some(purge)) => pipe.add_command(l2.invalidate(payload, purge)),
                        _ => pipe.cmd("PUBLISH").arg(&channel).arg(payload),
                    }
                    .ignore();
                }
                match pipe.query_async::<()>(conn).await {
                    Ok(()) => break,
                    // Redis restarted and forgot the scripts: load them and go again (what
                    // went before the failed call is published twice: harmless).
                    Err(err) if L2::is_noscript(&err) => {
                        if L2::load_scripts(conn).await.is_ok() {
                            continue;
                        }
                        connection = None;
                    }
                    // Redis answered, and refused (a permission, a limit): the same batch would
                    // be refused forever. Once, it goes again as one clear, numbered as its
                    // first message was; a clear refused too is waited out like an outage.
                    Err(err) if is_refusal(&err) && !refused => {
                        refused = true;
                        numbering.next = first;
                        let (clear, purge) = cleared(&shared);
                        payloads = vec![(numbering.stamp(clear, usize::MAX).0, purge)];
                        degraded += 1;
                        continue;
                    }
                    Err(err) if is_refusal(&err) => {}
                    Err(_) => connection = None,
                }
            }
            if give_up.is_some_and(|at| Instant::now() >= at) {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        shared.taken(numbering.next - 1);
        if let Some(receiver) = receiver.upgrade() {
            let counters = &receiver.cache().counters;
            Counters::add(&counters.broadcasts_sent, sent);
            Counters::add(&counters.broadcast_degraded, degraded);
            tracing::debug!(target: "cached", sent, degraded, "broadcast published");
        }
        for done in dones {
            done.signal(degraded == 0);
        }
        if !open {
            return;
        }
    }
}

/// A clear from this instance, with the shared cache's clear if it has one.
fn cleared(shared: &Shared) -> (Message, Option<Purge>) {
    let message = Message::new(shared.id, true, &[], &[]);
    (message, shared.l2.as_ref().map(|_| Purge::clear()))
}

/// Numbers and stamps outgoing messages.
struct Numbering {
    next: u64,
    graph: u64,
    silence_ms: u64,
    outbox: bool,
}

impl Numbering {
    /// The next number, the fingerprint and the bound on `message`, encoded within
    /// `max_bytes` (as whole-entity bumps, or a clear, if it is too large); whether it had to
    /// be made smaller.
    fn stamp(&mut self, mut message: Message, max_bytes: usize) -> (Vec<u8>, bool) {
        message.seq = self.next;
        message.graph = self.graph;
        message.silence_ms = self.silence_ms;
        message.outbox = self.outbox;
        self.next += 1;
        message.encode_within(max_bytes)
    }
}

/// Whether Redis answered the command with an error of its own (as opposed to a connection
/// that failed or closed).
fn is_refusal(err: &redis::RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}
