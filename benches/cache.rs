//! Side-by-side benchmarks, each group comparing the cached repository with the closest raw
//! alternative measured in the same run:
//!
//! - `hit`: `Scene::repo(&ctx).get(id)` on a cached row vs a bare `moka::future::Cache::get`
//!   (and `moka::sync::Cache::get`) of the same `Arc<Scene>`;
//! - `miss`: a repository miss (load + fill) vs a raw sqlx point select;
//! - `update`: a cached `update` through a transaction vs the same raw sqlx `UPDATE` in a
//!   transaction, on file-backed SQLite;
//! - `invalidate`: dropping one row key with 10^3 vs 10^6 entries cached;
//! - `hit/view_get`: a cached view (`StoryOutline`) next to the row hits;
//! - `invalidate_view`: a change to a row that one cached view instance read (found through
//!   the dependency index, then dropped) with 10 vs 10^5 instances cached.
//!
//! - `postgres_*` / `mysql_*` (when `CACHED_POSTGRES_URL` / `CACHED_MYSQL_URL` are set): a cached
//!   hit vs a raw sqlx point select, and a cached update vs the same raw update in a
//!   transaction, plain and returning the row (`RETURNING`, or a read-back on MySQL), on the
//!   server.
//!
//! Run with `cargo bench --bench cache`; the ratios are what to read, not the absolute times.

#[path = "../examples/studio/domain.rs"]
mod domain;
mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_runtime::prelude::*;
use cached_runtime::ViewKey;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use domain::*;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, SqlitePool};
use std::str::FromStr;
use support::SceneCard;

/// Rows as an application without the cache would decode them (`sqlx::FromRow`, written out
/// as its derive would write it, so that the workspace builds no sqlx proc macro): the
/// baseline of the raw-query benchmarks.
#[allow(dead_code)] // read only through `black_box`
struct RawScene {
    id: i64,
    chapter_id: i64,
    story_id: i64,
    location_id: Option<i64>,
    status: String,
    title: String,
    word_count: i64,
    version: i64,
}

impl<'r, R> sqlx::FromRow<'r, R> for RawScene
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        Ok(RawScene {
            id: row.try_get("id")?,
            chapter_id: row.try_get("chapter_id")?,
            story_id: row.try_get("story_id")?,
            location_id: row.try_get("location_id")?,
            status: row.try_get("status")?,
            title: row.try_get("title")?,
            word_count: row.try_get("word_count")?,
            version: row.try_get("version")?,
        })
    }
}

/// See [`RawScene`]; `traits` is JSON text (`#[sqlx(json)]`).
#[allow(dead_code)] // read only through `black_box`
struct RawCharacter {
    id: i64,
    story_id: i64,
    name: String,
    role: String,
    traits: Vec<String>,
}

impl<'r, R> sqlx::FromRow<'r, R> for RawCharacter
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    sqlx::types::Json<Vec<String>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        Ok(RawCharacter {
            id: row.try_get("id")?,
            story_id: row.try_get("story_id")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            traits: row
                .try_get::<sqlx::types::Json<Vec<String>>, _>("traits")?
                .0,
        })
    }
}

