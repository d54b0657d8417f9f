//! The shared cache in Redis, side by side with what it saves, on PostgreSQL (rotating order,
//! one run):
//!
//! - `shared_view`: a view instance that reads one query of 20 scenes (about 4 KB of JSON):
//!   computed from PostgreSQL on every read (no cache kept) vs read from the shared cache;
//! - `shared_10kb`: a view instance of about 10 KB (50 scenes) read from the shared cache,
//!   lz4-compressed and plain; the stored sizes are printed (the compression ratio);
//! - `shared_row`: one scene by id: a raw sqlx point select, a cached read that misses in
//!   process (no shared cache), and a read from the shared cache.
//!
//! Every context here keeps nothing in process (`max_entry_bytes(1)`), so each read is an
//! in-process miss. Needs `CACHED_REDIS_URL` and `CACHED_POSTGRES_URL`; prints SKIPPED
//! without them. Run with `cargo bench --bench shared`.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)]
mod domain;
mod support;

use std::time::Duration;

use cached_runtime::prelude::*;
use cached_runtime::{CachedView, LoadView, RedisBroadcast, SharedCache, ViewCtx};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use domain::*;

/// The scenes of a chapter, as a reader's digest: one query of 20 rows.
#[derive(CachedView, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[view(key = "Chapter", reads(Chapter, Scene))]
struct ChapterDigest {
    scenes: Vec<(i64, String, i64)>,
}

impl LoadView for ChapterDigest {
    async fn load(ctx: &mut ViewCtx<'_, Self>, id: i64) -> cached_runtime::Result<Option<Self>> {
        let scenes = ctx.find(SceneQuery::ByChapterId(id)).await?;
        Ok(Some(ChapterDigest {
            scenes: scenes
                .iter()
                .map(|s| (s.id, s.title.clone(), s.word_count))
                .collect(),
        }))
    }
}

/// The same 20 scenes read one by one (a loader that follows ids: 20 point selects).
#[derive(CachedView, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[view(key = "Chapter", reads(Chapter, Scene))]
struct ChapterByIds {
    titles: Vec<String>,
}

impl LoadView for ChapterByIds {
    async fn load(ctx: &mut ViewCtx<'_, Self>, _id: i64) -> cached_runtime::Result<Option<Self>> {
        let mut titles = Vec::new();
        for id in 1..=20 {
            if let Some(scene) = ctx.get::<Scene>(id).await? {
                titles.push(scene.title.clone());
            }
        }
        Ok(Some(ChapterByIds { titles }))
    }
}

