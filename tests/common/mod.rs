//! Shared test fixtures: the studio domain on a fresh database of any backend.
//!
//! SQLite always runs (a file in a temporary directory). PostgreSQL and MySQL/MariaDB run when
//! `CACHED_POSTGRES_URL` / `CACHED_MYSQL_URL` are set, MongoDB when `CACHED_MONGODB_URL` is
//! (a replica set: transactions need one); each test gets its own schema (or database),
//! dropped afterwards, so tests run in parallel. When a URL is unset the test
//! prints a loud SKIPPED line and passes, unless `CACHED_REQUIRE_SERVICES=1`, which turns a
//! missing or unreachable server into a failure (CI sets it).
#![allow(dead_code)]

pub mod child;
#[path = "../../examples/studio/domain.rs"]
pub mod domain;
pub mod model;
#[path = "../../examples/studio/mongo.rs"]
pub mod mongo;
pub mod redis_users;
pub mod torture;

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cached_runtime::{Context, ContextBuilder, RawStore, Store};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Executor, MySqlPool, PgPool};

use domain::*;

/// Pairs of spellings that a supported collation calls equal beyond case (PostgreSQL ICU at
/// level 2, MariaDB `utf8mb4_general_ci`), which a fold finer than the collation keeps apart.
pub const EQUAL_BEYOND_CASE: [(&str, &str); 12] = [
    ("x2", "x²"),
    ("a", "ª"),
    ("kg", "㎏"),
    ("1", "①"),
    ("かな", "カナ"),
    ("gog", "ǧog"),
    ("u", "ǖ"),
    ("w", "ẁ"),
    ("n", "ǹ"),
    ("strasse", "straße"),
    ("jose", "JOSÉ"),
    ("ab", "a\u{00AD}b"),
];

/// The backends the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
    Mongo,
}

impl Backend {
    fn url_var(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "CACHED_POSTGRES_URL",
            Backend::MySql => "CACHED_MYSQL_URL",
            Backend::Mongo => "CACHED_MONGODB_URL",
        }
    }

    /// Whether this is the MongoDB store (no SQL, no foreign keys).
    pub fn is_mongo(self) -> bool {
        self == Backend::Mongo
    }

    /// The server URL, or `None` (after printing SKIPPED) when the test should not run.
    fn url(self) -> Option<String> {
        let example = match self {
            Backend::Postgres => "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
            Backend::Mongo => "mongodb://127.0.0.1:27017/?directConnection=true",
            _ => "mysql://root@127.0.0.1:3306/test",
        };
        service_url(&format!("{self:?}"), self.url_var(), example)
    }
}

/// The URL in `var`, or `None` (after printing SKIPPED) when it is unset; with
/// `CACHED_REQUIRE_SERVICES=1`, an unset URL fails the test instead.
pub fn service_url(service: &str, var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CACHED_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{var} is not set, and CACHED_REQUIRE_SERVICES=1 requires the {service} server")
        }
        _ => {
            eprintln!("\n*** SKIPPED: {service} test (set {var} to run it, e.g. {example}) ***\n");
            None
        }
    }
}

