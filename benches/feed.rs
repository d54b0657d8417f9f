//! Change feeds, measured side by side in one run (a harness of its own: the numbers are
//! distributions, not one mean):
//!
//! - **lag**: from an outside `UPDATE` returning (committed, on another connection) until the
//!   cached row is dropped by the feed, p50 / p99 / max over 300 updates;
//! - **throughput**: 4 outside writers commit 2,000 single-row updates as fast as the database
//!   takes them; the feed's rate is the writes over the time from the first write until
//!   `catch_up` returns after the last one, with 1, 4 and 8 instances each reading its own
//!   feed (the cost of one feed per instance: the writers' rate, and the slowest instance's);
//! - **write cost** (PostgreSQL): the same single-row `UPDATE` on a table with the feed's
//!   triggers and on an identical table without, interleaved, 2,000 each.
//!
//! Needs `CACHED_POSTGRES_URL`, `CACHED_MYSQL_URL` (a server logging rows: see README) and/or
//! `CACHED_MONGODB_URL`; prints SKIPPED without them. Run with
//! `cargo bench --bench feed`.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)]
mod domain;

use std::str::FromStr;
use std::time::{Duration, Instant};

use cached_runtime::{ChangeFeed, Context, FeedSetup};
use domain::*;
use mongodb::bson::doc;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const SCENES: i64 = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report_lag(backend: &str, mut lags: Vec<Duration>) {
    lags.sort();
    println!(
        "{backend} feed lag over {} outside updates (from the writer's commit returning; 0 when \
         the row was already dropped by then): p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        lags.len(),
        percentile(&lags, 0.5).as_secs_f64() * 1e6,
        percentile(&lags, 0.99).as_secs_f64() * 1e6,
        lags.last().unwrap().as_secs_f64() * 1e6,
    );
}

/// Caches scene 5, runs `write` (an outside commit), and times until the feed dropped it.
async fn lag(ctx: &Context, write: impl AsyncFn(i64)) -> Vec<Duration> {
    let mut lags = Vec::new();
    for i in 0..300 {
        // A load that starts while the previous apply is still finishing is refused (as it
        // must be): load again until the row is cached.
        while !ctx.is_cached(SceneKey(5)) {
            Scene::repo(ctx).get(5).await.unwrap();
        }
        write(i).await;
        let committed = Instant::now();
        while ctx.is_cached(SceneKey(5)) {
            assert!(
                committed.elapsed() < Duration::from_secs(10),
                "the feed never applied"
            );
            tokio::task::yield_now().await;
        }
        lags.push(committed.elapsed());
    }
    lags
}

/// 4 writers, 500 updates each on their own rows, heard by every context in `ctxs`; returns
/// (database writes/s, feed writes/s of the slowest context to catch up).
async fn throughput<W, F>(ctxs: &[Context], write: W) -> (f64, f64)
where
    W: Fn(i64, i64) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    const WRITERS: i64 = 4;
    const EACH: i64 = 500;
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let write = write.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    write(10 + w * 40 + i % 40, i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let written = started.elapsed();
    for ctx in ctxs {
        ctx.catch_up().await.unwrap();
    }
    let applied = started.elapsed();
    let n = (WRITERS * EACH) as f64;
    (n / written.as_secs_f64(), n / applied.as_secs_f64())
}

/// Lag, then throughput with 1, 4 and 8 instances (contexts made by `make`, each with a feed
/// of its own), for one backend; returns the instances, still listening.
async fn measure<W, F>(
    backend: &str,
    make: impl AsyncFn() -> Context,
    lag_write: impl AsyncFn(i64),
    write: W,
) -> Vec<Context>
where
    W: Fn(i64, i64) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    let mut ctxs = vec![make().await];
    report_lag(backend, lag(&ctxs[0], lag_write).await);
    for instances in [1, 4, 8] {
        while ctxs.len() < instances {
            ctxs.push(make().await);
        }
        let (db_rate, feed_rate) = throughput(&ctxs, write.clone()).await;
        println!(
            "{backend} throughput, {instances} instance(s) with a feed each: the database took \
             {db_rate:.0} single-row updates/s (4 writers); the slowest feed applied \
             {feed_rate:.0}/s, first write to caught up"
        );
    }
    ctxs
}

