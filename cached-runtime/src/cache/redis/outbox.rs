//! The outbox: each commit's invalidation written to the database in the same transaction as
//! its data, so that a process that dies between its commit and its publish loses nothing.
//!
//! The writer inserts one row (`cached_outbox`: an id, when it was written, the message) before
//! `COMMIT`, and deletes it once Redis has taken the message. Every instance with an outbox
//! also relays: it looks at the table every [`Outbox::poll`], and a row it has seen for
//! [`Outbox::relay_after`] (its writer died, or lost Redis) it applies here, publishes as its
//! own message, and deletes. Ages are measured on the relaying instance's own clock, from when
//! it first saw the row (a row is visible only once committed), so clocks that disagree
//! between machines cannot delay a relay. Relaying a row twice is harmless (dropping keys
//! twice is); relaying one early only costs a drop. An instance whose relay cannot read the
//! outbox caches nothing until it can: it would not hear of a dead writer's commits (counted
//! in `broadcast_outages`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Outgoing, Receiver, Remote, Shared};
use crate::cache::local::Link;
use crate::cache::wire::Message;
use crate::cache::Bump;
use crate::entity::{EntityMeta, EntityState, Namespace, OrderMeta};
use crate::error::{Error, Result};
use crate::key::{CacheKey, Predicate};
use crate::stats::Counters;
use crate::store::{Ops, RawStore, Store};
use crate::value::{KeyValue, Value, ValueKind};

/// The outbox table (a collection on MongoDB).
pub const TABLE: &str = "cached_outbox";

/// The most rows one relay pass reads.
const RELAY_BATCH: u32 = 256;

/// The outbox's rows as the stores see them: an id, when it was written (milliseconds since
/// the epoch, on the writer's clock: only for the order of the relay) and the message.
static META: EntityMeta = EntityMeta {
    namespace: Namespace {
        name: TABLE,
        type_name: "cached_outbox",
        ttl: None,
        negative_ttl: None,
        stale_while_revalidate: None,
        __state: EntityState::new(),
    },
    table: TABLE,
    id_column: "id",
    columns: &["id", "created_ms", "payload"],
    kinds: &[ValueKind::Text, ValueKind::Int, ValueKind::Text],
    indexes: &[],
    composites: &[],
    orders: &[],
    relations: &[],
    counters: &[],
    version: None,
};

/// Oldest first.
static OLDEST_FIRST: OrderMeta = OrderMeta {
    by: None,
    column: "created_ms",
    descending: false,
};

/// An outbox for a [`RedisBroadcast`](super::RedisBroadcast): every commit's invalidation is
/// written to the database in the commit's own transaction and relayed to Redis by whichever
/// instance is alive, so that a process killed between its database commit and its publish
/// still has its keys dropped everywhere, precisely and within [`Outbox::relay_after`] plus
/// two [`Outbox::poll`]s (about 1.5 s by default), without any instance clearing its cache.
///
/// ```no_run
/// # async fn demo(pool: sqlx::SqlitePool) -> cached_runtime::Result<()> {
/// use cached_runtime::{Context, Outbox, RedisBroadcast};
/// let bus = RedisBroadcast::connect("redis://127.0.0.1:6379", "studio:invalidations")
///     .await?
///     .outbox(Outbox::new());
/// let ctx = Context::builder(pool).broadcast(bus).build();
/// # Ok(()) }
/// ```
///
/// The table is `cached_outbox` (a collection on MongoDB), created when the first transaction
/// begins if it does not exist: `id` (text, the primary key), `created_ms` (a 64-bit integer),
/// `payload` (text). Create it in a migration instead where the application's database user
/// may not run DDL. Each commit that changes cached data costs one more `INSERT` in its
/// transaction, and a `DELETE` (batched, after the commit) once Redis has the message.
#[derive(Debug, Clone)]
pub struct Outbox {
    relay_after: Duration,
    poll: Duration,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            relay_after: Duration::from_secs(1),
            poll: Duration::from_millis(250),
        }
    }
}

impl Outbox {
    /// An outbox with the default timings (relay after 1 s, look every 250 ms).
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a row must have been seen before this instance relays it (default 1 s). Its
    /// writer deletes it once Redis has its message, normally within a millisecond; a shorter
    /// time relays sooner after a crash and more often needlessly when Redis is slow.
    pub fn relay_after(mut self, after: Duration) -> Self {
        self.relay_after = after;
        self
    }

    /// How often this instance looks at the outbox (default 250 ms): one indexed read of the
    /// table's oldest rows each time.
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }
}

