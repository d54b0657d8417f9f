//! Cached aggregates against the statement they stand for, side by side in one run, on
//! PostgreSQL: `count_grouped_by_status()` (a hit) vs `SELECT status, COUNT(*) ... GROUP BY
//! status` through the same pool, and `max_position_by_project_id(p)` (a hit) vs
//! `SELECT MAX(position) ... WHERE project_id = $1`, over 10,000 tickets in 20 projects and 5
//! statuses. Each iteration of the cached side checks nothing was loaded (a hit).
//!
//! Run with `CACHED_POSTGRES_URL=... cargo bench --bench aggregates`; read the ratios.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)] // the shared bench support names it; this benchmark has its own tables
mod domain;
mod support;

use std::hint::black_box;
use std::time::Duration;

use cached_runtime::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};

#[derive(CachedEntity, Clone, Debug)]
#[cache(table = "projects")]
pub struct Project {
    #[cache(id)]
    pub id: i64,
}

#[derive(CachedEntity, Clone, Debug)]
#[cache(table = "tickets", relates_to = "Project")]
pub struct Ticket {
    #[cache(id)]
    pub id: i64,
    #[cache(index, order_by = "position")]
    pub project_id: i64,
    #[cache(index)]
    pub status: String,
    pub position: i64,
}

const SCHEMA: &str = "CREATE TABLE projects (id BIGINT PRIMARY KEY); \
    CREATE TABLE tickets (id BIGINT PRIMARY KEY, project_id BIGINT NOT NULL REFERENCES projects(id), \
    status TEXT NOT NULL, position BIGINT NOT NULL); \
    CREATE INDEX tickets_status ON tickets (status); \
    CREATE INDEX tickets_project ON tickets (project_id, position, id); \
    INSERT INTO projects SELECT n FROM generate_series(1, 20) n; \
    INSERT INTO tickets SELECT n, 1 + n % 20, 's' || (n % 5), n FROM generate_series(1, 10000) n;";

fn aggregates(c: &mut Criterion) {
    let Ok(url) = std::env::var("CACHED_POSTGRES_URL") else {
        eprintln!("note: CACHED_POSTGRES_URL is unset; skipping the aggregates benchmark");
        return;
    };
    let rt = support::runtime();
    let schema = format!("bench_aggregates_{}", std::process::id());
    let pool = rt.block_on(async {
        let pool = support::pg_schema(&url, &schema).await;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("schema");
        pool
    });
    let ctx = Context::new(pool.clone());
    let loads = || ctx.stats().loads;
    rt.block_on(async {
        Ticket::repo(&ctx).count_grouped_by_status().await.unwrap();
        Ticket::repo(&ctx)
            .max_position_by_project_id(7)
            .await
            .unwrap();
    });

    let mut group = c.benchmark_group("grouped_count");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("cached_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let before = loads();
            let groups = Ticket::repo(&ctx).count_grouped_by_status().await.unwrap();
            assert_eq!((groups.len(), loads()), (5, before), "a hit");
            black_box(groups)
        })
    });
    group.bench_function("raw_group_by", |b| {
        b.to_async(&rt).iter(|| async {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM tickets GROUP BY status ORDER BY status",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            black_box(rows)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("max_position");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("cached_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let before = loads();
            let max = Ticket::repo(&ctx)
                .max_position_by_project_id(7)
                .await
                .unwrap();
            assert_eq!((max, loads()), (Some(9986), before), "a hit");
            black_box(max)
        })
    });
    group.bench_function("raw_max", |b| {
        b.to_async(&rt).iter(|| async {
            let (max,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(position) FROM tickets WHERE project_id = $1")
                    .bind(7_i64)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            black_box(max)
        })
    });
    group.finish();
    rt.block_on(support::drop_pg_schema(&url, &schema));
}

criterion_group!(benches, aggregates);
criterion_main!(benches);