/// Runs each test body on every backend: `mod sqlite`, `mod postgres`, `mod mysql`, `mod mongo`, one test
/// function each. The body gets `backend: Backend`.
#[macro_export]
macro_rules! backend_tests {
    ($( #[$attr:meta] async fn $name:ident($backend:ident) $body:block )*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $( #[$attr] async fn $name() { let $backend = $crate::common::Backend::Sqlite; $body } )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $( #[$attr] async fn $name() { let $backend = $crate::common::Backend::Postgres; $body } )*
        }
        mod mysql {
            #[allow(unused_imports)]
            use super::*;
            $( #[$attr] async fn $name() { let $backend = $crate::common::Backend::MySql; $body } )*
        }
        mod mongo {
            #[allow(unused_imports)]
            use super::*;
            $( #[$attr] async fn $name() { let $backend = $crate::common::Backend::Mongo; $body } )*
        }
    };
}

/// A fresh context on a seeded database, or return from the test when the backend is skipped.
#[macro_export]
macro_rules! seeded {
    ($backend:expr) => {
        $crate::seeded!($backend, |b| b)
    };
    ($backend:expr, $configure:expr) => {
        match $crate::common::seeded_with($backend, $configure).await {
            Some(pair) => pair,
            None => return,
        }
    };
}

/// A database for one test. Dropping it drops its schema (PostgreSQL) or database (MySQL).
pub struct TestDb {
    pub backend: Backend,
    pub store: Store,
    cleanup: Option<(Backend, String, String)>,
    _dir: Option<tempfile::TempDir>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "cached_t{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh schema (PostgreSQL) or database (MySQL) on a server, with the studio tables.
macro_rules! server_db {
    ($backend:expr, $connections:expr, $pool:ty, $options:ty, $pool_options:ty,
     $create:literal, $schema:expr, $select:expr) => {{
        let url = $backend.url()?;
        sweep_leftovers($backend, &url).await;
        let name = unique_name();
        let admin = <$pool>::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the {:?} server at {url}: {e}", $backend));
        admin
            .execute(sqlx::AssertSqlSafe(format!($create, name)))
            .await
            .expect("create the test schema");
        admin.close().await;
        let options = $select(<$options>::from_str(&url).expect("server url"), &name);
        let pool = <$pool_options>::new()
            .max_connections($connections)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .expect("connect");
        sqlx::raw_sql($schema).execute(&pool).await.expect("schema");
        Some(TestDb {
            backend: $backend,
            store: pool.into(),
            cleanup: Some(($backend, url, name)),
            _dir: None,
        })
    }};
}

/// The DDL of a test's own tables: `[SQLite, PostgreSQL, MySQL]` (MongoDB needs none).
pub type Tables = [&'static str; 3];

/// A fresh database (see [`database`]) that also has the test's own `tables`, and a context
/// built by `configure`. On PostgreSQL the case-insensitive ICU collation `public.ci` exists
/// before the tables are created, for tables that use it.
pub async fn database_with(
    backend: Backend,
    connections: u32,
    tables: Tables,
    configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> Option<(Context, TestDb)> {
    let db = database(backend, connections).await?;
    let [sqlite, postgres, mysql] = tables;
    match backend {
        Backend::Sqlite => db.execute(sqlite).await,
        Backend::Postgres => {
            // Once per database, shared by concurrent tests: a lost race is harmless.
            let _ = db
                .try_execute(
                    "CREATE COLLATION IF NOT EXISTS public.ci \
                     (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
                )
                .await;
            db.execute(postgres).await;
        }
        Backend::MySql => db.execute(mysql).await,
        Backend::Mongo => {}
    }
    let ctx = configure(Context::builder(db.store.clone())).build();
    Some((ctx, db))
}

/// A fresh empty database with the studio schema, with a pool of `connections`.
pub async fn database(backend: Backend, connections: u32) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("test.db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(connections)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .expect("open sqlite");
            sqlx::raw_sql(SCHEMA_SQLITE)
                .execute(&pool)
                .await
                .expect("schema");
            Some(TestDb {
                backend,
                store: pool.into(),
                cleanup: None,
                _dir: Some(dir),
            })
        }
        Backend::Postgres => {
            server_db!(
                backend,
                connections,
                PgPool,
                PgConnectOptions,
                PgPoolOptions,
                "CREATE SCHEMA {}",
                SCHEMA_POSTGRES,
                |o: PgConnectOptions, name: &str| o.options([("search_path", name)])
            )
        }
        Backend::MySql => {
            server_db!(
                backend,
                connections,
                MySqlPool,
                MySqlConnectOptions,
                MySqlPoolOptions,
                "CREATE DATABASE {}",
                SCHEMA_MYSQL,
                |o: MySqlConnectOptions, name: &str| o.database(name)
            )
        }
        Backend::Mongo => mongo_db(connections).await,
    }
}

/// A fresh MongoDB database with the studio's constraints.
async fn mongo_db(connections: u32) -> Option<TestDb> {
    let url = Backend::Mongo.url()?;
    let mut options = mongodb::options::ClientOptions::parse(&url)
        .await
        .expect("MongoDB url");
    options.max_pool_size = Some(connections.max(2));
    options.server_selection_timeout = Some(Duration::from_secs(10));
    let client = mongodb::Client::with_options(options).expect("MongoDB client");
    // Every test of this process waits for the sweep, so that it never aborts their sessions.
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT.get_or_init(|| sweep_mongo(&client)).await;
    let name = unique_name();
    let db = client.database(&name);
    mongo::prepare_mongo(&db)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the MongoDB server at {url}: {e}"));
    // Not dropped when the test ends: a test may end with a transaction whose abort the driver
    // spawned on the test's runtime, which shuts down before the abort runs, and a database
    // cannot be dropped under an open transaction. The next test process sweeps it.
    Some(TestDb {
        backend: Backend::Mongo,
        store: db.into(),
        cleanup: None,
        _dir: None,
    })
}

/// Drops the databases of test processes that are no longer running, after killing every
/// server session (which aborts the transactions such a process left open). Runs before any
/// test of this process touches MongoDB; test processes run one after another.
async fn sweep_mongo(client: &mongodb::Client) {
    let names: Vec<String> = client
        .list_database_names()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|name| name.starts_with("cached_t") && !process_alive(name))
        .collect();
    if names.is_empty() {
        return;
    }
    let _ = client
        .database("admin")
        .run_command(mongodb::bson::doc! { "killAllSessions": [] })
        .await;
    for name in names {
        let _ = client.database(&name).drop().await;
    }
}

/// Whether the test process that created the schema `cached_t<pid>_...` is still running.
fn process_alive(name: &str) -> bool {
    let pid = name
        .trim_start_matches("cached_t")
        .split('_')
        .next()
        .unwrap_or("");
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Drops the schemas (databases) of test processes that are no longer running: a test's own
/// schema is dropped by a detached thread that may not finish before the process exits.
async fn sweep_leftovers(backend: Backend, url: &str) {
    static SWEPT: std::sync::Mutex<[bool; 4]> = std::sync::Mutex::new([false; 4]);
    {
        let mut swept = SWEPT.lock().unwrap();
        if std::mem::replace(&mut swept[backend as usize], true) {
            return;
        }
    }
    let (list, drop): (&str, fn(&str) -> String) = match backend {
        Backend::Postgres => (
            "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 'cached_t%'",
            |n| format!("DROP SCHEMA IF EXISTS {n} CASCADE"),
        ),
        _ => (
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'cached_t%'",
            |n| format!("DROP DATABASE IF EXISTS {n}"),
        ),
    };
    let alive = process_alive;
    macro_rules! sweep {
        ($pool:expr) => {{
            let pool = $pool;
            let names: Vec<String> = sqlx::query_scalar(list)
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
            for name in names.iter().filter(|n| !alive(n)) {
                let _ = pool.execute(sqlx::AssertSqlSafe(drop(name))).await;
            }
            pool.close().await;
        }};
    }
    match backend {
        Backend::Postgres => sweep!(PgPool::connect(url).await.expect("connect")),
        _ => sweep!(MySqlPool::connect(url).await.expect("connect")),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((backend, url, name)) = self.cleanup.take() else {
            return;
        };
        // Async work from a destructor: on a detached thread with its own runtime (joining it
        // here could block the test's runtime, which may still own a connection that holds
        // locks on the schema). Leftovers are swept by the next run.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let sql = match backend {
                    Backend::Postgres => format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                let result = match backend {
                    Backend::Postgres => match PgPool::connect(&url).await {
                        Ok(pool) => pool.execute(sqlx::AssertSqlSafe(sql)).await.map(|_| ()),
                        Err(e) => Err(e),
                    },
                    _ => match MySqlPool::connect(&url).await {
                        Ok(pool) => pool.execute(sqlx::AssertSqlSafe(sql)).await.map(|_| ()),
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = result {
                    eprintln!("warning: could not drop test schema {name}: {e}");
                }
            });
        });
    }
}

impl TestDb {
    /// Sets a scene's title straight in the database, behind the cache's back.
    pub async fn set_scene_title(&self, id: i64, title: &str) {
        if let RawStore::Mongo(db) = self.store.raw_unchecked() {
            use mongodb::bson::doc;
            db.collection::<mongodb::bson::Document>("scenes")
                .update_one(doc! { "_id": id }, doc! { "$set": { "title": title } })
                .await
                .expect("direct update");
            return;
        }
        self.execute(&format!(
            "UPDATE scenes SET title = '{title}' WHERE id = {id}"
        ))
        .await;
    }

    /// The MongoDB database (panics on the SQL backends).
    pub fn mongo(&self) -> &mongodb::Database {
        match self.store.raw_unchecked() {
            RawStore::Mongo(db) => db,
            _ => panic!("not a MongoDB test database"),
        }
    }

    /// Runs a SQL statement straight on the database, behind the cache's back.
    pub async fn execute(&self, sql: &str) {
        self.try_execute(sql).await.expect("direct statement");
    }

    /// The server URL and the schema (PostgreSQL) or database (MySQL) of this test.
    pub fn server(&self) -> Option<(&str, &str)> {
        self.cleanup
            .as_ref()
            .map(|(_, url, name)| (url.as_str(), name.as_str()))
    }

    /// Runs a SQL statement straight on the database; the driver's error if it fails.
    pub async fn try_execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.store.raw_unchecked() {
            RawStore::Sqlite(p) => p.execute(sql).await.map(|_| ()),
            RawStore::Postgres(p) => p.execute(sql).await.map(|_| ()),
            RawStore::MySql(p) => p.execute(sql).await.map(|_| ()),
            _ => unreachable!("SQL statements need a SQL store"),
        }
    }

    /// Asserts that the scene the cache serves (loading it if need be) equals the scene in the
    /// database; `what` names the step in the message.
    pub async fn assert_scene_fresh(&self, ctx: &Context, id: i64, what: &str) {
        let cached = Scene::repo(ctx)
            .get(id)
            .await
            .unwrap()
            .map(|s| (*s).clone());
        assert_eq!(
            cached,
            self.scene(id).await,
            "{what}: scene {id}: cache and database differ"
        );
    }

    /// Reads a scene straight from the database, bypassing the cache.
    pub async fn scene(&self, id: i64) -> Option<Scene> {
        const SQL: &str =
            "SELECT id, chapter_id, story_id, location_id, status, title, word_count, version FROM scenes WHERE id = ";
        if let RawStore::Mongo(db) = self.store.raw_unchecked() {
            use mongodb::bson::doc;
            let found = db
                .collection::<mongodb::bson::Document>("scenes")
                .find_one(doc! { "_id": id })
                .await
                .expect("direct read");
            // Decoded here by hand, not by the library under test.
            return found.map(|doc| {
                let int = |name: &str| doc.get_i64(name).expect("an Int64 field");
                let text = |name: &str| doc.get_str(name).expect("a string field").to_string();
                Scene {
                    id: int("_id"),
                    chapter_id: int("chapter_id"),
                    story_id: int("story_id"),
                    location_id: doc.get_i64("location_id").ok(),
                    status: text("status"),
                    title: text("title"),
                    word_count: int("word_count"),
                    version: int("version"),
                }
            });
        }
        type Columns = (i64, i64, i64, Option<i64>, String, String, i64, i64);
        let sql = sqlx::AssertSqlSafe(format!("{SQL}{id}"));
        let row: Option<Columns> = match self.store.raw_unchecked() {
            RawStore::Sqlite(p) => sqlx::query_as(sql).fetch_optional(p).await,
            RawStore::Postgres(p) => sqlx::query_as(sql).fetch_optional(p).await,
            RawStore::MySql(p) => sqlx::query_as(sql).fetch_optional(p).await,
            _ => unreachable!("handled above"),
        }
        .expect("direct read");
        row.map(
            |(id, chapter_id, story_id, location_id, status, title, word_count, version)| Scene {
                id,
                chapter_id,
                story_id,
                location_id,
                status,
                title,
                word_count,
                version,
            },
        )
    }

    /// Closes the pool (the database becomes unreachable for the context).
    pub async fn close(&self) {
        match self.store.raw_unchecked() {
            RawStore::Sqlite(p) => p.close().await,
            RawStore::Postgres(p) => p.close().await,
            RawStore::MySql(p) => p.close().await,
            RawStore::Mongo(db) => db.client().clone().shutdown().immediate(true).await,
            _ => unreachable!("all stores are enabled in tests"),
        }
    }
}

