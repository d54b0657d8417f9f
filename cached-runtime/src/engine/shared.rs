//! The shared cache on the read path: a load of a shared view instance or row asks Redis
//! first, and offers what it loaded from the database to Redis afterwards, each only when it
//! can prove the answer current (see `cache::redis::shared` for the protocol).

use std::future::Future;

use super::Engine;
use crate::cache::Loaded;
use crate::error::Result;
use crate::key::CacheKey;

/// Loads `key` with `load`, through the shared cache if `key` is a shared row or view
/// instance (a load that finds it there reads no database).
pub(crate) async fn through<F, Fut>(engine: &Engine, key: &CacheKey, load: F) -> Result<Loaded>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<Loaded>> + Send,
{
    #[cfg(feature = "redis")]
    if let Some(bus) = engine.bus() {
        if let Some(l2) = bus.shared_cache() {
            if let (Some(codec), true) = (l2.codec(key.namespace()), key.row_id().is_some()) {
                // Boxed: the shared path's state machine (Redis calls, the breaker, the
                // store) stays out of the layout of every caller's future, which would
                // otherwise nest deep enough to reach the compiler's recursion limit in a
                // user's `async fn`.
                let shared: std::pin::Pin<Box<dyn Future<Output = Result<Loaded>> + Send + '_>> =
                    Box::pin(redis::load(engine, bus, l2, codec, key, load));
                return shared.await;
            }
        }
    }
    #[cfg(not(feature = "redis"))]
    let _ = (engine, key);
    load().await
}

#[cfg(feature = "redis")]
mod redis {
    use std::future::Future;
    use std::time::{Duration, Instant};

    use super::Engine;
    use crate::cache::deps::ReadSet;
    use crate::cache::redis::shared::{Codec, Decoded, ReadReply, Snapshot, L2, STAMP_LIFE};
    use crate::cache::redis::Bus;
    use crate::cache::wire::WireKey;
    use crate::cache::{EntryData, Loaded, Token};
    use crate::entity::Namespace;
    use crate::error::Result;
    use crate::key::CacheKey;
    use crate::stats::{Counters, SharedCounters};

    /// Reads of an entry this build cannot read before giving up on the shared cache.
    const UNREADABLE_TRIES: u32 = 2;

