//! A cascading delete's cost must not grow with what else is cached: on PostgreSQL, a parent
//! inserted with two children, its children's page read (cached), then the parent deleted
//! (`ON DELETE CASCADE`), on a context that also caches one page of each of 10 or 10,000 other
//! parents. The delete drops exactly the pages its children were in; after the run every other
//! parent's page is still cached (checked: re-reading them loads nothing).
//!
//! Run with `CACHED_POSTGRES_URL=... cargo bench --bench cascades`; read the ratio.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)] // the shared bench support names it; this benchmark has its own tables
mod domain;
mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cached_runtime::prelude::*;
use cached_runtime::Page;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[derive(CachedEntity, Clone, Debug)]
#[cache(table = "albums")]
pub struct Album {
    #[cache(id)]
    pub id: i64,
}

#[derive(CachedEntity, Clone, Debug)]
#[cache(table = "tracks", relates_to = "Album")]
pub struct Track {
    #[cache(id)]
    pub id: i64,
    #[cache(order_by = "position")]
    pub album_id: i64,
    pub position: i64,
}

const SCHEMA: &str = "CREATE TABLE albums (id BIGINT PRIMARY KEY); \
    CREATE TABLE tracks (id BIGINT PRIMARY KEY, \
    album_id BIGINT NOT NULL REFERENCES albums(id) ON DELETE CASCADE, position BIGINT NOT NULL); \
    CREATE INDEX tracks_album ON tracks (album_id, position, id);";

const OTHERS: i64 = 10_000;

fn cascades(c: &mut Criterion) {
    let Ok(url) = std::env::var("CACHED_POSTGRES_URL") else {
        eprintln!("note: CACHED_POSTGRES_URL is unset; skipping the cascade benchmark");
        return;
    };
    let rt = support::runtime();
    let schema = format!("bench_cascades_{}", std::process::id());
    let pool = rt.block_on(async {
        let pool = support::pg_schema(&url, &schema).await;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("schema");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO albums SELECT n FROM generate_series(1, {OTHERS}) n; \
             INSERT INTO tracks SELECT n, n, 1 FROM generate_series(1, {OTHERS}) n;"
        )))
        .execute(&pool)
        .await
        .expect("rows");
        pool
    });
    let next = AtomicI64::new(1_000_000);
    let mut group = c.benchmark_group("cascade_delete");
    group.measurement_time(Duration::from_secs(10));
    for others in [10, OTHERS] {
        let ctx = Context::builder(pool.clone())
            .max_entries(1_000_000)
            .build();
        let warm = || async {
            for album in 1..=others {
                Track::repo(&ctx)
                    .page_by_album_id(album, Page::first(10))
                    .await
                    .unwrap();
            }
        };
        rt.block_on(warm());
        group.bench_with_input(
            BenchmarkId::new("cached_pages_of_other_parents", others),
            &others,
            |b, _| {
                b.to_async(&rt).iter(|| async {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    let mut tx = ctx.begin().await.unwrap();
                    Album::repo(&mut tx).insert(&Album { id }).await.unwrap();
                    for (n, position) in [(0, 1), (1, 2)] {
                        let track = Track {
                            id: 10 * id + n,
                            album_id: id,
                            position,
                        };
                        Track::repo(&mut tx).insert(&track).await.unwrap();
                    }
                    tx.commit().await.unwrap();
                    Track::repo(&ctx)
                        .page_by_album_id(id, Page::first(10))
                        .await
                        .unwrap();
                    Album::repo(&ctx).delete(id).await.unwrap();
                })
            },
        );
        // Precise: the other parents' pages survived every delete.
        let loads = ctx.stats().loads;
        rt.block_on(warm());
        assert_eq!(
            ctx.stats().loads,
            loads,
            "a cascade dropped other parents' pages"
        );
    }
    group.finish();
    rt.block_on(support::drop_pg_schema(&url, &schema));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1));
    targets = cascades
}
criterion_main!(benches);