fn hit(c: &mut Criterion) {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let ctx = rt.block_on(async {
        let ctx = Context::new(support::database(&dir, 10).await);
        Scene::repo(&ctx).get(1).await.unwrap();
        Character::repo(&ctx)
            .insert(&Character {
                id: 1,
                story_id: 1,
                name: "Mara".into(),
                role: "keeper".into(),
                traits: Vec::new(),
            })
            .await
            .unwrap();
        ctx
    });
    let row = rt.block_on(Scene::repo(&ctx).get(1)).unwrap().unwrap();
    let future_cache: moka::future::Cache<i64, Arc<Scene>> = moka::future::Cache::new(100_000);
    let sync_cache: moka::sync::Cache<i64, Arc<Scene>> = moka::sync::Cache::new(100_000);
    rt.block_on(future_cache.insert(1, row.clone()));
    sync_cache.insert(1, row.clone());
    let own_map = support::ShardedMap::default();
    own_map.insert(1, row);

    // What a caller's future embeds for one `get` (moved into every `block_on`, and into the
    // state of every async fn that awaits it).
    println!(
        "future sizes: repository get {} bytes, get_many {}, find_by_status {}, \
         count_by_status {}, view get {} bytes, moka::future get {} bytes",
        std::mem::size_of_val(&Character::repo(&ctx).get(1)),
        std::mem::size_of_val(&Scene::repo(&ctx).get_many(&[1, 2])),
        std::mem::size_of_val(&Scene::repo(&ctx).find_by_status("draft")),
        std::mem::size_of_val(&Scene::repo(&ctx).count_by_status("draft")),
        std::mem::size_of_val(&StoryOutline::get(&ctx, 1)),
        std::mem::size_of_val(&future_cache.get(&1)),
    );
    let mut group = c.benchmark_group("hit");
    // `Scene` has `ttl = 60`: moka checks its expiry on every read.
    group.bench_function("repository_get_ttl", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(Scene::repo(&ctx).get(black_box(1)).await.unwrap()) })
    });
    // `Character` has no TTL (invalidation alone keeps it fresh).
    group.bench_function("repository_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(Character::repo(&ctx).get(black_box(1)).await.unwrap()) })
    });
    rt.block_on(StoryOutline::get(&ctx, 1)).unwrap().unwrap();
    // A view spanning 10 scenes of 1 chapter: a hit is one cache lookup, like a row.
    group.bench_function("view_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(StoryOutline::get(&ctx, black_box(1)).await.unwrap()) })
    });
    group.bench_function("moka_future_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(future_cache.get(&black_box(1)).await) })
    });
    group.bench_function("moka_sync_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(sync_cache.get(&black_box(1))) })
    });
    group.finish();

    // The same reads, 100 to a future: what a hit costs inside a caller's async fn, without
    // the runtime's `block_on` around each one.
    const READS: u64 = 100;
    let mut group = c.benchmark_group("hit_x100");
    group.throughput(criterion::Throughput::Elements(READS));
    group.bench_function("repository_get", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..READS {
                black_box(Character::repo(&ctx).get(black_box(1)).await.unwrap());
            }
        })
    });
    group.bench_function("view_get", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..READS {
                black_box(StoryOutline::get(&ctx, black_box(1)).await.unwrap());
            }
        })
    });
    group.bench_function("moka_future_get", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..READS {
                black_box(future_cache.get(&black_box(1)).await);
            }
        })
    });
    group.bench_function("moka_sync_get", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..READS {
                black_box(sync_cache.get(&black_box(1)));
            }
        })
    });
    group.bench_function("sharded_map_get", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..READS {
                black_box(own_map.get(black_box(1)));
            }
        })
    });
    group.finish();
}

/// The hit path with operations switched on, side by side with the plain one and a bare moka
/// get: a context warming `Character` (its hits are counted), and, once a Prometheus recorder
/// is installed (it stays for the rest of the process: this group runs last), the plain
/// context again.
fn hit_observed(c: &mut Criterion) {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let character = Character {
        id: 1,
        story_id: 1,
        name: "Mara".into(),
        role: "keeper".into(),
        traits: Vec::new(),
    };
    let (ctx, warming) = rt.block_on(async {
        let store = support::database(&dir, 10).await;
        let ctx = Context::new(store.clone());
        Character::repo(&ctx).insert(&character).await.unwrap();
        let warming = Context::builder(store).warm::<Character>().build();
        Character::repo(&warming).get(1).await.unwrap();
        Character::repo(&ctx).get(1).await.unwrap();
        (ctx, warming)
    });
    let row = rt.block_on(Character::repo(&ctx).get(1)).unwrap().unwrap();
    let future_cache: moka::future::Cache<i64, Arc<Character>> = moka::future::Cache::new(100_000);
    rt.block_on(future_cache.insert(1, row));

    let mut group = c.benchmark_group("hit_observed");
    group.bench_function("moka_future_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(future_cache.get(&black_box(1)).await) })
    });
    group.bench_function("repository_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(Character::repo(&ctx).get(black_box(1)).await.unwrap()) })
    });
    group.bench_function("repository_get_warmed", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(Character::repo(&warming).get(black_box(1)).await.unwrap())
        })
    });
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this process");
    group.bench_function("repository_get_prometheus_installed", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(Character::repo(&ctx).get(black_box(1)).await.unwrap()) })
    });
    group.finish();
    ctx.record_metrics();
    assert!(prometheus.render().contains("cached_hits_total"));
}

fn miss(c: &mut Criterion) {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let pool = rt.block_on(support::database(&dir, 1000));
    let ctx = Context::new(pool.clone());
    let mut group = c.benchmark_group("miss");
    group.bench_function("repository_get_miss", |b| {
        b.to_async(&rt).iter(|| async {
            ctx.invalidate::<Scene>(7);
            black_box(Scene::repo(&ctx).get(7).await.unwrap())
        })
    });
    group.bench_function("raw_sqlx_select", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                sqlx::query_as::<_, RawScene>(
                    "SELECT id, chapter_id, story_id, location_id, status, title, word_count, version \
                     FROM scenes WHERE id = ?",
                )
                .bind(7i64)
                .fetch_optional(&pool)
                .await
                .unwrap(),
            )
        })
    });
    group.finish();
}

