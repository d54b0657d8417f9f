//! The concurrent torture harness: writers and readers over a small key space. Every row
//! carries a version (`word_count`, only ever incremented). A writer publishes the version it
//! committed after `commit()` returns; a reader notes the published versions before it starts
//! reading, and any read that returns an older version is a stale read. Reads are row gets,
//! queries, and a cached view spanning every row; an evictor keeps readers missing.
//!
//! Every [`SLOW_EVERY`]-th load pauses for [`SLOW_FILL`] between its database read and its fill:
//! a few slow readers among fast ones. Without them, whether a commit lands inside that window
//! is left to the scheduler, and on a server with few commits per second (the MongoDB test
//! server manages ~50) a run with the guard off could find nothing by luck and prove nothing.
//!
//! Used by `tests/torture.rs` (one instance, every backend), `tests/broadcast.rs` (writers
//! on one instance, readers on another that hears of the writes over Redis) and
//! `tests/feed.rs` (writers on a context the readers' context knows nothing of, as another
//! program would be: the readers hear of the writes through the database's change feed).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_runtime::{Context, ContextBuilder, LoadView};

use super::domain::*;
use super::scene;

const KEYS: i64 = 4;
/// A run lasts at least this long, and then until it has done [`MIN_WRITES`] committed writes
/// and [`MIN_READS`] row reads (a slow server needs longer), but never longer than [`MAX_RUN`].
const RUN_FOR: Duration = Duration::from_secs(3);
const MAX_RUN: Duration = Duration::from_secs(20);
const MIN_WRITES: u64 = 100;
const MIN_READS: u64 = 1000;
/// Which loads are slow: one in this many.
const SLOW_EVERY: u64 = 8;
/// The pause a slow load takes between its database read and its fill.
const SLOW_FILL: Duration = Duration::from_millis(5);

pub struct Shared {
    committed: Vec<AtomicI64>,
    stop: AtomicBool,
    reads: AtomicU64,
    query_reads: AtomicU64,
    view_reads: AtomicU64,
    writes: AtomicU64,
    evictions: AtomicU64,
    violations: AtomicU64,
    /// Entries the consistency auditor compared with the database, and found different.
    audited: AtomicU64,
    audit_mismatches: AtomicU64,
    first_mismatch: std::sync::Mutex<Option<String>>,
}

/// What a torture run found: stale reads (by the readers' own check) and the auditor's
/// figures, with a summary.
pub struct Outcome {
    pub violations: u64,
    pub audited: u64,
    pub audit_mismatches: u64,
    pub summary: String,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn id(&mut self) -> i64 {
        (self.next() % KEYS as u64) as i64 + 1
    }
}

/// The settings of the instance readers read through: slow fills, and the guard on or off.
pub fn configure(protect: bool) -> impl FnOnce(ContextBuilder) -> ContextBuilder {
    move |b| {
        let b = b.__fill_delay_every(SLOW_EVERY, SLOW_FILL);
        if protect {
            b
        } else {
            b.__disable_stale_fill_protection()
        }
    }
}

/// Where writers commit and readers read: one instance, or two sharing a Redis broadcast.
#[derive(Clone)]
pub struct Instances {
    pub writes: Context,
    pub reads: Context,
    /// Two instances: before it notes the committed versions, a reader waits until its
    /// instance has received every broadcast the writers' instance had sent by then.
    remote: bool,
    sent0: u64,
    received0: u64,
    /// Writers outside the readers' context: the versions the readers' change feed has
    /// applied, published by a task that notes the committed versions and then waits for
    /// `catch_up` (or, without a feed, for nothing: the control that finds stale reads).
    outside: Option<Arc<std::sync::Mutex<Vec<i64>>>>,
    /// Whether an evictor drops rows from the readers' cache (by invalidating them).
    evict: bool,
    /// More instances that readers read through (half of them, in turn), each with the count
    /// of broadcasts it had received at the start.
    more_reads: Vec<(Context, u64)>,
}

impl Instances {
    /// Writers and readers on one context.
    pub fn one(ctx: Context) -> Self {
        Instances {
            writes: ctx.clone(),
            reads: ctx,
            remote: false,
            sent0: 0,
            received0: 0,
            outside: None,
            evict: true,
            more_reads: Vec::new(),
        }
    }