    /// The generations of the entities a shared entry is stamped with, as of before the read.
    type Generations = Vec<(&'static Namespace, u64, u64)>;

    pub(super) async fn load<F, Fut>(
        engine: &Engine,
        bus: &Bus,
        l2: &L2,
        codec: &Codec,
        key: &CacheKey,
        load: F,
    ) -> Result<Loaded>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded>>,
    {
        let cache = &engine.cache;
        let counters = &cache.counters.shared;
        // Taken before anything is read: what a store offers must still be current then.
        let token = cache.token(key.namespace());
        let generations: Generations = codec
            .stamped
            .iter()
            .map(|ns| (*ns, cache.generation(ns), cache.query_generation(ns)))
            .collect();
        let started = Instant::now();
        let name = key.to_string();
        let nonce = l2.nonce();
        let deadline = started + l2.settings.lease_wait();
        let mut pause = Duration::from_millis(1);
        let mut unreadable = 0;
        let snapshot = loop {
            // One of this instance's invalidations is not in Redis yet: what Redis holds may
            // be what it deletes.
            if !caught_up(bus, l2, counters, Bus::settled).await {
                Counters::add(&counters.skipped, 1);
                break None;
            }
            match l2.read(&name, &codec.stamped, &nonce, counters).await {
                None => break None,
                Some(ReadReply::Hit(bytes)) => match codec.decode(&bytes) {
                    Some(decoded) => {
                        Counters::add(&counters.hits, 1);
                        return Ok(loaded_from(codec, decoded, &generations));
                    }
                    None => {
                        Counters::add(&counters.undecodable, 1);
                        tracing::debug!(target: "cached", %key, "shared entry unreadable: deleted");
                        unreadable += 1;
                        if unreadable >= UNREADABLE_TRIES {
                            break None;
                        }
                        l2.delete(&name, counters).await;
                    }
                },
                Some(ReadReply::Miss(snapshot)) if snapshot.leased => {
                    Counters::add(&counters.misses, 1);
                    break Some(snapshot);
                }
                // Another instance is loading it: wait for its store a moment.
                Some(ReadReply::Miss(_)) => {
                    if Instant::now() + pause > deadline {
                        Counters::add(&counters.misses, 1);
                        break None;
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        };
        let loaded = load().await?;
        if let Some(snapshot) = snapshot {
            let offer = Offer {
                engine,
                bus,
                l2,
                codec,
                key,
                name: &name,
                nonce: &nonce,
                token,
                started,
            };
            offer.store(&snapshot, &loaded).await;
        }
        Ok(loaded)
    }

    /// Whether this instance is caught up with Redis as `done` says, or gets there within the
    /// call timeout (usually a round trip: Redis taking this instance's invalidation, the
    /// listener applying Redis's). While the breaker is open nothing waits; a wait that times
    /// out counts against the breaker, so that while Redis is stuck the loads stop waiting.
    async fn caught_up(
        bus: &Bus,
        l2: &L2,
        counters: &SharedCounters,
        done: impl Fn(&Bus) -> bool,
    ) -> bool {
        if done(bus) {
            return true;
        }
        if !l2.usable() {
            return false;
        }
        let deadline = Instant::now() + l2.settings.catch_up_wait();
        if bus.wait_until(deadline, done).await {
            return true;
        }
        l2.slow(counters);
        false
    }

    /// A shared entry as a load's result: a view instance depends on what its load read
    /// (under the generations as of before the read), a row on itself.
    fn loaded_from(codec: &Codec, decoded: Decoded, generations: &Generations) -> Loaded {
        let data = EntryData::Row(decoded.value);
        if !codec.carries_reads {
            return Loaded::one(data);
        }
        let mut reads = ReadSet::default();
        for (meta, generation, query_generation) in generations {
            reads.entity(meta, || (*generation, *query_generation));
        }
        for key in decoded.reads {
            reads.key(key);
        }
        Loaded {
            data,
            rows: Vec::new(),
            reads: Some(reads),
        }
    }

    /// A loaded value, and what is needed to offer it to the shared cache.
    struct Offer<'a> {
        engine: &'a Engine,
        bus: &'a Bus,
        l2: &'a L2,
        codec: &'a Codec,
        key: &'a CacheKey,
        name: &'a str,
        nonce: &'a str,
        token: Token,
        started: Instant,
    }

    impl Offer<'_> {
        /// Stores the loaded value in Redis if this instance can prove it current as of the
        /// snapshot: every invalidation Redis had numbered then is applied here, and none
        /// applied here since the load began touched what it read (checked in that order:
        /// an invalidation applied between the two checks is then caught by the second).
        async fn store(&self, snapshot: &Snapshot, loaded: &Loaded) {
            let (cache, counters) = (&self.engine.cache, &self.engine.cache.counters.shared);
            let EntryData::Row(row) = &loaded.data else {
                return; // absence is not shared
            };
            let unchecked = self.l2.settings.unchecked;
            // Redis had numbered invalidations this instance has not applied yet. A snapshot
            // of another run (Redis restarted or failed over since this instance subscribed)
            // makes it subscribe again; its clear then refuses this load's store.
            if !unchecked && self.bus.covers(snapshot).is_none() {
                self.bus.resync();
            }
            let applied = |bus: &Bus| bus.covers(snapshot) == Some(true);
            if !unchecked && !caught_up(self.bus, self.l2, counters, applied).await {
                Counters::add(&counters.skipped, 1);
                return;
            }
            if self.started.elapsed() > STAMP_LIFE / 2 {
                return;
            }
            let current = cache.admits_key(self.key, &self.token)
                && loaded
                    .reads
                    .as_ref()
                    .is_none_or(|reads| cache.reads_current(reads, &self.token));
            if !current && !unchecked {
                return;
            }
            let unchecked_snapshot;
            let snapshot = match unchecked {
                true => {
                    unchecked_snapshot = Snapshot {
                        inv: u64::MAX,
                        ..snapshot.clone()
                    };
                    &unchecked_snapshot
                }
                false => snapshot,
            };
            let reads: &[CacheKey] = match (&loaded.reads, self.codec.carries_reads) {
                (Some(reads), true) => reads.keys(),
                _ => &[],
            };
            // Grouped counts have no wire form: an instance that read them is not shared.
            if !reads.iter().all(WireKey::travels) {
                return;
            }
            let compress_over = self.l2.settings.compress_threshold();
            let Some(bytes) = self.codec.encode(row, reads, compress_over) else {
                return;
            };
            let deps: Vec<String> = match self.codec.carries_reads {
                true => reads.iter().map(ToString::to_string).collect(),
                false => vec![cache.dependency(self.key.clone()).to_string()],
            };
            let ttl = self.l2.ttl_of(self.key.namespace());
            let stamped = &self.codec.stamped;
            let stored = self
                .l2
                .store(
                    self.name, self.nonce, snapshot, ttl, bytes, stamped, &deps, counters,
                )
                .await;
            match stored {
                Some(true) => Counters::add(&counters.stores, 1),
                Some(false) => Counters::add(&counters.stores_refused, 1),
                None => {}
            }
        }
    }
}