/// Which row an update benchmark writes: a scene (read by three views, one through a chain
/// that costs a `SELECT` at commit) or a character (read by no view).
#[derive(Clone, Copy)]
enum Target {
    Scene,
    Character,
}

async fn cached_update(ctx: &Context, target: Target, text: String) {
    let mut tx = ctx.begin().await.unwrap();
    match target {
        Target::Scene => {
            Scene::repo(&mut tx)
                .update(5, SceneUpdate::default().title(text))
                .await
                .unwrap();
        }
        Target::Character => {
            Character::repo(&mut tx)
                .update(1, CharacterUpdate::default().role(text))
                .await
                .unwrap();
        }
    }
    black_box(tx.commit().await.unwrap());
}

async fn raw_update(pool: &SqlitePool, target: Target, text: String) {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let sql = match target {
        Target::Scene => "UPDATE scenes SET title = ? WHERE id = ?",
        Target::Character => "UPDATE characters SET role = ? WHERE id = ?",
    };
    let id = match target {
        Target::Scene => 5i64,
        Target::Character => 1,
    };
    sqlx::query(sql)
        .bind(text)
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Both variants run the same mix of cached and raw updates, alternating which goes first;
/// only which one is timed differs. (Timing them one after the other measured the order, not
/// the code: the second group was 10-20% slower either way round as the WAL grew.)
fn update(c: &mut Criterion) {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let pool = rt.block_on(support::database(&dir, 1000));
    rt.block_on(
        sqlx::query("INSERT INTO characters VALUES (1, 1, 'Mara', 'keeper', '[]')").execute(&pool),
    )
    .unwrap();
    let ctx = Context::new(pool.clone());
    rt.block_on(Scene::repo(&ctx).get(5)).unwrap();
    let n = AtomicI64::new(0);
    let text = || format!("t{}", n.fetch_add(1, Ordering::Relaxed));
    let mut group = c.benchmark_group("update");
    group.measurement_time(Duration::from_secs(10));
    for (target, label) in [(Target::Scene, "scene"), (Target::Character, "character")] {
        for timed_cached in [true, false] {
            let kind = if timed_cached { "cached" } else { "raw_sqlx" };
            group.bench_function(format!("{label}_{kind}_in_tx"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (ctx, pool, text) = (&ctx, &pool, &text);
                    async move {
                        let mut timed = Duration::ZERO;
                        for i in 0..iters {
                            // Alternate which goes first, so neither always follows the other.
                            for cached_turn in [i % 2 == 0, i % 2 == 1] {
                                let started = Instant::now();
                                if cached_turn {
                                    cached_update(ctx, target, text()).await;
                                } else {
                                    raw_update(pool, target, text()).await;
                                }
                                if cached_turn == timed_cached {
                                    timed += started.elapsed();
                                }
                            }
                        }
                        timed
                    }
                })
            });
        }
    }
    group.finish();
}

