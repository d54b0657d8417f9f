//! Concurrent torture test: writers and readers over a small key space on a file-backed SQLite
//! database. Every row carries a version (`word_count`, only ever incremented). A writer
//! publishes the version it committed after `commit()` returns; a reader notes the published
//! version before it starts reading, and any read that returns an older version is a stale
//! read. Reads are row gets, queries, and a cached view spanning every row. With the
//! stale-fill guard on there must be none; with it switched off (test-only) the
//! same run must find some, which proves the test can fail.
//!
//! Every [`SLOW_EVERY`]-th load pauses for [`SLOW_FILL`] between its database read and its fill,
//! in both runs: a few slow readers among fast ones. Without them, whether a commit lands inside
//! that window is left to the scheduler, and on a server with few commits per second (the MongoDB test server manages ~50)
//! a 3-second run with the guard off could pass by luck and prove nothing.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_runtime::{Context, LoadView};
use common::domain::*;
use common::{scene, Backend, TestDb};

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

struct Shared {
    committed: Vec<AtomicI64>,
    stop: AtomicBool,
    reads: AtomicU64,
    query_reads: AtomicU64,
    view_reads: AtomicU64,
    writes: AtomicU64,
    evictions: AtomicU64,
    violations: AtomicU64,
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

async fn setup(backend: Backend, protect: bool) -> Option<(Context, TestDb, Arc<Shared>)> {
    let (ctx, db) = common::seeded_with(backend, |b| {
        let b = b.__fill_delay_every(SLOW_EVERY, SLOW_FILL);
        if protect {
            b
        } else {
            b.__disable_stale_fill_protection()
        }
    })
    .await?;
    Scene::repo(&ctx)
        .insert(&scene(4, 2, "draft", 0))
        .await
        .unwrap();
    let mut committed = Vec::new();
    for id in 1..=KEYS {
        let row = Scene::repo(&ctx).get(id).await.unwrap().unwrap();
        committed.push(AtomicI64::new(row.word_count));
    }
    let shared = Arc::new(Shared {
        committed,
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        query_reads: AtomicU64::new(0),
        view_reads: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        evictions: AtomicU64::new(0),
        violations: AtomicU64::new(0),
    });
    Some((ctx, db, shared))
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

async fn reader(ctx: Context, shared: Arc<Shared>, seed: u64) {
    let mut rng = Rng(seed);
    while !shared.stop.load(SeqCst) {
        let dice = rng.next() % 10;
        if dice == 0 {
            // A view spanning every scene of story 1: each scene's version in it must be at
            // least the version committed before the read started.
            let floors: Vec<i64> = shared.committed.iter().map(|c| c.load(SeqCst)).collect();
            let outline = StoryOutline::get(&ctx, 1).await.unwrap().unwrap();
            for chapter in &outline.chapters {
                for (id, _, words) in &chapter.scenes {
                    if *id <= KEYS {
                        check(&shared, floors[(*id - 1) as usize], *words);
                    }
                }
            }
            shared.view_reads.fetch_add(1, SeqCst);
        } else if dice <= 2 {
            let floors: Vec<i64> = shared.committed.iter().map(|c| c.load(SeqCst)).collect();
            for chapter in [1, 2] {
                for row in Scene::repo(&ctx).find_by_chapter_id(chapter).await.unwrap() {
                    if row.id <= KEYS {
                        check(&shared, floors[(row.id - 1) as usize], row.word_count);
                    }
                }
            }
            shared.query_reads.fetch_add(1, SeqCst);
        } else {
            let id = rng.id();
            let floor = shared.committed[(id - 1) as usize].load(SeqCst);
            let row = Scene::repo(&ctx).get(id).await.unwrap().unwrap();
            check(&shared, floor, row.word_count);
            shared.reads.fetch_add(1, SeqCst);
        }
        tokio::task::yield_now().await;
    }
}

/// Drops random rows from the cache, as capacity eviction would, so that readers keep missing.
async fn evictor(ctx: Context, shared: Arc<Shared>, seed: u64) {
    let mut rng = Rng(seed);
    while !shared.stop.load(SeqCst) {
        ctx.invalidate::<Scene>(rng.id());
        shared.evictions.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

async fn run(backend: Backend, protect: bool) -> Option<(u64, String)> {
    let (ctx, _db, shared) = setup(backend, protect).await?;
    let mut tasks = Vec::new();
    for i in 0..3 {
        tasks.push(tokio::spawn(writer(
            ctx.clone(),
            shared.clone(),
            0x9E37 + i,
        )));
    }
    for i in 0..4 {
        tasks.push(tokio::spawn(reader(
            ctx.clone(),
            shared.clone(),
            0x51ED + i,
        )));
    }
    tasks.push(tokio::spawn(evictor(ctx.clone(), shared.clone(), 0xABCD)));
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
        "{backend:?}, stale-fill guard {}: {:.1} s, {} row reads, {} query reads, {} view reads, {} committed writes, {} evictions, \
         {} loads, {} stale fills rejected, {} single-flight joins -> {} stale reads",
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
    Some((shared.violations.load(SeqCst), summary))
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_read_after_a_commit_returns_older_data(backend) {
        let Some((violations, summary)) = run(backend, true).await else {
            return;
        };
        assert_eq!(violations, 0, "{summary}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_torture_test_finds_stale_reads_when_the_guard_is_off(backend) {
        let Some((violations, summary)) = run(backend, false).await else {
            return;
        };
        assert!(
            violations > 0,
            "the test could not detect the race it exists for: {summary}"
        );
    }
}
