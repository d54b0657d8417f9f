//! What a cached row costs in memory, next to the row's own size, and how well a byte budget
//! (`ContextBuilder::max_bytes`) bounds what the cache really allocates. Every allocation is
//! counted (a counting global allocator); no timing.
//!
//! Run with `cargo bench --bench memory`.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)]
mod domain;
mod support;

use std::sync::atomic::Ordering::Relaxed;

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

fn main() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    const N: i64 = 20_000;
    let pool = rt.block_on(support::database(&dir, N));

    let ctx = Context::builder(pool.clone())
        .max_entries(10_000_000)
        .build();
    let (live, own) = rt.block_on(cached_bytes(&ctx, N));
    let per_row = live as f64 / N as f64;
    println!(
        "a cached Scene row: {per_row:.0} bytes ({} entries), the row itself {own:.0} bytes \
         ({:.2}x the row; the goal 2x + 64 = {:.0} bytes is {})",
        ctx.entry_count(),
        per_row / own,
        2.0 * own + 64.0,
        if per_row <= 2.0 * own + 64.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(ctx);

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
