//! Optimistic updates on PostgreSQL (when `CACHED_POSTGRES_URL` is set), side by side in one
//! run: a cached `update_if_version` in a transaction vs the same conditional `UPDATE ... WHERE
//! id = $2 AND version = $3` through sqlx in a transaction (without and with `RETURNING`, which
//! the cache needs to write the row through). The variants run in rotating order in every
//! iteration; each benchmark times one of them.
//!
//! Run with `CACHED_POSTGRES_URL=... cargo bench --bench versions`; read the ratios.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)] // only the PostgreSQL schema is used here
mod domain;
mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cached_runtime::prelude::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use domain::*;
use sqlx::PgPool;

const RAW: &str =
    "UPDATE scenes SET title = $1, version = version + 1 WHERE id = $2 AND version = $3";
const RAW_RETURNING: &str = "UPDATE scenes SET title = $1, version = version + 1 \
     WHERE id = $2 AND version = $3 \
     RETURNING id, chapter_id, story_id, location_id, status, title, word_count, version";

async fn database(url: &str, schema: &str) -> PgPool {
    let pool = support::pg_schema(url, schema).await;
    sqlx::raw_sql(SCHEMA_POSTGRES)
        .execute(&pool)
        .await
        .expect("schema");
    sqlx::raw_sql(support::PARENTS)
        .execute(&pool)
        .await
        .expect("parents");
    sqlx::raw_sql(
        "INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count, version)
         VALUES (5, 1, 1, 'draft', 'Scene 5', 100, 1);",
    )
    .execute(&pool)
    .await
    .expect("rows");
    pool
}

fn versions(c: &mut Criterion) {
    let Ok(url) = std::env::var("CACHED_POSTGRES_URL") else {
        eprintln!("note: CACHED_POSTGRES_URL is unset; skipping the version benchmarks");
        return;
    };
    let rt = support::runtime();
    let schema = format!("bench_versions_{}", std::process::id());
    let pool = rt.block_on(database(&url, &schema));
    let ctx = Context::new(pool.clone());
    // Every variant moves the one row on by a version; all know which version is current.
    let version = AtomicI64::new(1);
    let n = AtomicI64::new(0);
    let text = || format!("t{}", n.fetch_add(1, Ordering::Relaxed));

    let mut group = c.benchmark_group("postgres_update_if_version");
    group.measurement_time(Duration::from_secs(10));
    let labels = ["cached_in_tx", "raw_sqlx_in_tx", "raw_sqlx_returning_in_tx"];
    support::rotating(&mut group, &rt, &labels, |variant| {
        let (ctx, pool, version, text) = (&ctx, &pool, &version, &text);
        async move {
            let expected = version.fetch_add(1, Ordering::Relaxed);
            if variant == 0 {
                let mut tx = ctx.begin().await.unwrap();
                let row = Scene::repo(&mut tx)
                    .update_if_version(5, expected, SceneUpdate::default().title(text()))
                    .await
                    .unwrap();
                black_box(row);
                black_box(tx.commit().await.unwrap());
                return;
            }
            let mut tx = pool.begin().await.unwrap();
            let query = sqlx::query(if variant == 1 { RAW } else { RAW_RETURNING })
                .bind(text())
                .bind(5_i64)
                .bind(expected);
            if variant == 1 {
                let done = query.execute(&mut *tx).await.unwrap();
                assert_eq!(done.rows_affected(), 1, "the raw update lost the race");
            } else {
                black_box(query.fetch_one(&mut *tx).await.unwrap());
            }
            tx.commit().await.unwrap();
        }
    });
    group.finish();
    rt.block_on(async {
        pool.close().await;
        support::drop_pg_schema(&url, &schema).await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1));
    targets = versions
}
criterion_main!(benches);