/// The writer's side of an outbox, kept by the bus.
pub(super) struct Writer {
    settings: Outbox,
    store: tokio::sync::OnceCell<Store>,
    /// Whether the table exists (made once, before the first transaction).
    ready: tokio::sync::OnceCell<()>,
    next: AtomicU64,
    /// Rows whose message Redis has taken, for the relay task to delete.
    done: mpsc::UnboundedSender<String>,
}

/// What the relay task starts with.
pub(super) struct Relay {
    done: mpsc::UnboundedReceiver<String>,
}

impl Writer {
    pub fn new(settings: Outbox) -> (Arc<Writer>, Relay) {
        let (done, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            settings,
            store: tokio::sync::OnceCell::new(),
            ready: tokio::sync::OnceCell::new(),
            next: AtomicU64::new(1),
            done,
        };
        (Arc::new(writer), Relay { done: rx })
    }

    /// The store the outbox lives in (the context's).
    pub fn attach(&self, store: Store) {
        let _ = self.store.set(store);
    }

    /// Makes the table if it does not exist: before a transaction begins (DDL inside one would
    /// wait for the transaction's own locks on SQLite).
    pub async fn prepare(&self) -> Result<()> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        self.ready
            .get_or_try_init(|| create_table(store))
            .await
            .map(|_| ())
    }

    /// Writes the message for a commit's keys and bumps, inside its transaction; returns the
    /// row's id.
    pub async fn record(
        &self,
        shared: &Shared,
        ops: &mut (dyn Ops + '_),
        keys: &[CacheKey],
        bumps: &[Bump],
    ) -> Result<String> {
        let mut message = Message::new(shared.id, false, keys, bumps);
        message.graph = crate::registry::fingerprint();
        let (payload, _) = message.encode_within(shared.max_message_bytes);
        let payload = String::from_utf8(payload).expect("a message is JSON text");
        let id = format!("{:016x}-{:x}", shared.id, self.next.fetch_add(1, Relaxed));
        let row = vec![
            Value::Text(id.clone()),
            Value::Int(epoch_ms()),
            Value::Text(payload),
        ];
        ops.insert(&META, vec![row]).await?;
        Ok(id)
    }

    /// Redis has taken the message of this row: it can go.
    pub fn taken(&self, id: String) {
        let _ = self.done.send(id);
    }
}

