//! What a cached row costs in memory, next to the row's own size, to a bare
//! `moka::sync::Cache<i64, Arc<Scene>>` holding the same rows (the floor a moka-based cache
//! can reach) and to a sharded std map of them (a map of the crate's own), and how well a byte
//! budget (`ContextBuilder::max_bytes`) bounds what the cache really allocates. Every
//! allocation is counted (a counting global allocator); no timing.
//!
//! Two row sizes: the seeded scenes (~120 bytes with their heap), and the same scenes with
//! titles padded to make them ~280 bytes.
//!
//! Run with `cargo bench --bench memory`.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)]
mod domain;
mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use cached_runtime::prelude::*;
use domain::*;
use support::{Counting, LIVE};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes after reading scenes `1..=n` through `ctx` (each a miss, then cached), and the
/// average size of the rows read (their struct and the heap their fields own).
async fn cached_bytes(ctx: &Context, n: i64) -> (isize, f64) {
    ctx.entry_count();
    let before = LIVE.load(Relaxed);
    let mut own = 0usize;
    for id in 1..=n {
        let scene = Scene::repo(ctx).get(id).await.unwrap().expect("seeded");
        own += std::mem::size_of::<Scene>() + scene.heap_size();
    }
    ctx.entry_count();
    (LIVE.load(Relaxed) - before, own as f64 / n as f64)
}

/// Live bytes of `hold` holding the same rows (read once, uncached, beforehand: the rows' own
/// bytes are counted as they are in [`cached_bytes`], where the cache holds the only reference;
/// the vector that brings them is freed on the way).
fn held_bytes(rows: Vec<Arc<Scene>>, hold: fn(Vec<Arc<Scene>>) -> Box<dyn std::any::Any>) -> isize {
    let carrier = (rows.capacity() * std::mem::size_of::<Arc<Scene>>()) as isize;
    let before = LIVE.load(Relaxed) - rows_bytes(&rows) - carrier;
    let held = hold(rows);
    let live = LIVE.load(Relaxed) - before;
    drop(held);
    live
}

/// A bare `moka::sync::Cache<i64, Arc<Scene>>`: the floor of a moka-based cache.
fn bare_moka(rows: Vec<Arc<Scene>>) -> Box<dyn std::any::Any> {
    let cache: moka::sync::Cache<i64, Arc<Scene>> = moka::sync::Cache::new(10_000_000);
    for row in rows {
        cache.insert(row.id, row);
    }
    cache.run_pending_tasks();
    Box::new(cache)
}

/// The sharded std map of `benches/cache.rs` (no eviction policy): the floor of a map of the
/// crate's own.
fn sharded_map(rows: Vec<Arc<Scene>>) -> Box<dyn std::any::Any> {
    let map = support::ShardedMap::default();
    for row in rows {
        map.insert(row.id, row);
    }
    Box::new(map)
}

/// What `rows` own: each `Arc`'s allocation (two counts and the row) and the row's heap.
fn rows_bytes(rows: &[Arc<Scene>]) -> isize {
    rows.iter()
        .map(|row| 16 + std::mem::size_of::<Scene>() + row.heap_size())
        .sum::<usize>() as isize
}

/// One row size: the cached cost per row next to a bare moka cache's.
fn compare(rt: &tokio::runtime::Runtime, pool: &sqlx::SqlitePool, n: i64, label: &str) {
    let ctx = Context::builder(pool.clone())
        .max_entries(10_000_000)
        .build();
    let (live, own) = rt.block_on(cached_bytes(&ctx, n));
    let per_row = live as f64 / n as f64;
    let entries = ctx.entry_count();
    drop(ctx);
    // The same rows, read with a context that keeps nothing.
    let reader = Context::builder(pool.clone()).max_entries(0).build();
    let rows: Vec<Arc<Scene>> = rt.block_on(async {
        let mut rows = Vec::with_capacity(n as usize);
        for id in 1..=n {
            rows.push(Scene::repo(&reader).get(id).await.unwrap().expect("seeded"));
        }
        rows
    });
    drop(reader);
    let bare = held_bytes(rows.clone(), bare_moka) as f64 / n as f64;
    let map = held_bytes(rows, sharded_map) as f64 / n as f64;
    println!(
        "{label}: a cached Scene row {per_row:.0} bytes ({entries} entries), the row itself \
         {own:.0} bytes ({:.2}x the row; 2x + 64 = {:.0}); a bare moka::sync cache of \
         Arc<Scene>: {bare:.0} bytes per row; cached / bare = {:.3} (over the row: {:.0} vs \
         {:.0} bytes); a sharded std map of Arc<Scene> (no eviction policy): {map:.0} bytes per \
         row ({:.0} over the row)",
        per_row / own,
        2.0 * own + 64.0,
        per_row / bare,
        per_row - own,
        bare - own,
        map - own,
    );
}

fn main() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    const N: i64 = 20_000;
    let pool = rt.block_on(support::database(&dir, N));

    println!(
        "a CacheKey is {} bytes (moka holds each key once, in an Arc)",
        std::mem::size_of::<CacheKey>()
    );
    compare(&rt, &pool, N, "~120-byte rows");
    // Titles padded by 160 bytes: rows of ~280 bytes.
    rt.block_on(
        sqlx::query("UPDATE scenes SET title = title || ?")
            .bind(".".repeat(160))
            .execute(&pool),
    )
    .expect("pad");
    compare(&rt, &pool, N, "~280-byte rows");

    for budget in [1u64 << 20, 4 << 20] {
        let ctx = Context::builder(pool.clone()).max_bytes(budget).build();
        let (live, _) = rt.block_on(cached_bytes(&ctx, N));
        println!(
            "max_bytes({budget}): {} of {N} rows held, {live} bytes allocated by the cache \
             ({:.2}x the budget)",
            ctx.entry_count(),
            live as f64 / budget as f64
        );
    }
}