async fn postgres(url: &str) {
    let schema = format!("cached_bench_feed_{}", std::process::id());
    let admin = PgPool::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA_POSTGRES).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO stories VALUES (1, 'Bench', 'draft');
         INSERT INTO parts VALUES (1, 1, 'Part', 1);
         INSERT INTO chapters VALUES (1, 1, 1, 'Chapter', 1);
         INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count, version)
           SELECT g, 1, 1, 'draft', 'Scene ' || g, 100, 1 FROM generate_series(1, 200) g;
         CREATE TABLE scenes_plain AS SELECT * FROM scenes;
         ALTER TABLE scenes_plain ADD PRIMARY KEY (id);",
    )
    .execute(&pool)
    .await
    .unwrap();
    ChangeFeed::postgres(&pool, FeedSetup::Install)
        .await
        .unwrap();
    let outside = pool.clone();
    let writer = pool.clone();
    let instances = measure(
        "PostgreSQL",
        async || {
            let feed = ChangeFeed::postgres(&pool, FeedSetup::Verify)
                .await
                .unwrap();
            Context::builder(pool.clone()).change_feed(feed).build()
        },
        async |i| {
            sqlx::query("UPDATE scenes SET title = $1 WHERE id = 5")
                .bind(format!("t{i}"))
                .execute(&outside)
                .await
                .unwrap();
        },
        move |id, i| {
            let pool = writer.clone();
            async move {
                sqlx::query("UPDATE scenes SET word_count = $1 WHERE id = $2")
                    .bind(i)
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        },
    )
    .await;

    // The triggers' cost to every writer: the same UPDATE with and without them (with the 8
    // instances above listening).
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..2000_i64 {
        for triggered in [i % 2 == 0, i % 2 == 1] {
            let sql = match triggered {
                true => "UPDATE scenes SET word_count = $1 WHERE id = $2",
                false => "UPDATE scenes_plain SET word_count = $1 WHERE id = $2",
            };
            let started = Instant::now();
            sqlx::query(sql)
                .bind(i)
                .bind(1 + i % SCENES)
                .execute(&pool)
                .await
                .unwrap();
            match triggered {
                true => with.push(started.elapsed()),
                false => without.push(started.elapsed()),
            }
        }
    }
    with.sort();
    without.sort();
    let (a, b) = (percentile(&with, 0.5), percentile(&without, 0.5));
    println!(
        "PostgreSQL single-row UPDATE, median of 2,000 each, interleaved: {:.1} µs with the feed's \
         triggers vs {:.1} µs without: {:.2}x",
        a.as_secs_f64() * 1e6,
        b.as_secs_f64() * 1e6,
        a.as_secs_f64() / b.as_secs_f64()
    );
    drop(instances);
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}

async fn mysql(url: &str) {
    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
    use sqlx::MySqlPool;
    let name = format!("cached_bench_feed_{}", std::process::id());
    let admin = MySqlPool::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let options = MySqlConnectOptions::from_str(url).unwrap().database(&name);
    let pool = MySqlPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA_MYSQL).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO stories VALUES (1, 'Bench', 'draft');
         INSERT INTO parts VALUES (1, 1, 'Part', 1);
         INSERT INTO chapters VALUES (1, 1, 1, 'Chapter', 1);
         INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count, version)
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
           SELECT i, 1, 1, 'draft', CONCAT('Scene ', i), 100, 1 FROM n;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let outside = pool.clone();
    let writer = pool.clone();
    let _instances = measure(
        "MariaDB",
        async || {
            let feed = ChangeFeed::mysql(&pool, url).await.unwrap();
            Context::builder(pool.clone()).change_feed(feed).build()
        },
        async |i| {
            sqlx::query("UPDATE scenes SET title = ? WHERE id = 5")
                .bind(format!("t{i}"))
                .execute(&outside)
                .await
                .unwrap();
        },
        move |id, i| {
            let pool = writer.clone();
            async move {
                sqlx::query("UPDATE scenes SET word_count = ? WHERE id = ?")
                    .bind(i)
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        },
    )
    .await;
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
}

async fn mongo(url: &str) {
    let client = mongodb::Client::with_uri_str(url).await.unwrap();
    let db = client.database(&format!("cached_bench_feed_{}", std::process::id()));
    let scenes = db.collection::<mongodb::bson::Document>("scenes");
    let docs: Vec<_> = (1..=SCENES)
        .map(|id| {
            doc! { "_id": id, "chapter_id": 1_i64, "story_id": 1_i64, "location_id": null,
            "status": "draft", "title": format!("Scene {id}"), "word_count": 100_i64,
            "version": 1_i64 }
        })
        .collect();
    scenes.insert_many(docs).await.unwrap();
    ChangeFeed::mongo(&db, FeedSetup::Install).await.unwrap();
    let outside = scenes.clone();
    let writer = scenes.clone();
    let _instances = measure(
        "MongoDB (SecantusDB)",
        async || {
            let feed = ChangeFeed::mongo(&db, FeedSetup::Verify).await.unwrap();
            Context::builder(db.clone()).change_feed(feed).build()
        },
        async |i| {
            outside
                .update_one(
                    doc! { "_id": 5_i64 },
                    doc! { "$set": { "title": format!("t{i}") } },
                )
                .await
                .unwrap();
        },
        move |id, i| {
            let scenes = writer.clone();
            async move {
                scenes
                    .update_one(doc! { "_id": id }, doc! { "$set": { "word_count": i } })
                    .await
                    .unwrap();
            }
        },
    )
    .await;
    db.drop().await.unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this too: only bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match std::env::var("CACHED_POSTGRES_URL") {
        Ok(url) => rt.block_on(postgres(&url)),
        Err(_) => {
            eprintln!("\n*** SKIPPED: PostgreSQL feed benchmarks (set CACHED_POSTGRES_URL) ***\n")
        }
    }
    match std::env::var("CACHED_MYSQL_URL") {
        Ok(url) => rt.block_on(mysql(&url)),
        Err(_) => eprintln!("\n*** SKIPPED: MariaDB feed benchmarks (set CACHED_MYSQL_URL) ***\n"),
    }
    match std::env::var("CACHED_MONGODB_URL") {
        Ok(url) => rt.block_on(mongo(&url)),
        Err(_) => {
            eprintln!("\n*** SKIPPED: MongoDB feed benchmarks (set CACHED_MONGODB_URL) ***\n")
        }
    }
}
