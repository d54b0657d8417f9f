//! The shared cache: a second level in Redis, in front of the database, for the values that
//! are expensive to load (views computed from many queries; opt-in, rows).
//!
//! An instance that misses in process asks Redis before the database; a value it loads goes
//! to Redis for the other instances. Three scripts keep it exact (`scripts`):
//!
//! - a store is checked against a snapshot taken before the load: it is refused if any key
//!   the load read was invalidated after the snapshot, or if a clear or a whole-entity
//!   invalidation happened (the memcache lease rule, made exact for derived values); a lease
//!   lets one load per key store, the others wait for it a moment or go to the database;
//! - an invalidation deletes every shared entry that read one of its keys and publishes its
//!   broadcast message in the same script, so no instance hears of a commit while Redis
//!   still holds what it invalidated;
//! - an instance reads Redis only while none of its own invalidations is still on its way
//!   there, and stores only once it has applied every invalidation Redis had numbered at
//!   its snapshot (the number travels in each message): a value it computed from its own
//!   cache is then as fresh as the snapshot.
//!
//! Values are JSON, lz4-compressed past a threshold, behind a format byte (`codec`); an
//! entry this build cannot read is a miss. A circuit breaker (`breaker`) sends reads straight
//! to the database while Redis is slow or down.

mod breaker;
mod codec;
mod scripts;
mod watermark;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

pub(crate) use codec::{Codec, Decoded};
pub(crate) use scripts::{ReadReply, Snapshot, STAMP_LIFE};
pub(crate) use watermark::{Advance, Watermark};

use self::breaker::Breaker;
use self::scripts::Scripts;
use super::server::{Conn, Server};
use super::Bump;
use crate::cache::LocalCache;
use crate::entity::Namespace;
use crate::key::CacheKey;
use crate::stats::{Counters, SharedCounters};

/// The most keys an invalidation names in Redis; past it, it clears the shared cache instead.
const MAX_PURGED_KEYS: usize = 50_000;

/// Settings of the shared cache in Redis, given to
/// [`RedisBroadcast::shared_cache`](crate::RedisBroadcast::shared_cache). Which views and
/// entities use it is chosen on the context:
/// [`ContextBuilder::share_view`](crate::ContextBuilder::share_view) and
/// [`ContextBuilder::share_rows`](crate::ContextBuilder::share_rows).
#[derive(Debug, Clone)]
pub struct SharedCache {
    ttl: Duration,
    compress_over: usize,
    timeout: Duration,
    failures: u32,
    cooldown: Duration,
    lease: Duration,
    lease_wait: Duration,
    /// Test only: stores skip every check (see `__unchecked_stores`).
    pub(crate) unchecked: bool,
    /// The run is kept in a key, not read from the server: for a Redis user denied `INFO`
    /// (see `RedisBroadcast::info_denied`), and for the tests' controls (`__run_in_a_key`).
    pub(crate) run_in_a_key: bool,
}

impl Default for SharedCache {
    fn default() -> Self {
        SharedCache {
            ttl: Duration::from_secs(300),
            compress_over: 1024,
            timeout: Duration::from_millis(50),
            failures: 3,
            cooldown: Duration::from_secs(1),
            lease: Duration::from_secs(2),
            lease_wait: Duration::from_millis(20),
            unchecked: false,
            run_in_a_key: false,
        }
    }
}

impl SharedCache {
    /// The defaults: entries live 5 minutes in Redis (or their view's or entity's TTL, if
    /// shorter), values over 1 KiB are compressed, a call slower than 50 ms counts as failed,
    /// three failures in a row open the breaker for 1 s.
    pub fn new() -> Self {
        SharedCache::default()
    }

    /// How long an entry lives in Redis at most (default 5 minutes; a shorter TTL on the view
    /// or entity wins). Invalidations delete entries whatever this is.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// Values whose JSON is larger than this many bytes are stored lz4-compressed (default
    /// 1024).
    pub fn compress_over(mut self, bytes: usize) -> Self {
        self.compress_over = bytes;
        self
    }