fn shared(c: &mut Criterion) {
    let (Ok(redis_url), Ok(pg)) = (
        std::env::var("CACHED_REDIS_URL"),
        std::env::var("CACHED_POSTGRES_URL"),
    ) else {
        eprintln!("\n*** SKIPPED: shared-cache benchmarks (set CACHED_REDIS_URL and CACHED_POSTGRES_URL) ***\n");
        return;
    };
    let rt = support::runtime();
    let schema = format!("cached_bench_l2_{}", std::process::id());
    let channel = format!("cached-bench-l2:{}", std::process::id());
    let (pool, recompute, lz4, plain) = rt.block_on(async {
        let pool = support::pg_studio(&pg, &schema, SCHEMA_POSTGRES).await;
        sqlx::raw_sql(
            "INSERT INTO chapters VALUES (2, 1, 1, 'Chapter 2', 2);
             INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count)
             SELECT g, CASE WHEN g <= 20 THEN 1 ELSE 2 END, 1, 'draft',
                    'Scene ' || g || ': ' || repeat(md5(g::text), 5), 100
             FROM generate_series(1, 70) g",
        )
        .execute(&pool)
        .await
        .unwrap();
        let instance = |name: &str, compress_over: usize| {
            let (url, channel, pool) = (redis_url.clone(), format!("{channel}:{name}"), &pool);
            async move {
                let bus = RedisBroadcast::connect(&url, channel)
                    .await
                    .unwrap()
                    .shared_cache(SharedCache::new().compress_over(compress_over));
                Context::builder(pool.clone())
                    .max_entry_bytes(1)
                    .broadcast(bus)
                    .share_view::<ChapterDigest>()
                    .share_view::<ChapterByIds>()
                    .share_rows::<Scene>()
                    .build()
            }
        };
        let recompute = Context::builder(pool.clone()).max_entry_bytes(1).build();
        (
            pool.clone(),
            recompute,
            instance("lz4", 0).await,
            instance("plain", usize::MAX).await,
        )
    });
    // Fill both shared caches, and check they answer what the database says.
    rt.block_on(async {
        let cold = ChapterDigest::get(&recompute, 1).await.unwrap().unwrap();
        assert_eq!(cold.scenes.len(), 20);
        let large = ChapterDigest::get(&recompute, 2).await.unwrap().unwrap();
        assert_eq!(large.scenes.len(), 50);
        for ctx in [&lz4, &plain] {
            for (chapter, expected) in [(1, &cold), (2, &large)] {
                assert_eq!(
                    *ChapterDigest::get(ctx, chapter).await.unwrap().unwrap(),
                    **expected
                );
                assert_eq!(
                    *ChapterDigest::get(ctx, chapter).await.unwrap().unwrap(),
                    **expected
                );
            }
            assert_eq!(ctx.stats().shared.hits, 2, "{}", ctx.stats());
            ChapterByIds::get(ctx, 1).await.unwrap().unwrap();
            Scene::repo(ctx).get(7).await.unwrap().unwrap();
            ChapterByIds::get(ctx, 1).await.unwrap().unwrap();
        }
        let mut conn = redis::Client::open(redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut sizes = Vec::new();
        for name in ["lz4", "plain"] {
            let bytes: usize = redis::cmd("HSTRLEN")
                .arg(format!("{{{channel}:{name}}}:v:chapter_digest:2"))
                .arg("v")
                .query_async(&mut conn)
                .await
                .unwrap();
            sizes.push(bytes);
        }
        eprintln!(
            "\nshared_10kb entry: {} bytes lz4, {} bytes plain (ratio {:.2})\n",
            sizes[0],
            sizes[1],
            sizes[1] as f64 / sizes[0] as f64
        );
    });

    let mut group = c.benchmark_group("shared_view");
    group.measurement_time(Duration::from_secs(8));
    support::rotating(
        &mut group,
        &rt,
        &[
            "one_query_recompute_from_postgres",
            "one_query_shared_hit",
            "twenty_gets_recompute_from_postgres",
            "twenty_gets_shared_hit",
        ],
        |variant| {
            let ctx = [&recompute, &lz4][variant % 2];
            async move {
                match variant {
                    0 | 1 => drop(black_box(ChapterDigest::get(ctx, 1).await.unwrap())),
                    _ => drop(black_box(ChapterByIds::get(ctx, 1).await.unwrap())),
                }
            }
        },
    );
    group.finish();

    let mut group = c.benchmark_group("shared_10kb");
    group.measurement_time(Duration::from_secs(8));
    support::rotating(
        &mut group,
        &rt,
        &[
            "recompute_from_postgres",
            "shared_hit_lz4",
            "shared_hit_plain",
        ],
        |variant| {
            let ctx = [&recompute, &lz4, &plain][variant];
            async move {
                black_box(ChapterDigest::get(ctx, 2).await.unwrap());
            }
        },
    );
    group.finish();

    let mut group = c.benchmark_group("shared_row");
    group.measurement_time(Duration::from_secs(8));
    support::rotating(
        &mut group,
        &rt,
        &["raw_point_select", "cached_miss", "shared_hit"],
        |variant| {
            let (pool, recompute, lz4) = (&pool, &recompute, &lz4);
            async move {
                match variant {
                    0 => {
                        let row: (i64, String) =
                            sqlx::query_as("SELECT id, title FROM scenes WHERE id = $1")
                                .bind(7_i64)
                                .fetch_one(pool)
                                .await
                                .unwrap();
                        black_box(row);
                    }
                    1 => {
                        black_box(Scene::repo(recompute).get(7).await.unwrap());
                    }
                    _ => {
                        black_box(Scene::repo(lz4).get(7).await.unwrap());
                    }
                }
            }
        },
    );
    group.finish();
    for ctx in [&lz4, &plain] {
        let shared = ctx.stats().shared;
        assert_eq!(shared.errors, 0, "{shared:?}");
        eprintln!("{shared:?}");
    }
    drop((recompute, lz4, plain, pool));
    rt.block_on(support::drop_pg_schema(&pg, &schema));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1));
    targets = shared
}
criterion_main!(benches);
