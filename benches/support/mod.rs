//! What the benchmarks share: a runtime, a file-backed SQLite studio database, and a small
//! view over one scene.

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

use cached_runtime::prelude::*;

use crate::domain::{Scene, SCHEMA_SQLITE};

/// A view that reads one scene (one row key), like a typical item page.
#[allow(dead_code)] // not every benchmark caches views
#[derive(CachedView, Clone)]
#[view(key = "Scene")]
pub struct SceneCard {
    pub title: String,
}

impl LoadView for SceneCard {
    async fn load(ctx: &mut ViewCtx<'_, Self>, id: i64) -> Result<Option<Self>> {
        let scene = ctx.get::<Scene>(id).await?;
        Ok(scene.map(|s| SceneCard {
            title: s.title.clone(),
        }))
    }
}

/// The parents every benchmark's scenes hang from: story 1, part 1, chapter 1 (plain SQL,
/// the same on every SQL backend).
#[allow(dead_code)] // not every benchmark seeds a SQL database
pub const PARENTS: &str = "INSERT INTO stories VALUES (1, 'Bench', 'draft');
     INSERT INTO parts VALUES (1, 1, 'Part', 1);
     INSERT INTO chapters VALUES (1, 1, 1, 'Chapter', 1);";

/// A current-thread runtime: the benchmarks measure one task's latency.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A studio database in `dir` with story 1, part 1, chapter 1 and `scenes` draft scenes.
#[allow(dead_code)] // the server benchmarks bring their own database
pub async fn database(dir: &tempfile::TempDir, scenes: i64) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("bench.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .expect("open");
    sqlx::raw_sql(SCHEMA_SQLITE)
        .execute(&pool)
        .await
        .expect("schema");
    sqlx::raw_sql(PARENTS)
        .execute(&pool)
        .await
        .expect("parents");
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO scenes (id, chapter_id, story_id, location_id, status, title, word_count)
         SELECT i, 1, 1, NULL, 'draft', 'Scene ' || i, 100 FROM n",
    )
    .bind(scenes)
    .execute(&pool)
    .await
    .expect("scenes");
    pool
}

/// Benchmarks variants that run in rotating order in every iteration, so that drift on the
/// machine hits them alike; the benchmark named `labels[k]` times variant `k` only.
#[allow(dead_code)] // not every benchmark compares variants
pub fn rotating<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    labels: &[&str],
    run: F,
) where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let n = labels.len();
    for (timed, label) in labels.iter().enumerate() {
        group.bench_function(*label, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let run = &run;
                async move {
                    let mut total = Duration::ZERO;
                    for i in 0..iters as usize {
                        for turn in 0..n {
                            let variant = (i + turn) % n;
                            let started = Instant::now();
                            run(variant).await;
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
}

/// Not a cache: 64 shards of a std `RwLock<HashMap>`, with no eviction policy and no TTL. The
/// floor a map of the crate's own could start from, which `benches/cache.rs` and
/// `benches/memory.rs` measure next to moka in one run (a real one would add a recency mark per
/// hit and the eviction it feeds).
#[allow(dead_code)] // each benchmark uses part of it
pub struct ShardedMap<V> {
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<std::sync::RwLock<std::collections::HashMap<i64, V>>>,
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        ShardedMap {
            hasher: Default::default(),
            shards: (0..64).map(|_| Default::default()).collect(),
        }
    }
}

#[allow(dead_code)]
impl<V: Clone> ShardedMap<V> {
    fn shard(&self, key: i64) -> &std::sync::RwLock<std::collections::HashMap<i64, V>> {
        use std::hash::BuildHasher;
        &self.shards[self.hasher.hash_one(key) as usize % self.shards.len()]
    }

    pub fn insert(&self, key: i64, value: V) {
        self.shard(key).write().unwrap().insert(key, value);
    }

    pub fn get(&self, key: i64) -> Option<V> {
        self.shard(key).read().unwrap().get(&key).cloned()
    }

    pub fn remove(&self, key: i64) -> Option<V> {
        self.shard(key).write().unwrap().remove(&key)
    }
}

/// A global allocator that counts the bytes allocated and not yet freed ([`LIVE`]): a memory
/// benchmark declares `#[global_allocator] static A: support::Counting = support::Counting;`.
#[allow(dead_code)] // only the memory benchmarks install it
pub struct Counting;

/// The bytes allocated through [`Counting`] and not yet freed.
#[allow(dead_code)]
pub static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

/// A fresh PostgreSQL schema `schema` on the server at `url`, and a pool whose connections
/// use it (`search_path`). Drop it with [`drop_pg_schema`].
#[allow(dead_code)] // only the PostgreSQL benchmarks
pub async fn pg_schema(url: &str, schema: &str) -> sqlx::PgPool {
    use sqlx::Executor as _;
    use std::str::FromStr as _;
    let admin = sqlx::PgPool::connect(url).await.expect("connect");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .expect("create schema");
    admin.close().await;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .expect("url")
        .options([("search_path", schema)]);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("connect")
}

/// [`pg_schema`] with the studio's tables (`schema_sql`, the domain's `SCHEMA_POSTGRES`) and
/// story 1, part 1, chapter 1 in it.
#[allow(dead_code)] // only the PostgreSQL benchmarks
pub async fn pg_studio(url: &str, schema: &str, schema_sql: &'static str) -> sqlx::PgPool {
    let pool = pg_schema(url, schema).await;
    sqlx::raw_sql(schema_sql)
        .execute(&pool)
        .await
        .expect("the studio's tables");
    sqlx::raw_sql(PARENTS)
        .execute(&pool)
        .await
        .expect("parents");
    pool
}

/// Drops a schema made by [`pg_schema`].
#[allow(dead_code)]
pub async fn drop_pg_schema(url: &str, schema: &str) {
    use sqlx::Executor as _;
    let admin = sqlx::PgPool::connect(url).await.expect("connect");
    let _ = admin
        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await;
}
