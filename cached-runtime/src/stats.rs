//! Counters of what the cache did, and the [`Stats`] snapshot users read.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The reads and invalidations of one entity or view: what [`Counters`] keeps per namespace
/// slot.
#[derive(Default)]
pub(crate) struct Reads {
    hits: AtomicU64,
    misses: AtomicU64,
    /// Keys of it dropped, and whole-entity invalidations of it.
    invalidations: AtomicU64,
}

/// Live counters, shared by every handle of a context.
pub(crate) struct Counters {
    /// Hits, misses and invalidations per namespace slot ([`crate::registry::slot`]): a read
    /// or an invalidated key touches one counter, and the totals are their sums.
    reads: Box<[Reads]>,
    pub fills: AtomicU64,
    pub stale_fills_rejected: AtomicU64,
    pub too_large: AtomicU64,
    pub flight_joins: AtomicU64,
    pub loads: AtomicU64,
    pub broadcasts_sent: AtomicU64,
    pub broadcasts_received: AtomicU64,
    pub broadcast_outages: AtomicU64,
    pub broadcast_gaps: AtomicU64,
    pub broadcast_silences: AtomicU64,
    pub broadcast_degraded: AtomicU64,
    pub broadcast_foreign: AtomicU64,
    pub broadcast_refused_commits: AtomicU64,
    pub outbox_relayed: AtomicU64,
    pub hook_panics: AtomicU64,
    pub feed_events: AtomicU64,
    pub feed_outages: AtomicU64,
    pub audit_checked: AtomicU64,
    pub audit_mismatches: AtomicU64,
    pub warmed: AtomicU64,
    /// The shared cache in Redis, if any.
    pub shared: SharedCounters,
}

/// Live counters of the shared cache ([`SharedStats`]).
#[derive(Default)]
pub(crate) struct SharedCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub stores_refused: AtomicU64,
    pub skipped: AtomicU64,
    pub undecodable: AtomicU64,
    pub errors: AtomicU64,
    pub breaker_opens: AtomicU64,
    pub breaker_open: std::sync::atomic::AtomicBool,
    pub runs_checked: std::sync::atomic::AtomicBool,
}

impl SharedCounters {
    fn all(&self) -> [&AtomicU64; 8] {
        [
            &self.hits,
            &self.misses,
            &self.stores,
            &self.stores_refused,
            &self.skipped,
            &self.undecodable,
            &self.errors,
            &self.breaker_opens,
        ]
    }

    fn snapshot(&self) -> SharedStats {
        let [hits, misses, stores, stores_refused, skipped, undecodable, errors, breaker_opens] =
            self.all().map(|c| c.load(Relaxed));
        SharedStats {
            hits,
            misses,
            stores,
            stores_refused,
            skipped,
            undecodable,
            errors,
            breaker_opens,
            breaker_open: self.breaker_open.load(Relaxed),
            runs_checked: self.runs_checked.load(Relaxed),
        }
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            reads: (0..crate::registry::slot_count())
                .map(|_| Reads::default())
                .collect(),
            fills: AtomicU64::default(),
            stale_fills_rejected: AtomicU64::default(),
            too_large: AtomicU64::default(),
            flight_joins: AtomicU64::default(),
            loads: AtomicU64::default(),
            broadcasts_sent: AtomicU64::default(),
            broadcasts_received: AtomicU64::default(),
            broadcast_outages: AtomicU64::default(),
            broadcast_gaps: AtomicU64::default(),
            broadcast_silences: AtomicU64::default(),
            broadcast_degraded: AtomicU64::default(),
            broadcast_foreign: AtomicU64::default(),
            broadcast_refused_commits: AtomicU64::default(),
            outbox_relayed: AtomicU64::default(),
            hook_panics: AtomicU64::default(),
            feed_events: AtomicU64::default(),
            feed_outages: AtomicU64::default(),
            audit_checked: AtomicU64::default(),
            audit_mismatches: AtomicU64::default(),
            warmed: AtomicU64::default(),
            shared: SharedCounters::default(),
        }
    }
}

impl Counters {
    /// A read of the namespace in `slot` answered from the cache.
    #[inline]
    pub fn hit(&self, slot: usize) {
        if let Some(reads) = self.reads.get(slot) {
            reads.hits.fetch_add(1, Relaxed);
        }
    }