fn invalidate(c: &mut Criterion) {
    let rt = support::runtime();
    let mut group = c.benchmark_group("invalidate");
    for cached in [1_000i64, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let pool = rt.block_on(support::database(&dir, cached));
        let ctx = Context::builder(pool).max_entries(2_000_000).build();
        rt.block_on(async {
            let ids: Vec<i64> = (1..=cached).collect();
            for chunk in ids.chunks(10_000) {
                ctx.preload::<Scene>(chunk.iter().copied()).await.unwrap();
            }
        });
        assert!(
            ctx.entry_count() >= cached as u64,
            "the cache holds {cached} rows"
        );
        let next = AtomicI64::new(0);
        group.bench_with_input(
            BenchmarkId::new("one_row", cached),
            &cached,
            |b, &cached| {
                // Untimed setup makes sure the key is cached, so every timed call drops a present
                // entry.
                b.iter_batched(
                    || {
                        let id = next.fetch_add(1, Ordering::Relaxed) % cached + 1;
                        rt.block_on(Scene::repo(&ctx).get(id)).unwrap();
                        id
                    },
                    |id| black_box(ctx.invalidate_key(SceneKey(id))),
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

/// The same measurement on a bare `moka::sync::Cache<i64, Arc<Scene>>`: how much of the growth
/// with the cache size is moka's own (memory hierarchy), not the invalidation logic's. Also
/// with an eviction listener, which the cache ran until it swept its indexes instead: moka then
/// removes under a per-key lock and calls the listener in the caller's thread (what that
/// costs, next to the floor).
fn invalidate_bare_moka(c: &mut Criterion) {
    let mut group = c.benchmark_group("invalidate_bare_moka");
    let row = Arc::new(domain_scene());
    let given_back = Arc::new(AtomicI64::new(0));
    for cached in [1_000i64, 1_000_000] {
        let bare = moka::sync::Cache::new(2_000_000);
        let counted = given_back.clone();
        let listened = moka::sync::Cache::builder()
            .max_capacity(2_000_000)
            .eviction_listener(move |_key, _row, _cause| {
                counted.fetch_sub(1, Ordering::Relaxed);
            })
            .build();
        for (name, cache) in [("one_entry", bare), ("one_entry_listened", listened)] {
            let insert = |id| cache.insert(id, row.clone());
            remove_one(&mut group, name, cached, insert, |id| cache.invalidate(&id));
        }
        // The same on the sharded map of `hit_x100` (no eviction policy, no TTL).
        let own = support::ShardedMap::default();
        let insert = |id| own.insert(id, row.clone());
        remove_one(&mut group, "one_entry_sharded_map", cached, insert, |id| {
            own.remove(id);
        });
    }
    black_box(given_back.load(Ordering::Relaxed));
    group.finish();
}

/// Fills keys `1..=cached` with `insert`, then times `remove` of one present key per
/// iteration (the key put back, untimed, before each).
fn remove_one(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    cached: i64,
    insert: impl Fn(i64),
    remove: impl Fn(i64),
) {
    for id in 1..=cached {
        insert(id);
    }
    let next = AtomicI64::new(0);
    group.bench_with_input(BenchmarkId::new(name, cached), &cached, |b, &cached| {
        b.iter_batched(
            || {
                let id = next.fetch_add(1, Ordering::Relaxed) % cached + 1;
                insert(id);
                id
            },
            &remove,
            BatchSize::PerIteration,
        )
    });
}

fn domain_scene() -> Scene {
    Scene {
        id: 1,
        chapter_id: 1,
        story_id: 1,
        location_id: None,
        status: "draft".into(),
        title: "Scene 1".into(),
        word_count: 100,
        version: 1,
    }
}

fn invalidate_view(c: &mut Criterion) {
    let rt = support::runtime();
    let mut group = c.benchmark_group("invalidate_view");
    for cached in [10i64, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let pool = rt.block_on(support::database(&dir, cached));
        let ctx = Context::builder(pool).max_entries(1_000_000).build();
        rt.block_on(async {
            for id in 1..=cached {
                SceneCard::get(&ctx, id).await.unwrap().unwrap();
            }
        });
        let next = AtomicI64::new(0);
        group.bench_with_input(
            BenchmarkId::new("row_read_by_one_instance", cached),
            &cached,
            |b, &cached| {
                b.iter_batched(
                    || {
                        let id = next.fetch_add(1, Ordering::Relaxed) % cached + 1;
                        rt.block_on(SceneCard::get(&ctx, id)).unwrap();
                        id
                    },
                    |id| {
                        let report = ctx.invalidate::<Scene>(id);
                        debug_assert!(report.contains(&ViewKey::<SceneCard>::new(id).into()));
                        black_box(report)
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

/// The server a server benchmark runs on, from the same variables the tests read.
fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("note: {var} is unset; skipping its benchmarks");
            None
        }
    }
}

/// Cached hit vs raw point select, and cached vs raw update in a transaction, on a server.
macro_rules! server_benches {
    ($fn_name:ident, $var:literal, $label:literal, $pool:ty, $opts:ty, $pool_opts:ty,
     $schema:expr, $create:literal, $drop:literal, $select:literal, $update:literal,
     $update_returning:literal, $read_back:expr, $configure:expr) => {
        fn $fn_name(c: &mut Criterion) {
            let Some(url) = server_url($var) else { return };
            let rt = support::runtime();
            let name = format!("bench_{}", std::process::id());
            let pool: $pool = rt.block_on(async {
                let admin = <$pool>::connect(&url).await.expect("connect");
                admin
                    .execute(sqlx::AssertSqlSafe(format!($create, name)))
                    .await
                    .expect("create");
                let options = $configure(<$opts>::from_str(&url).expect("url"), &name);
                let pool = <$pool_opts>::new()
                    .max_connections(4)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .expect("connect");
                sqlx::raw_sql($schema).execute(&pool).await.expect("schema");
                sqlx::raw_sql(support::PARENTS).execute(&pool).await.expect("parents");
                sqlx::raw_sql(
                    "INSERT INTO characters VALUES (1, 1, 'Mara', 'keeper', '[]');
                     INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count)
                     VALUES (5, 1, 1, 'draft', 'Scene 5', 100);",
                )
                .execute(&pool)
                .await
                .expect("rows");
                pool
            });
            let ctx = Context::new(pool.clone());
            rt.block_on(Character::repo(&ctx).get(1)).unwrap().unwrap();
            let mut group = c.benchmark_group(concat!($label, "_read"));
            group.bench_function("cached_hit", |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(Character::repo(&ctx).get(black_box(1)).await.unwrap()) })
            });
            group.bench_function("raw_sqlx_point_select", |b| {
                b.to_async(&rt).iter(|| async {
                    black_box(
                        sqlx::query_as::<_, RawCharacter>($select)
                            .bind(1i64)
                            .fetch_optional(&pool)
                            .await
                            .unwrap(),
                    )
                })
            });
            group.finish();

            let n = AtomicI64::new(0);
            let text = || format!("t{}", n.fetch_add(1, Ordering::Relaxed));
            let mut group = c.benchmark_group(concat!($label, "_update"));
            group.measurement_time(Duration::from_secs(10));
            // Three variants, run in rotating order in every iteration; each benchmark times one.
            for (timed, name) in ["cached_in_tx", "raw_sqlx_in_tx", "raw_sqlx_returning_in_tx"]
                .into_iter()
                .enumerate()
            {
                group.bench_function(name, |b| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let (ctx, pool, text) = (&ctx, &pool, &text);
                        async move {
                            let mut total = Duration::ZERO;
                            for i in 0..iters as usize {
                                for turn in 0..3 {
                                    let variant = (i + turn) % 3;
                                    let started = Instant::now();
                                    if variant == 0 {
                                        let mut tx = ctx.begin().await.unwrap();
                                        Character::repo(&mut tx)
                                            .update(1, CharacterUpdate::default().role(text()))
                                            .await
                                            .unwrap();
                                        black_box(tx.commit().await.unwrap());
                                    } else {
                                        let sql = if variant == 1 { $update } else { $update_returning };
                                        let mut tx = pool.begin().await.unwrap();
                                        sqlx::query(sql)
                                            .bind(text())
                                            .bind(1i64)
                                            .fetch_optional(&mut *tx)
                                            .await
                                            .unwrap();
                                        let read_back: Option<&str> = $read_back;
                                        if let (2, Some(select)) = (variant, read_back) {
                                            sqlx::query(select)
                                                .bind(1i64)
                                                .fetch_optional(&mut *tx)
                                                .await
                                                .unwrap();
                                        }
                                        tx.commit().await.unwrap();
                                    }
                                    if variant == timed {
                                        total += started.elapsed();
                                    }
                                }
                            }
                            total
                        }
                    })
                });
            }
            group.finish();
            rt.block_on(async {
                pool.close().await;
                let admin = <$pool>::connect(&url).await.expect("connect");
                let _ = admin.execute(sqlx::AssertSqlSafe(format!($drop, name))).await;
            });
        }
    };
}

server_benches!(
    postgres,
    "CACHED_POSTGRES_URL",
    "postgres",
    sqlx::PgPool,
    PgConnectOptions,
    PgPoolOptions,
    SCHEMA_POSTGRES,
    "CREATE SCHEMA {}",
    "DROP SCHEMA {} CASCADE",
    "SELECT id, story_id, name, role, traits FROM characters WHERE id = $1",
    "UPDATE characters SET role = $1 WHERE id = $2",
    "UPDATE characters SET role = $1 WHERE id = $2 RETURNING id, story_id, name, role, traits",
    None,
    |o: PgConnectOptions, name: &str| o.options([("search_path", name)])
);

server_benches!(
    mysql,
    "CACHED_MYSQL_URL",
    "mysql",
    sqlx::MySqlPool,
    MySqlConnectOptions,
    MySqlPoolOptions,
    SCHEMA_MYSQL,
    "CREATE DATABASE {}",
    "DROP DATABASE {}",
    "SELECT id, story_id, name, role, traits FROM characters WHERE id = ?",
    "UPDATE characters SET role = ? WHERE id = ?",
    // No RETURNING on UPDATE: the store reads the row back, and so does this variant.
    "UPDATE characters SET role = ? WHERE id = ?",
    Some("SELECT id, story_id, name, role, traits FROM characters WHERE id = ?"),
    |o: MySqlConnectOptions, name: &str| o.database(name)
);

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1));
    targets = hit, miss, update, invalidate, invalidate_bare_moka, invalidate_view, postgres, mysql,
        hit_observed
}
criterion_main!(benches);