    /// Writers on `writes`, which the readers' context `reads` hears of only through its
    /// change feed (if it has one).
    pub fn outside(writes: Context, reads: Context) -> Self {
        Instances {
            writes,
            reads,
            remote: false,
            sent0: 0,
            received0: 0,
            outside: Some(Arc::default()),
            evict: true,
            more_reads: Vec::new(),
        }
    }

    /// Writers on `writes`, readers on `reads`, which hears of the writes over Redis.
    pub fn two(writes: Context, reads: Context) -> Self {
        let (sent0, received0) = (
            writes.stats().broadcasts_sent,
            reads.stats().broadcasts_received,
        );
        Instances {
            writes,
            reads,
            remote: true,
            sent0,
            received0,
            outside: None,
            evict: true,
            more_reads: Vec::new(),
        }
    }

    /// No evictor: the readers' instance keeps nothing in process anyway (a cache that
    /// misses every time, in front of a shared cache that an evictor's invalidations would
    /// empty).
    pub fn without_evictor(mut self) -> Self {
        self.evict = false;
        self
    }

    /// Another instance readers read through (over Redis, as `reads`).
    pub fn and_reads(mut self, ctx: Context) -> Self {
        let received0 = ctx.stats().broadcasts_received;
        self.more_reads.push((ctx, received0));
        self
    }

    /// Across instances: waits until the broadcast is quiet (nothing more sent by the writers'
    /// instance, nothing more received by the readers' ones, for 200 ms), then counts from
    /// there. A message sent before the counts were first taken but received after them (the
    /// seeding's clear, which nobody waits for) would otherwise let readers through one
    /// message early, and report stale reads that are not.
    async fn settle(&mut self) {
        if !self.remote {
            return;
        }
        let counts = |inst: &Instances| -> Vec<u64> {
            std::iter::once(inst.writes.stats().broadcasts_sent)
                .chain(std::iter::once(inst.reads.stats().broadcasts_received))
                .chain(
                    inst.more_reads
                        .iter()
                        .map(|(ctx, _)| ctx.stats().broadcasts_received),
                )
                .collect()
        };
        let mut last = counts(self);
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = counts(self);
            if now == last {
                break;
            }
            last = now;
        }
        self.sent0 = last[0];
        self.received0 = last[1];
        for ((_, received0), n) in self.more_reads.iter_mut().zip(&last[2..]) {
            *received0 = *n;
        }
    }

    /// The instance reader `n` reads through, and its starting count of broadcasts.
    fn reads_for(&self, n: u64) -> (&Context, u64) {
        match (n as usize) % (self.more_reads.len() + 1) {
            0 => (&self.reads, self.received0),
            i => {
                let (ctx, received0) = &self.more_reads[i - 1];
                (ctx, *received0)
            }
        }
    }

    /// The committed versions a read through `reads` (which received `received0` broadcasts
    /// before the run) starting now must see.
    async fn floors(&self, shared: &Shared, reads: &Context, received0: u64) -> Vec<i64> {
        if let Some(applied) = &self.outside {
            return applied.lock().unwrap().clone();
        }
        let floors = shared.committed.iter().map(|c| c.load(SeqCst)).collect();
        if self.remote {
            // A version is published after its commit's broadcast was counted as sent.
            let sent = self.writes.stats().broadcasts_sent - self.sent0;
            while reads.stats().broadcasts_received - received0 < sent {
                tokio::task::yield_now().await;
            }
        }
        floors
    }
}

async fn setup(ctx: &Context) -> Arc<Shared> {
    Scene::repo(ctx)
        .insert(&scene(4, 2, "draft", 0))
        .await
        .unwrap();
    let mut committed = Vec::new();
    for id in 1..=KEYS {
        let row = Scene::repo(ctx).get(id).await.unwrap().unwrap();
        committed.push(AtomicI64::new(row.word_count));
    }
    Arc::new(Shared {
        committed,
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        query_reads: AtomicU64::new(0),
        view_reads: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        evictions: AtomicU64::new(0),
        violations: AtomicU64::new(0),
        audited: AtomicU64::new(0),
        audit_mismatches: AtomicU64::new(0),
        first_mismatch: std::sync::Mutex::new(None),
    })
}