    /// A read of the namespace in `slot` that found nothing usable.
    #[inline]
    pub fn miss(&self, slot: usize) {
        if let Some(reads) = self.reads.get(slot) {
            reads.misses.fetch_add(1, Relaxed);
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counts one invalidation of the namespace in `slot` (a key of it dropped, or the whole
    /// of it).
    pub fn invalidated(&self, slot: usize) {
        if let Some(reads) = self.reads.get(slot) {
            reads.invalidations.fetch_add(1, Relaxed);
        }
    }

    /// Sets every count back to zero ([`Context::reset_stats`](crate::Context::reset_stats)).
    pub fn reset(&self) {
        for reads in self.reads.iter() {
            reads.hits.store(0, Relaxed);
            reads.misses.store(0, Relaxed);
            reads.invalidations.store(0, Relaxed);
        }
        for counter in [
            &self.fills,
            &self.stale_fills_rejected,
            &self.too_large,
            &self.flight_joins,
            &self.loads,
            &self.broadcasts_sent,
            &self.broadcasts_received,
            &self.broadcast_outages,
            &self.broadcast_gaps,
            &self.broadcast_silences,
            &self.broadcast_degraded,
            &self.broadcast_foreign,
            &self.broadcast_refused_commits,
            &self.outbox_relayed,
            &self.hook_panics,
            &self.feed_events,
            &self.feed_outages,
            &self.audit_checked,
            &self.audit_mismatches,
            &self.warmed,
        ] {
            counter.store(0, Relaxed);
        }
        for counter in self.shared.all() {
            counter.store(0, Relaxed);
        }
    }

    pub fn snapshot(&self) -> Stats {
        let (mut entities, mut invalidations) = (BTreeMap::new(), BTreeMap::new());
        let (mut hits, mut misses) = (0, 0);
        for (namespace, reads) in crate::registry::namespaces().iter().zip(&self.reads[1..]) {
            // By type name: two types of one name (in different modules, each with a
            // namespace of its own) are summed, not one of them lost.
            let invalidated = reads.invalidations.load(Relaxed);
            if invalidated > 0 {
                *invalidations.entry(namespace.type_name).or_insert(0) += invalidated;
            }
            let (read_hits, read_misses) = (reads.hits.load(Relaxed), reads.misses.load(Relaxed));
            hits += read_hits;
            misses += read_misses;
            if read_hits + read_misses > 0 {
                let sum: &mut EntityReads = entities.entry(namespace.type_name).or_default();
                sum.hits += read_hits;
                sum.misses += read_misses;
            }
        }
        Stats {
            hits,
            misses,
            reads: entities,
            loads: self.loads.load(Relaxed),
            fills: self.fills.load(Relaxed),
            stale_fills_rejected: self.stale_fills_rejected.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            single_flight_joins: self.flight_joins.load(Relaxed),
            broadcasts_sent: self.broadcasts_sent.load(Relaxed),
            broadcasts_received: self.broadcasts_received.load(Relaxed),
            broadcast_outages: self.broadcast_outages.load(Relaxed),
            broadcast_gaps: self.broadcast_gaps.load(Relaxed),
            broadcast_silences: self.broadcast_silences.load(Relaxed),
            broadcast_degraded: self.broadcast_degraded.load(Relaxed),
            broadcast_foreign: self.broadcast_foreign.load(Relaxed),
            broadcast_refused_commits: self.broadcast_refused_commits.load(Relaxed),
            outbox_relayed: self.outbox_relayed.load(Relaxed),
            hook_panics: self.hook_panics.load(Relaxed),
            feed_events: self.feed_events.load(Relaxed),
            feed_outages: self.feed_outages.load(Relaxed),
            audit_checked: self.audit_checked.load(Relaxed),
            audit_mismatches: self.audit_mismatches.load(Relaxed),
            warmed: self.warmed.load(Relaxed),
            shared: self.shared.snapshot(),
            invalidations,
        }
    }
}

/// A snapshot of a context's counters (`ctx.stats()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that found nothing usable in the cache.
    pub misses: u64,
    /// Database loads run to answer misses (concurrent misses on one key share one load).
    pub loads: u64,
    /// Entries stored in the cache by loads.
    pub fills: u64,
    /// Loaded values refused because a commit invalidated their key while they were read.
    pub stale_fills_rejected: u64,
    /// Values not cached because they weigh more than
    /// [`ContextBuilder::max_entry_bytes`](crate::ContextBuilder::max_entry_bytes) (they were
    /// still returned; a write-through of one drops the key instead).
    pub too_large: u64,
    /// Misses that waited for another task's load of the same key instead of querying.
    pub single_flight_joins: u64,
    /// Invalidations published to the other instances (with a Redis broadcast). A commit's
    /// fence counts once; its release, the same invalidation sent again after the database
    /// commit, does not.
    pub broadcasts_sent: u64,
    /// Invalidations received from other instances and applied here (a fence once, at its
    /// arrival; its release is not counted again, nor is a duplicate or a late message,
    /// though both are applied).
    pub broadcasts_received: u64,
    /// Times the broadcast subscription was lost, or the [`Outbox`](crate::Outbox) could not
    /// be read: each time the cache was cleared and served nothing until it was back.
    pub broadcast_outages: u64,
    /// Messages known to be missed: a gap in a sender's numbers, or a message that could not
    /// be read. Each time the cache was cleared (whatever was missed, that covers it).
    pub broadcast_gaps: u64,
    /// Other instances that fell silent (no message, not even a heartbeat, for their
    /// [`RedisBroadcast::silence`](crate::RedisBroadcast::silence) bound): crashed, killed,
    /// or cut off from Redis. Each time the cache was cleared, unless both instances have an
    /// [`Outbox`](crate::Outbox) (whatever the silent one committed is relayed from it).
    pub broadcast_silences: u64,
    /// Messages this instance sent in a smaller form than the invalidation it applied: the
    /// queue overflowed (one clear stood for everything queued), or a message was too large
    /// or refused by Redis (whole-entity bumps, or a clear).
    pub broadcast_degraded: u64,
    /// Messages from an instance whose invalidation graph differs from this one's (another
    /// version, during a rolling deploy), applied conservatively: every query and view of
    /// each entity they name.
    pub broadcast_foreign: u64,
    /// Commits refused before the database commit because Redis had not taken this
    /// instance's messages for too long ([`Error::BroadcastUnreachable`](crate::Error)).
    pub broadcast_refused_commits: u64,
    /// Messages this instance relayed from the [`Outbox`](crate::Outbox): commits whose
    /// writer had not published them within [`Outbox::relay_after`](crate::Outbox::relay_after)
    /// (it died, or lost Redis).
    pub outbox_relayed: u64,
    /// Invalidation hooks ([`Context::on_invalidate`](crate::Context::on_invalidate)) that
    /// panicked. Each panic was caught: the invalidation was applied and broadcast all the
    /// same, and the other hooks ran.
    pub hook_panics: u64,
    /// Changes applied from the change feed (each a statement's rows, a whole table, or a
    /// row on MongoDB); see [`ContextBuilder::change_feed`](crate::ContextBuilder::change_feed).
    pub feed_events: u64,
    /// Times the change feed lost its connection or met a message it could not read: each
    /// time the cache was cleared, and fills were refused until the feed listened again.
    pub feed_outages: u64,
    /// Entries the background auditor ([`Context::start_auditor`](crate::Context::start_auditor))
    /// compared with the database, over all its passes (a manual
    /// [`Context::audit`](crate::Context::audit) is not counted).
    pub audit_checked: u64,
    /// Of those, the entries the database contradicted.
    pub audit_mismatches: u64,
    /// Entries reloaded in the background after an invalidation dropped them, because
    /// readers hit them often ([`ContextBuilder::warm`](crate::ContextBuilder::warm)).
    pub warmed: u64,
    /// The shared cache in Redis ([`SharedCache`](crate::SharedCache)); all zero without one.
    pub shared: SharedStats,
    /// Hits and misses per entity or view (by type name; two types of one name in different
    /// modules are summed), for those read at all.
    pub reads: BTreeMap<&'static str, EntityReads>,
    /// Keys invalidated (dropped or rewritten), per entity or view type name (summed like
    /// `reads`).
    pub invalidations: BTreeMap<&'static str, u64>,
}

/// What the shared cache in Redis did ([`Stats::shared`]). Its reads are in-process misses
/// of shared entities and views only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedStats {
    /// In-process misses answered from Redis (no database read).
    pub hits: u64,
    /// In-process misses Redis did not have: loaded from the database.
    pub misses: u64,
    /// Loaded values stored in Redis.
    pub stores: u64,
    /// Stores Redis refused because something the load read was invalidated meanwhile
    /// (or a clear happened): the lease rule at work.
    pub stores_refused: u64,
    /// Reads or stores this instance did not attempt because it could not prove them safe:
    /// its own invalidations not yet in Redis, or another instance's not yet applied here.
    pub skipped: u64,
    /// Entries this build could not read (another format, damaged bytes): deleted, and
    /// loaded from the database.
    pub undecodable: u64,
    /// Calls that failed or timed out (each answered from the database instead).
    pub errors: u64,
    /// Times the circuit breaker opened.
    pub breaker_opens: u64,
    /// Whether the breaker is open: reads skip Redis until a trial call succeeds.
    pub breaker_open: bool,
    /// Whether entries are stamped with the Redis process's own `run_id`, so that a Redis
    /// restored from an older snapshot, or a replica that took over without the master's last
    /// writes, serves nothing stored before. `false` with a shared cache: this Redis user may
    /// not run `INFO` (grant it: `ACL SETUSER <user> +info`), or the server reports no
    /// `run_id`; the run is then kept in a key, which such an event restores with the
    /// entries it vouches for (a warning is logged at start too). `false` without one.
    pub runs_checked: bool,
}

/// The reads of one entity or view ([`Stats::reads`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntityReads {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that found nothing usable in the cache.
    pub misses: u64,
}