/// Relays and deletes until the context is dropped.
pub(super) async fn relay(
    writer: Arc<Writer>,
    mut relay: Relay,
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    receiver: Weak<dyn Receiver>,
) {
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let mut ticks = tokio::time::interval(writer.settings.poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut done = Vec::new();
    let mut unreadable = false;
    loop {
        tokio::select! {
            n = relay.done.recv_many(&mut done, 1024) => {
                if n == 0 {
                    return; // the context is gone
                }
                let Some(store) = writer.store.get() else { continue };
                let ids: Vec<KeyValue> = done.drain(..).map(|id| KeyValue::Text(id.into())).collect();
                // A row left behind is relayed again later: harmless.
                let _ = store.ops().delete(&META, &ids).await;
            }
            _ = ticks.tick() => {
                let Some(store) = writer.store.get() else { continue };
                let read = match writer.prepare().await {
                    Ok(()) => pass(&writer, store, &shared, &outgoing, &receiver, &mut seen).await,
                    Err(err) => Err(err),
                };
                let Some(here) = receiver.upgrade() else { return };
                // An outbox it cannot read is a commit it may not hear of (the silence of a
                // sender with an outbox clears nothing here): cache nothing until it can.
                match (read.is_ok(), unreadable) {
                    (false, false) => {
                        unreadable = true;
                        here.cache().set_link(Link::Outbox, false);
                        Counters::add(&here.cache().counters.broadcast_outages, 1);
                    }
                    (true, true) => {
                        unreadable = false;
                        here.cache().set_link(Link::Outbox, true);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One look at the outbox: relays the rows seen for long enough, and deletes them once Redis
/// has their messages.
async fn pass(
    writer: &Writer,
    store: &Store,
    shared: &Arc<Shared>,
    outgoing: &mpsc::UnboundedSender<Outgoing>,
    receiver: &Weak<dyn Receiver>,
    seen: &mut HashMap<String, Instant>,
) -> Result<()> {
    let rows = store
        .ops()
        .fetch_page(&META, &Predicate::All, &OLDEST_FIRST, None, RELAY_BATCH)
        .await?;
    let now = Instant::now();
    let mut present = HashMap::with_capacity(rows.len());
    let mut due = Vec::new();
    for row in rows {
        let mut columns = row.into_iter();
        let (Some(Value::Text(id)), Some(_), Some(payload)) =
            (columns.next(), columns.next(), columns.next())
        else {
            continue;
        };
        let first = *seen.get(&id).unwrap_or(&now);
        present.insert(id.clone(), first);
        if now.duration_since(first) >= writer.settings.relay_after {
            due.push((id, payload));
        }
    }
    *seen = present;
    if due.is_empty() {
        return Ok(());
    }
    let Some(here) = receiver.upgrade() else {
        return Ok(());
    };
    let mut acks = Vec::with_capacity(due.len());
    for (_, payload) in &due {
        let message = match payload {
            Value::Text(text) => Message::decode(text.as_bytes()).ok(),
            _ => None,
        };
        // Unreadable (a newer format, a damaged row): dropping everything covers it.
        let message = message.unwrap_or_else(|| Message::new(shared.id, true, &[], &[]));
        let (remote, _) = message.resolve_here();
        let cache = here.cache();
        let hold = shared.hold();
        if remote.clear {
            cache.clear();
        }
        // Here, as another instance's invalidation; there, as this one's message.
        let forward = Message::new(shared.id, remote.clear, &remote.keys, &remote.bumps);
        here.apply_remote(remote.keys, remote.bumps, Remote::Plain);
        let Some(acked) = shared.enqueue(outgoing, cache, forward, hold) else {
            return Ok(());
        };
        acks.push(acked);
        Counters::add(&cache.counters.outbox_relayed, 1);
    }
    drop(here);
    for acked in acks {
        // Redis did not take it in time: the rows stay, and go again on a later pass.
        if tokio::time::timeout(shared.silence, acked).await.is_err() {
            return Ok(());
        }
    }
    let ids: Vec<KeyValue> = due
        .into_iter()
        .map(|(id, _)| KeyValue::Text(id.into()))
        .collect();
    store.ops().delete(&META, &ids).await?;
    Ok(())
}

/// Milliseconds since the Unix epoch, on this machine's clock.
fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Creates the outbox table (or collection) if it does not exist.
async fn create_table(store: &Store) -> Result<()> {
    if ddl(store).await.is_ok() {
        return Ok(());
    }
    // Two instances creating it at once: PostgreSQL's `IF NOT EXISTS` can still fail with a
    // duplicate; a second attempt finds it made.
    tokio::time::sleep(Duration::from_millis(50)).await;
    ddl(store).await.map_err(|err| Error::Outbox {
        message: format!(
            "the table `{TABLE}` is missing and could not be created ({err}); create it in a \
             migration: id TEXT PRIMARY KEY (VARCHAR(64) on MySQL), created_ms BIGINT NOT \
             NULL, payload TEXT NOT NULL (LONGTEXT on MySQL), and an index on created_ms"
        ),
    })
}

/// The statements that make the table (or collection) if it is missing; the driver's words
/// if they fail.
async fn ddl(store: &Store) -> std::result::Result<(), String> {
    match store.raw_unchecked() {
        #[cfg(feature = "sqlite")]
        RawStore::Sqlite(pool) => sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cached_outbox (id TEXT PRIMARY KEY, \
             created_ms INTEGER NOT NULL, payload TEXT NOT NULL); \
             CREATE INDEX IF NOT EXISTS cached_outbox_created ON cached_outbox (created_ms)",
        )
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string()),
        #[cfg(feature = "postgres")]
        RawStore::Postgres(pool) => sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cached_outbox (id TEXT PRIMARY KEY, \
             created_ms BIGINT NOT NULL, payload TEXT NOT NULL); \
             CREATE INDEX IF NOT EXISTS cached_outbox_created ON cached_outbox (created_ms)",
        )
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string()),
        #[cfg(feature = "mysql")]
        RawStore::MySql(pool) => sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cached_outbox (id VARCHAR(64) NOT NULL PRIMARY KEY, \
             created_ms BIGINT NOT NULL, payload LONGTEXT NOT NULL, \
             KEY cached_outbox_created (created_ms))",
        )
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string()),
        #[cfg(feature = "mongo")]
        RawStore::Mongo(db) => create_collection(db).await.map_err(|e| e.to_string()),
    }
}

/// Creates the outbox collection if it does not exist (a transaction cannot create one on
/// every server).
#[cfg(feature = "mongo")]
async fn create_collection(db: &mongodb::Database) -> mongodb::error::Result<()> {
    let names = db.list_collection_names().await?;
    if names.iter().any(|n| n == TABLE) {
        return Ok(());
    }
    match db.create_collection(TABLE).await {
        Ok(()) => Ok(()),
        // NamespaceExists: another instance made it meanwhile.
        Err(err) if matches!(*err.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 48) => {
            Ok(())
        }
        Err(err) => Err(err),
    }
}