    /// How long a read or store may take before it counts as failed and the database answers
    /// instead (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After `failures` failed or slow calls in a row, skip Redis for `cooldown`, then try one
    /// call (defaults 3 and 1 s). Its state is in
    /// [`SharedStats::breaker_open`](crate::SharedStats::breaker_open).
    pub fn breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.failures = failures.max(1);
        self.cooldown = cooldown;
        self
    }

    /// How long the one load of a key that may store it holds its lease (default 2 s), and
    /// how long the other instances missing the same key wait for that store before they read
    /// the database themselves (default 20 ms).
    pub fn lease(mut self, lease: Duration, wait: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self.lease_wait = wait;
        self
    }

    /// Test only: stores skip every check that keeps a value read before a commit out of
    /// Redis (this instance's and the script's), to prove the tests can fail without them.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __unchecked_stores(mut self) -> Self {
        self.unchecked = true;
        self
    }

    /// Test only: the stamps' run is a value kept in a key of the shared cache (as in an
    /// earlier version), not the serving Redis process's `run_id`, and invalidations are
    /// numbered without runs: a Redis restored from an older snapshot, or a replica that
    /// took over before it had the master's last writes, then vouches for entries whose
    /// deletion it lost. To prove the tests can fail without the run. (Also what a user
    /// denied `INFO` gets, with a warning: see [`SharedCache::key_run`].)
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __run_in_a_key(self) -> Self {
        self.key_run()
    }

    /// The run kept in a key: for a Redis user that may not run `INFO`.
    pub(crate) fn key_run(mut self) -> Self {
        self.run_in_a_key = true;
        self
    }

    /// Where the scripts take the run from (their `ARGV[2]`).
    fn run_source(&self) -> &'static str {
        match self.run_in_a_key {
            true => "k",
            false => "i",
        }
    }

    /// How long a load waits for this instance to catch up with Redis (its own invalidations
    /// taken, the others' applied) before it does without the shared cache: as long as one
    /// call may take.
    pub(crate) fn catch_up_wait(&self) -> Duration {
        self.timeout
    }

    /// How long the other instances wait for a leased load's store.
    pub(crate) fn lease_wait(&self) -> Duration {
        self.lease_wait
    }

    /// Past how many bytes of JSON a value is compressed.
    pub(crate) fn compress_threshold(&self) -> usize {
        self.compress_over
    }
}

/// What an invalidation does to the shared cache: the keys whose dependents go, the entities
/// bumped, or everything.
#[derive(Debug, Default, Clone)]
pub(crate) struct Purge {
    pub clear: bool,
    pub deps: Vec<String>,
    pub bumped: Vec<&'static str>,
}

impl Purge {
    /// Everything.
    pub fn clear() -> Purge {
        Purge {
            clear: true,
            ..Purge::default()
        }
    }

    /// What an invalidation applied here (`keys` changed, `bumps` applied) reaches: each key
    /// in every form a load may have recorded it under, and whole entities for text outside
    /// the plain class (as the local apply does).
    pub fn of(cache: &LocalCache, clear: bool, keys: &[CacheKey], bumps: &[Bump]) -> Purge {
        if clear || keys.len() > MAX_PURGED_KEYS {
            return Purge::clear();
        }
        let mut purge = Purge::default();
        for key in keys {
            purge.deps.push(key.to_string());
            if let Some(canonical) = cache.canonical(key) {
                purge.deps.push(canonical.to_string());
            }
            if key.has_wide_text() {
                purge.bump(key.namespace());
            }
        }
        for bump in bumps {
            purge.bump(bump.namespace());
        }
        purge.deps.sort_unstable();
        purge.deps.dedup();
        purge
    }

    fn bump(&mut self, namespace: &'static Namespace) {
        if !self.bumped.contains(&namespace.type_name) {
            self.bumped.push(namespace.type_name);
        }
    }
}

/// The run of the Redis serving the shared cache on `channel` (`None` if `source` is `o`
/// and this user may not run `INFO`), and the number of the last invalidation it numbered (0
/// if none). `source`: see `scripts::run_fn`.
pub(crate) async fn last_number(
    server: &Server,
    channel: &str,
    source: &str,
) -> redis::RedisResult<(Option<String>, u64)> {
    let mut conn = server.connect().await?;
    let prefix = prefix(channel);
    redis::cmd("EVAL")
        .arg(scripts::LAST)
        .arg(1)
        .arg(format!("{prefix}inv"))
        .arg(&prefix)
        .arg(source)
        .query_async(&mut conn)
        .await
}

