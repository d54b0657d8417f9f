//! What the view dependency index costs in memory: the same N view instances cached by two
//! contexts, one recording what each load read and one not (a test-only switch), with every
//! allocation counted. Prints the bytes per instance the index adds, next to the bytes per
//! instance of the whole cache.
//!
//! Run with `cargo bench --bench deps`.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)]
mod domain;
mod support;

use std::sync::atomic::Ordering::Relaxed;

use cached_runtime::prelude::*;
use domain::*;
use support::{Counting, SceneCard, LIVE};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A view that reads ten scenes and a count shared by every instance (11 keys).
#[derive(CachedView, Clone)]
#[view(key = "Scene")]
pub struct TenScenes {
    pub words: i64,
}

impl LoadView for TenScenes {
    async fn load(ctx: &mut ViewCtx<'_, Self>, id: i64) -> Result<Option<Self>> {
        let ids: Vec<i64> = (id..id + 10).collect();
        let scenes = ctx.get_many::<Scene>(&ids).await?;
        let drafts = ctx.count(SceneQuery::ByStatus("draft".into())).await?;
        Ok(Some(TenScenes {
            words: scenes.iter().flatten().map(|s| s.word_count).sum::<i64>() + drafts,
        }))
    }
}

/// Live bytes after caching `n` instances of `V` (keys 1..=n) on a fresh context.
async fn cached_bytes<V: LoadView<Key = Scene>>(
    pool: &sqlx::SqlitePool,
    n: i64,
    track: bool,
) -> isize {
    let builder = Context::builder(pool.clone()).max_entries(10_000_000);
    let ctx = if track {
        builder.build()
    } else {
        builder.__disable_read_tracking().build()
    };
    // Rows first, so that both contexts hold the same rows when the views are counted.
    for id in 1..=n + 10 {
        Scene::repo(&ctx).get(id).await.unwrap();
    }
    Scene::repo(&ctx).count_by_status("draft").await.unwrap();
    ctx.entry_count();
    let before = LIVE.load(Relaxed);
    for id in 1..=n {
        V::get(&ctx, id).await.unwrap();
    }
    ctx.entry_count();
    let after = LIVE.load(Relaxed);
    drop(ctx);
    after - before
}

fn main() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    const N: i64 = 20_000;
    let pool = rt.block_on(support::database(&dir, N + 10));
    for (name, tracked, untracked) in [
        (
            "SceneCard (reads 1 row key)",
            rt.block_on(cached_bytes::<SceneCard>(&pool, N, true)),
            rt.block_on(cached_bytes::<SceneCard>(&pool, N, false)),
        ),
        (
            "TenScenes (reads 10 row keys and 1 count shared by all)",
            rt.block_on(cached_bytes::<TenScenes>(&pool, N, true)),
            rt.block_on(cached_bytes::<TenScenes>(&pool, N, false)),
        ),
    ] {
        println!(
            "{name}: {:.0} bytes per cached instance with the dependency index, {:.0} without: \
             the index costs {:.0} bytes per instance",
            tracked as f64 / N as f64,
            untracked as f64 / N as f64,
            (tracked - untracked) as f64 / N as f64
        );
    }
}