/// A context configured by `configure`, on a fresh seeded database; `None` when skipped.
pub async fn seeded_with(
    backend: Backend,
    configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> Option<(Context, TestDb)> {
    let db = database(backend, 8).await?;
    let ctx = configure(Context::builder(db.store.clone())).build();
    seed(&ctx).await;
    ctx.clear();
    Some((ctx, db))
}

pub fn scene(id: i64, chapter_id: i64, status: &str, words: i64) -> Scene {
    Scene {
        id,
        chapter_id,
        story_id: 1,
        location_id: None,
        status: status.into(),
        title: format!("Scene {id}"),
        word_count: words,
        version: 1,
    }
}

/// Stories 1 and 2; story 1 with part 1, chapters 1 and 2, settings 1 and 2, characters 1
/// and 2, and scenes 1 (chapter 1, draft), 2 (chapter 1, final), 3 (chapter 2, draft).
pub async fn seed(ctx: &Context) {
    let mut tx = ctx.begin().await.expect("begin");
    Story::repo(&mut tx)
        .insert_many(&[
            Story {
                id: 1,
                title: "The Long Night".into(),
                status: "draft".into(),
            },
            Story {
                id: 2,
                title: "Morning".into(),
                status: "published".into(),
            },
        ])
        .await
        .expect("stories");
    Part::repo(&mut tx)
        .insert(&Part {
            id: 1,
            story_id: 1,
            title: "Part One".into(),
            position: 1,
        })
        .await
        .expect("part");
    Chapter::repo(&mut tx)
        .insert_many(&[
            Chapter {
                id: 1,
                story_id: 1,
                part_id: 1,
                title: "Dusk".into(),
                position: 1,
            },
            Chapter {
                id: 2,
                story_id: 1,
                part_id: 1,
                title: "Midnight".into(),
                position: 2,
            },
        ])
        .await
        .expect("chapters");
    Setting::repo(&mut tx)
        .insert_many(&[
            Setting {
                id: 1,
                story_id: 1,
                name: "Harbour".into(),
            },
            Setting {
                id: 2,
                story_id: 1,
                name: "Lighthouse".into(),
            },
        ])
        .await
        .expect("settings");
    Character::repo(&mut tx)
        .insert_many(&[
            Character {
                id: 1,
                story_id: 1,
                name: "Mara".into(),
                role: "keeper".into(),
                traits: Vec::new(),
            },
            Character {
                id: 2,
                story_id: 1,
                name: "Tom".into(),
                role: "sailor".into(),
                traits: Vec::new(),
            },
        ])
        .await
        .expect("characters");
    Scene::repo(&mut tx)
        .insert_many(&[
            scene(1, 1, "draft", 100),
            scene(2, 1, "final", 200),
            scene(3, 2, "draft", 300),
        ])
        .await
        .expect("scenes");
    tx.commit().await.expect("commit seed");
}

/// Whether `err` is the store's "database unreachable or failed" error.
pub fn is_database_error(err: &cached_runtime::Error) -> bool {
    matches!(
        err,
        cached_runtime::Error::Database(_) | cached_runtime::Error::Mongo(_)
    )
}

/// Waits until `n` loads on `ctx` have read the database and paused before their fill (a context
/// built with `__fill_delay`): the moment a slow reader holds an old row. Polls, so that a slow
/// server delays the test instead of failing it.
pub async fn loads_paused(ctx: &Context, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ctx.__paused_loads() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no load reached its pause within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// Polls `done` until it holds, for at most `limit`; returns how long it took.
pub async fn within(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Waits (at most 10 s) until `ctx` caches a read of scene 1 again: back online after an
/// outage, or past another instance's fence (its release applied).
pub async fn caches_again(ctx: &Context) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        Scene::repo(ctx).get(1).await.unwrap();
        if ctx.is_cached(SceneKey(1)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scene 1 is never cached again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The title of scene `id` as `ctx` serves it (loading it if need be).
pub async fn scene_title(ctx: &Context, id: i64) -> String {
    Scene::repo(ctx)
        .get(id)
        .await
        .unwrap()
        .expect("the scene exists")
        .title
        .clone()
}
