//! Keyset pages on PostgreSQL (when `CACHED_POSTGRES_URL` is set), side by side in one run:
//! - `postgres_page`: a cached page hit vs the same keyset `SELECT ... ORDER BY position, id
//!   LIMIT 21` through sqlx;
//! - `page_move`: a write that moves one track between albums 1 and 2 (dropping both albums'
//!   pages) on a context that also caches one page of each of 10 or 100,000 other albums: the
//!   cost must not grow with them;
//! - `cursor_string`: a page's cursor to its string form and back (what an HTTP API does per
//!   request), next to the page hit.
//!
//! Run with `CACHED_POSTGRES_URL=... cargo bench --bench pages`; read the ratios.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)] // the shared bench support names it; this benchmark has its own table
mod domain;
mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cached_runtime::prelude::*;
use cached_runtime::{Cursor, Page};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

#[derive(CachedEntity, Clone, Debug)]
#[cache(table = "tracks")]
pub struct Track {
    #[cache(id)]
    pub id: i64,
    #[cache(index, order_by = "position")]
    pub album_id: i64,
    pub position: i64,
    pub title: String,
}

/// Albums 1..=`albums`, album 1 with 100 tracks, every other album with 1.
const SCHEMA: &str = "CREATE TABLE tracks (id BIGINT PRIMARY KEY, album_id BIGINT NOT NULL, \
    position BIGINT NOT NULL, title TEXT NOT NULL); \
    CREATE INDEX tracks_album_position ON tracks (album_id, position, id);";

const RAW: &str = "SELECT id, album_id, position, title FROM tracks WHERE album_id = $1 \
    ORDER BY position, id LIMIT 21";

fn pages(c: &mut Criterion) {
    let Ok(url) = std::env::var("CACHED_POSTGRES_URL") else {
        eprintln!("note: CACHED_POSTGRES_URL is unset; skipping the page benchmarks");
        return;
    };
    let rt = support::runtime();
    let schema = format!("bench_pages_{}", std::process::id());
    const OTHERS: i64 = 100_000;
    let pool = rt.block_on(async {
        let pool = support::pg_schema(&url, &schema).await;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("schema");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tracks SELECT n, 1, n, 'track ' || n FROM generate_series(1, 100) n; \
             INSERT INTO tracks SELECT 1000 + n, n, 1, 'single' FROM generate_series(3, {}) n;",
            OTHERS + 2
        )))
        .execute(&pool)
        .await
        .expect("rows");
        pool
    });

    let ctx = Context::builder(pool.clone())
        .max_entries(1_000_000)
        .build();
    let first = || async { Track::repo(&ctx).page_by_album_id(1, Page::first(20)).await };
    rt.block_on(first()).unwrap();
    let mut group = c.benchmark_group("postgres_page");
    group.bench_function("cached_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(first().await.unwrap()) })
    });
    group.bench_function("raw_keyset_select", |b| {
        b.to_async(&rt).iter(|| async {
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(RAW)
                .bind(1i64)
                .fetch_all(&pool)
                .await
                .unwrap();
            black_box(rows)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("cursor_string");
    let cursor = rt
        .block_on(first())
        .unwrap()
        .next
        .expect("album 1 has a second page");
    let text = cursor.to_string();
    group.bench_function("encode", |b| {
        b.iter(|| black_box(black_box(&cursor).to_string()))
    });
    group.bench_function("decode", |b| {
        b.iter(|| black_box(black_box(text.as_str()).parse::<Cursor>().unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("page_move");
    group.measurement_time(Duration::from_secs(10));
    for others in [10, OTHERS] {
        let ctx = Context::builder(pool.clone())
            .max_entries(1_000_000)
            .build();
        rt.block_on(async {
            for album in 3..3 + others {
                Track::repo(&ctx)
                    .page_by_album_id(album, Page::first(20))
                    .await
                    .unwrap();
            }
        });
        let flips = AtomicI64::new(0);
        group.bench_with_input(
            BenchmarkId::new("cached_pages_of_other_albums", others),
            &others,
            |b, _| {
                b.to_async(&rt).iter(|| async {
                    // Cache both albums' first pages, then move track 1 between them.
                    Track::repo(&ctx)
                        .page_by_album_id(1, Page::first(20))
                        .await
                        .unwrap();
                    Track::repo(&ctx)
                        .page_by_album_id(2, Page::first(20))
                        .await
                        .unwrap();
                    let to = 1 + (flips.fetch_add(1, Ordering::Relaxed) + 1) % 2;
                    black_box(
                        Track::repo(&ctx)
                            .update(1, TrackUpdate::default().album_id(to))
                            .await
                            .unwrap(),
                    )
                })
            },
        );
    }
    group.finish();
    rt.block_on(async {
        pool.close().await;
        support::drop_pg_schema(&url, &schema).await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1));
    targets = pages
}
criterion_main!(benches);