/// What every key of the shared cache on `channel` starts with: the channel as a hash tag (one
/// cluster slot for all of them) and a colon.
fn prefix(channel: &str) -> String {
    format!("{{{channel}}}:")
}

/// One context's connection to the shared cache.
pub(crate) struct L2 {
    pub settings: SharedCache,
    /// `{<channel>}:`, before every key.
    prefix: String,
    /// The key each script names (`{<channel>}:inv`), so that a cluster runs it on the slot's
    /// master: every other key it touches is in the same slot.
    routing: String,
    channel: String,
    server: Server,
    connection: Mutex<Option<Conn>>,
    scripts: Scripts,
    breaker: Breaker,
    /// Codecs by namespace slot (`None`: not shared).
    codecs: Box<[Option<Codec>]>,
    /// Makes lease nonces unique.
    nonces: AtomicU64,
    instance: u64,
}

impl L2 {
    pub fn new(
        settings: SharedCache,
        server: Server,
        channel: &str,
        codecs: Vec<(usize, Codec)>,
        instance: u64,
    ) -> L2 {
        let mut by_slot: Vec<Option<Codec>> = vec![None; crate::registry::slot_count()];
        for (slot, codec) in codecs {
            if let Some(place) = by_slot.get_mut(slot) {
                *place = Some(codec);
            }
        }
        L2 {
            breaker: Breaker::new(settings.failures, settings.cooldown),
            settings,
            prefix: prefix(channel),
            routing: format!("{}inv", prefix(channel)),
            channel: channel.to_owned(),
            server,
            connection: Mutex::new(None),
            scripts: Scripts::new(),
            codecs: by_slot.into(),
            nonces: AtomicU64::new(0),
            instance,
        }
    }

    /// The codec of `namespace`, if it is shared.
    #[inline]
    pub fn codec(&self, namespace: &Namespace) -> Option<&Codec> {
        self.codecs
            .get(crate::registry::slot(namespace))
            .and_then(Option::as_ref)
    }

    /// A lease nonce no other load uses.
    pub fn nonce(&self) -> String {
        let n = self.nonces.fetch_add(1, Relaxed);
        format!("{:x}.{n:x}", self.instance)
    }

    /// How long an entry of `namespace` lives in Redis.
    pub fn ttl_of(&self, namespace: &Namespace) -> Duration {
        namespace
            .ttl
            .map_or(self.settings.ttl, |ttl| ttl.min(self.settings.ttl))
    }

    /// The invalidation script's call: `message` published (if not empty) once what `purge`
    /// names is gone.
    pub fn invalidate(&self, message: &[u8], purge: &Purge) -> redis::Cmd {
        let mut cmd = self.script(&self.scripts.invalidate);
        cmd.arg(&self.channel)
            .arg(message)
            .arg(u8::from(purge.clear))
            .arg(purge.deps.len())
            .arg(&purge.deps)
            .arg(&purge.bumped);
        cmd
    }

    /// `EVALSHA sha 1 <routing key> <prefix> <run source>`: how every script of ours starts
    /// (the routing key puts the call on the slot of this channel's keys in a cluster).
    fn script(&self, sha: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(sha)
            .arg(1)
            .arg(&self.routing)
            .arg(&self.prefix)
            .arg(self.settings.run_source());
        cmd
    }

    /// Makes sure the server knows the scripts (after a `NOSCRIPT`: it restarted).
    pub async fn load_scripts(conn: &mut Conn) -> redis::RedisResult<()> {
        Scripts::load(conn).await
    }

    /// Whether `err` says the server does not know a script.
    pub fn is_noscript(err: &redis::RedisError) -> bool {
        scripts::is_noscript(err)
    }

    /// The run and the number of the last invalidation Redis numbered (bypassing the
    /// breaker: the listener needs it to resubscribe).
    pub async fn last_number(&self) -> redis::RedisResult<(String, u64)> {
        let (run, n) = last_number(&self.server, &self.channel, self.settings.run_source()).await?;
        Ok((run.unwrap_or_default(), n))
    }