/// One write transaction: bump the version, sometimes move the scene between chapters.
async fn write_once(ctx: &Context, id: i64, move_it: bool) -> cached_runtime::Result<i64> {
    let mut tx = ctx.begin().await?;
    let row = Scene::repo(&mut tx).increment_word_count(id, 1).await?;
    if move_it {
        // An indexed write that drops query entries.
        let chapter = if row.chapter_id == 1 { 2 } else { 1 };
        Scene::repo(&mut tx)
            .update(id, SceneUpdate::default().chapter_id(chapter))
            .await?;
    }
    tx.commit().await?;
    Ok(row.word_count)
}

async fn writer(ctx: Context, shared: Arc<Shared>, seed: u64) {
    let mut rng = Rng(seed);
    while !shared.stop.load(SeqCst) {
        let id = rng.id();
        let move_it = rng.next() % 4 == 0;
        match write_once(&ctx, id, move_it).await {
            Ok(version) => {
                shared.committed[(id - 1) as usize].fetch_max(version, SeqCst);
                shared.writes.fetch_add(1, SeqCst);
            }
            // A deadlock or serialization failure rolled the transaction back: try again.
            Err(err) if err.is_retryable() => {}
            Err(err) => panic!("write failed: {err}"),
        }
    }
}

fn check(shared: &Shared, floor: i64, seen: i64) {
    if seen < floor {
        shared.violations.fetch_add(1, SeqCst);
    }
}

async fn reader(inst: Instances, shared: Arc<Shared>, seed: u64, n: u64) {
    let (ctx, received0) = inst.reads_for(n);
    let mut rng = Rng(seed);
    while !shared.stop.load(SeqCst) {
        let dice = rng.next() % 10;
        // Each version a read returns must be at least the version committed before it started.
        let floors = inst.floors(&shared, ctx, received0).await;
        if dice == 0 {
            // A view spanning every scene of story 1.
            let outline = StoryOutline::get(ctx, 1).await.unwrap().unwrap();
            for chapter in &outline.chapters {
                for (id, _, words) in &chapter.scenes {
                    if *id <= KEYS {
                        check(&shared, floors[(*id - 1) as usize], *words);
                    }
                }
            }
            shared.view_reads.fetch_add(1, SeqCst);
        } else if dice <= 2 {
            for chapter in [1, 2] {
                for row in Scene::repo(ctx).find_by_chapter_id(chapter).await.unwrap() {
                    if row.id <= KEYS {
                        check(&shared, floors[(row.id - 1) as usize], row.word_count);
                    }
                }
            }
            shared.query_reads.fetch_add(1, SeqCst);
        } else {
            let id = rng.id();
            let row = Scene::repo(ctx).get(id).await.unwrap().unwrap();
            check(&shared, floors[(id - 1) as usize], row.word_count);
            shared.reads.fetch_add(1, SeqCst);
        }
        tokio::task::yield_now().await;
    }
}

/// Drops random rows from the cache, as capacity eviction would, so that readers keep missing.
async fn evictor(ctx: Context, shared: Arc<Shared>, seed: u64, every: Duration) {
    let mut rng = Rng(seed);
    while !shared.stop.load(SeqCst) {
        ctx.invalidate::<Scene>(rng.id());
        shared.evictions.fetch_add(1, SeqCst);
        tokio::time::sleep(every).await;
    }
}

/// Audits samples of the readers' cache against the database, again and again
/// ([`Context::audit`]): with the guard on it must find nothing, however busy the writers.
async fn auditor(ctx: Context, shared: Arc<Shared>) {
    while !shared.stop.load(SeqCst) {
        let report = ctx
            .audit(64)
            .await
            .expect("the database answers the auditor");
        shared.audited.fetch_add(report.checked as u64, SeqCst);
        shared
            .audit_mismatches
            .fetch_add(report.mismatches.len() as u64, SeqCst);
        if let Some(first) = report.mismatches.first() {
            let mut slot = shared.first_mismatch.lock().unwrap();
            slot.get_or_insert_with(|| {
                format!(
                    "{}: cached {}, database {}",
                    first.key, first.cached, first.database
                )
            });
        }
    }
}