impl Stats {
    /// Hits as a fraction of all reads (0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

impl Stats {
    /// The background auditor's figure: the share of the entries it checked that matched the
    /// database (1.0 before it checked any), as Polaris reports consistency.
    pub fn consistency(&self) -> f64 {
        if self.audit_checked == 0 {
            return 1.0;
        }
        1.0 - self.audit_mismatches as f64 / self.audit_checked as f64
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![
            ("hits", self.hits),
            ("misses", self.misses),
            ("database loads", self.loads),
            ("fills", self.fills),
            ("stale fills rejected", self.stale_fills_rejected),
            ("single-flight joins", self.single_flight_joins),
        ];
        if self.too_large > 0 {
            rows.push(("too large to cache", self.too_large));
        }
        if self.feed_events > 0 || self.feed_outages > 0 {
            rows.push(("feed events applied", self.feed_events));
            rows.push(("feed outages", self.feed_outages));
        }
        if self.audit_checked > 0 {
            rows.push(("entries audited", self.audit_checked));
            rows.push(("audit mismatches", self.audit_mismatches));
        }
        if self.warmed > 0 {
            rows.push(("warmed after invalidation", self.warmed));
        }
        if self.hook_panics > 0 {
            rows.push(("hook panics (caught)", self.hook_panics));
        }
        if self.broadcasts_sent + self.broadcasts_received + self.broadcast_outages > 0 {
            rows.extend([
                ("broadcasts sent", self.broadcasts_sent),
                ("broadcasts received", self.broadcasts_received),
                ("broadcast outages", self.broadcast_outages),
            ]);
            for (name, n) in [
                ("broadcast gaps", self.broadcast_gaps),
                ("silent instances", self.broadcast_silences),
                ("broadcasts degraded", self.broadcast_degraded),
                ("from another graph", self.broadcast_foreign),
                ("commits refused (no Redis)", self.broadcast_refused_commits),
                ("relayed from the outbox", self.outbox_relayed),
            ] {
                if n > 0 {
                    rows.push((name, n));
                }
            }
        }
        let shared = &self.shared;
        if shared.hits + shared.misses + shared.errors + shared.skipped > 0 {
            rows.extend([
                ("shared hits", shared.hits),
                ("shared misses", shared.misses),
                ("shared stores", shared.stores),
                ("shared stores refused", shared.stores_refused),
                ("shared skipped (unproven)", shared.skipped),
                ("shared errors", shared.errors),
                ("shared breaker opened", shared.breaker_opens),
            ]);
        }
        for (name, n) in rows {
            writeln!(f, "  {name:<28} {n:>8}")?;
        }
        if shared.hits + shared.misses > 0 && !shared.runs_checked {
            writeln!(f, "  {:<28} {:>8}", "shared run (INFO denied)", "in a key")?;
        }
        writeln!(f, "  {:<28} {:>7.1}%", "hit rate", self.hit_rate() * 100.0)?;
        for (entity, n) in &self.invalidations {
            writeln!(f, "  {:<28} {n:>8}", format!("invalidations: {entity}"))?;
        }
        Ok(())
    }
}