    /// `key` in process missed: the entry if Redis has it and it is current, else a snapshot
    /// (and maybe the lease). `None`: the breaker is open, or the call failed.
    pub async fn read(
        &self,
        key: &str,
        stamped: &[&'static Namespace],
        nonce: &str,
        counters: &SharedCounters,
    ) -> Option<ReadReply> {
        let mut cmd = self.script(&self.scripts.read);
        cmd.arg(key)
            .arg(self.settings.lease.as_millis() as u64)
            .arg(nonce);
        for namespace in stamped {
            cmd.arg(namespace.type_name);
        }
        let value = self.call(&cmd, counters).await?;
        let reply = ReadReply::parse(value);
        if reply.is_none() {
            Counters::add(&counters.errors, 1);
        }
        reply
    }

    /// Stores an entry loaded under `snapshot`; `Some(true)` if Redis took it, `Some(false)`
    /// if it refused (something the load read changed), `None` if not attempted or failed.
    #[allow(clippy::too_many_arguments)]
    pub async fn store(
        &self,
        key: &str,
        nonce: &str,
        snapshot: &Snapshot,
        ttl: Duration,
        bytes: Vec<u8>,
        stamped: &[&'static Namespace],
        deps: &[String],
        counters: &SharedCounters,
    ) -> Option<bool> {
        let mut cmd = self.script(&self.scripts.fill);
        cmd.arg(key)
            .arg(nonce)
            .arg(snapshot.inv)
            .arg(&snapshot.stamp)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(bytes)
            .arg(stamped.len());
        for namespace in stamped {
            cmd.arg(namespace.type_name);
        }
        cmd.arg(deps);
        match self.call(&cmd, counters).await? {
            redis::Value::Int(1) => Some(true),
            redis::Value::Int(-1) => Some(false),
            _ => None,
        }
    }

    /// Deletes an entry this build cannot read.
    pub async fn delete(&self, key: &str, counters: &SharedCounters) {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(format!("{}v:{key}", self.prefix));
        let _ = self.call(&cmd, counters).await;
    }

    /// Runs `cmd` through the breaker, within the timeout, loading the scripts if the server
    /// lost them; `None` when the breaker is open or the call failed.
    async fn call(&self, cmd: &redis::Cmd, counters: &SharedCounters) -> Option<redis::Value> {
        if !self.breaker.allows() {
            return None;
        }
        let attempt = tokio::time::timeout(self.settings.timeout, async {
            let mut conn = self.connection().await?;
            match cmd.query_async::<redis::Value>(&mut conn).await {
                Err(err) if scripts::is_noscript(&err) => {
                    Scripts::load(&mut conn).await?;
                    cmd.query_async::<redis::Value>(&mut conn).await
                }
                other => other,
            }
        })
        .await;
        match attempt {
            Ok(Ok(value)) => {
                self.breaker.success();
                counters.breaker_open.store(false, Relaxed);
                Some(value)
            }
            Ok(Err(_)) | Err(_) => {
                // A connection that failed or hung is not trusted again.
                *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Counters::add(&counters.errors, 1);
                self.slow(counters);
                None
            }
        }
    }

    /// Whether the breaker lets a load use Redis now (closed, or its trial is due).
    pub fn usable(&self) -> bool {
        self.breaker.allows()
    }

    /// Redis did not answer in time, or this instance fell behind it (a call timed out; Redis
    /// did not take this instance's invalidation, or the listener did not apply Redis's,
    /// within the timeout): one failure for the breaker, which opens after enough in a row.
    pub fn slow(&self, counters: &SharedCounters) {
        let opened = self.breaker.opened.load(Relaxed);
        self.breaker.failure();
        if self.breaker.opened.load(Relaxed) != opened {
            Counters::add(&counters.breaker_opens, 1);
            counters.breaker_open.store(true, Relaxed);
        }
    }

    async fn connection(&self) -> redis::RedisResult<Conn> {
        let held = self
            .connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(conn) = held {
            return Ok(conn);
        }
        let conn = self.server.connect().await?;
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }
}