/// Publishes, again and again, the versions the readers' change feed has applied: the
/// versions committed before a `catch_up` that returned. Without a feed, the versions
/// committed now (a reader trusting them finds stale rows: the control).
async fn barrier(ctx: Context, shared: Arc<Shared>, applied: Arc<std::sync::Mutex<Vec<i64>>>) {
    while !shared.stop.load(SeqCst) {
        let noted: Vec<i64> = shared.committed.iter().map(|c| c.load(SeqCst)).collect();
        if ctx.catch_up().await.is_err() {
            tokio::task::yield_now().await;
        }
        *applied.lock().unwrap() = noted;
    }
}

/// Runs writers on `inst.writes` and readers and an evictor on `inst.reads` (built with
/// [`configure`]`(protect)`), and returns the number of stale reads with a summary.
pub async fn run(label: &str, protect: bool, inst: Instances) -> (u64, String) {
    let outcome = run_audited(label, protect, inst, false).await;
    (outcome.violations, outcome.summary)
}

/// [`run`], with the consistency auditor sampling the readers' cache throughout when `audit`
/// (one instance only: across instances or behind a feed, an invalidation's lag is not
/// staleness the auditor should count).
pub async fn run_audited(label: &str, protect: bool, mut inst: Instances, audit: bool) -> Outcome {
    let shared = setup(&inst.writes).await;
    inst.settle().await;
    if let Some(applied) = &inst.outside {
        // Before any reader starts: the versions every read must see at least.
        *applied.lock().unwrap() = shared.committed.iter().map(|c| c.load(SeqCst)).collect();
    }
    let mut tasks = Vec::new();
    for i in 0..3 {
        let ctx = inst.writes.clone();
        tasks.push(tokio::spawn(writer(ctx, shared.clone(), 0x9E37 + i)));
    }
    for i in 0..4 {
        tasks.push(tokio::spawn(reader(
            inst.clone(),
            shared.clone(),
            0x51ED + i,
            i,
        )));
    }
    let ctx = inst.reads.clone();
    // Writers outside: rows stay cached longer between evictions, so that a control without
    // the feed has stale rows to find even on a server with few commits a second.
    let every = match inst.outside {
        Some(_) => Duration::from_millis(2),
        None => Duration::from_micros(200),
    };
    if inst.evict {
        tasks.push(tokio::spawn(evictor(
            ctx.clone(),
            shared.clone(),
            0xABCD,
            every,
        )));
    }
    if let Some(applied) = inst.outside.clone() {
        tasks.push(tokio::spawn(barrier(ctx.clone(), shared.clone(), applied)));
    }
    if audit {
        tasks.push(tokio::spawn(auditor(ctx.clone(), shared.clone())));
    }
    let started = Instant::now();
    tokio::time::sleep(RUN_FOR).await;
    while started.elapsed() < MAX_RUN
        && (shared.writes.load(SeqCst) < MIN_WRITES || shared.reads.load(SeqCst) < MIN_READS)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shared.stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let stats = ctx.stats();
    let summary = format!(
        "{label}, stale-fill guard {}: {:.1} s, {} row reads, {} query reads, {} view reads, {} committed writes, {} evictions, \
         {} loads, {} stale fills rejected, {} single-flight joins -> {} stale reads; \
         auditor: {} entries checked, {} mismatches{}",
        if protect { "on" } else { "OFF" },
        started.elapsed().as_secs_f64(),
        shared.reads.load(SeqCst),
        shared.query_reads.load(SeqCst),
        shared.view_reads.load(SeqCst),
        shared.writes.load(SeqCst),
        shared.evictions.load(SeqCst),
        stats.loads,
        stats.stale_fills_rejected,
        stats.single_flight_joins,
        shared.violations.load(SeqCst),
        shared.audited.load(SeqCst),
        shared.audit_mismatches.load(SeqCst),
        shared
            .first_mismatch
            .lock()
            .unwrap()
            .as_ref()
            .map_or(String::new(), |m| format!(" (first: {m})")),
    );
    println!("{summary}");
    assert!(
        shared.writes.load(SeqCst) >= MIN_WRITES,
        "too few writes to mean anything: {summary}"
    );
    assert!(
        shared.reads.load(SeqCst) >= MIN_READS,
        "too few reads to mean anything: {summary}"
    );
    Outcome {
        violations: shared.violations.load(SeqCst),
        audited: shared.audited.load(SeqCst),
        audit_mismatches: shared.audit_mismatches.load(SeqCst),
        summary,
    }
}
