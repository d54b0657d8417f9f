//! A short tour of cached repositories on the story domain (in-memory SQLite + moka).
//!
//! Run it with `cargo run -p studio` (in-memory SQLite: only the embedded default is built).
//! Each server needs its cargo feature: `cargo run -p studio --features postgres --
//! --database-url postgres://postgres@127.0.0.1:5432/test` (or `--features mysql` with
//! `mysql://root@127.0.0.1:3306/test`), or on MongoDB `cargo run -p studio --features mongo --
//! --mongodb-url "mongodb://127.0.0.1:27017/?directConnection=true"` (a replica set: writes run
//! in transactions); the tour then works in a fresh schema (database) that it drops at the
//! end. Add `--features redis` and `--redis-url redis://127.0.0.1:6379` to see two instances
//! share their invalidations over Redis (`--features all` builds every one).

// A server's schema is unused in a build without its store.
#[cfg_attr(not(all(feature = "postgres", feature = "mysql")), allow(dead_code))]
mod domain;
mod editing;
#[cfg(feature = "mongo")]
mod mongo;
#[cfg(feature = "web")]
mod ops;
mod records;
#[cfg(feature = "web")]
mod web;

use std::time::Instant;

use cached_runtime::prelude::*;
use cached_runtime::Store;
use sqlx::sqlite::SqlitePoolOptions;

use domain::*;

/// Where the tour runs: in-memory SQLite by default, or the server named by
/// `--database-url` (PostgreSQL or MySQL/MariaDB), in a fresh schema dropped at the end.
struct Database {
    store: Store,
    /// The statement that removes the tour's schema from a server.
    cleanup: Option<String>,
}

/// The value after `flag` on the command line.
fn arg(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).cloned()
}

/// The tour's own database on a MongoDB server, with the studio's constraints.
#[cfg(feature = "mongo")]
async fn connect_mongo(url: &str, name: &str) -> Result<Database> {
    let db = |e| Error::Mongo(e);
    let client = mongodb::Client::with_uri_str(url).await.map_err(db)?;
    let database = client.database(name);
    mongo::prepare_mongo(&database).await.map_err(db)?;
    Ok(Database {
        store: database.into(),
        cleanup: None,
    })
}

#[cfg(not(feature = "mongo"))]
async fn connect_mongo(_url: &str, _name: &str) -> Result<Database> {
    rebuild_with("mongo")
}

/// Stops the tour: the server asked for needs a store this build left out.
#[cfg(not(all(
    feature = "postgres",
    feature = "mysql",
    feature = "mongo",
    feature = "redis"
)))]
fn rebuild_with(feature: &str) -> ! {
    eprintln!("this build has no {feature} store: run it with `cargo run -p studio --features {feature} -- ...`");
    std::process::exit(2);
}

async fn connect() -> Result<Database> {
    let url = arg("--database-url");
    let db = |e| Error::Database(e);
    let name = format!("studio_{}", std::process::id());
    if let Some(url) = arg("--mongodb-url") {
        return connect_mongo(&url, &name).await;
    }
    match url.as_deref() {
        None => {
            // A named shared-cache in-memory database, so the pool's connections share it.
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .test_before_acquire(false)
                .connect("sqlite:file:studio?mode=memory&cache=shared")
                .await
                .map_err(db)?;
            sqlx::raw_sql(SCHEMA_SQLITE)
                .execute(&pool)
                .await
                .map_err(db)?;
            Ok(Database {
                store: pool.into(),
                cleanup: None,
            })
        }
        Some(url) if url.starts_with("postgres") => postgres(url, &name).await,
        Some(url) if url.starts_with("mysql") || url.starts_with("mariadb") => {
            mysql(url, &name).await
        }
        Some(other) => {
            eprintln!(
                "--database-url must start with postgres://, mysql:// or mariadb://, not {other}"
            );
            std::process::exit(2);
        }
    }
}

/// The tour's own schema on a PostgreSQL server.
#[cfg(feature = "postgres")]
async fn postgres(url: &str, name: &str) -> Result<Database> {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sqlx::{AssertSqlSafe, Executor, PgPool};
    use std::str::FromStr;
    let db = |e| Error::Database(e);
    {
        {
            let admin = PgPool::connect(url).await.map_err(db)?;
            admin
                .execute(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .await
                .map_err(db)?;
            let options = PgConnectOptions::from_str(url)
                .map_err(db)?
                .options([("search_path", name)]);
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(db)?;
            sqlx::raw_sql(SCHEMA_POSTGRES)
                .execute(&pool)
                .await
                .map_err(db)?;
            Ok(Database {
                store: pool.into(),
                cleanup: Some(format!("DROP SCHEMA {name} CASCADE")),
            })
        }
    }
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str, _name: &str) -> Result<Database> {
    rebuild_with("postgres")
}

/// The tour's own database on a MySQL / MariaDB server.
#[cfg(feature = "mysql")]
async fn mysql(url: &str, name: &str) -> Result<Database> {
    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
    use sqlx::{AssertSqlSafe, Executor, MySqlPool};
    use std::str::FromStr;
    let db = |e| Error::Database(e);
    {
        {
            let admin = MySqlPool::connect(url).await.map_err(db)?;
            admin
                .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .map_err(db)?;
            let options = MySqlConnectOptions::from_str(url)
                .map_err(db)?
                .database(name);
            let pool = MySqlPoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(db)?;
            sqlx::raw_sql(SCHEMA_MYSQL)
                .execute(&pool)
                .await
                .map_err(db)?;
            Ok(Database {
                store: pool.into(),
                cleanup: Some(format!("DROP DATABASE {name}")),
            })
        }
    }
}

#[cfg(not(feature = "mysql"))]
async fn mysql(_url: &str, _name: &str) -> Result<Database> {
    rebuild_with("mysql")
}

impl Database {
    fn backend(&self) -> &'static str {
        match self.store.backend() {
            "SQLite" => "in-memory SQLite",
            other => other,
        }
    }

    /// Drops the tour's schema from the server, if it made one.
    async fn cleanup(self) -> Result<()> {
        #[allow(unused_imports)]
        use cached_runtime::RawStore;
        #[cfg(feature = "mongo")]
        if let RawStore::Mongo(db) = self.store.raw_unchecked() {
            return db.drop().await.map_err(Error::Mongo);
        }
        let Some(_sql) = self.cleanup else {
            return Ok(());
        };
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        {
            use sqlx::Executor;
            let sql = sqlx::AssertSqlSafe(_sql);
            match self.store.raw_unchecked() {
                #[cfg(feature = "postgres")]
                RawStore::Postgres(pool) => pool.execute(sql).await.map(drop),
                #[cfg(feature = "mysql")]
                RawStore::MySql(pool) => pool.execute(sql).await.map(drop),
                _ => Ok(()),
            }
            .map_err(Error::Database)?;
        }
        Ok(())
    }
}

async fn seed(ctx: &Context) -> Result<CommitReport> {
    let mut tx = ctx.begin().await?;
    Story::repo(&mut tx)
        .insert(&Story {
            id: 1,
            title: "The Lighthouse Keeper".into(),
            status: "draft".into(),
        })
        .await?;
    Part::repo(&mut tx)
        .insert(&Part {
            id: 1,
            story_id: 1,
            title: "Part One: Fog".into(),
            position: 1,
        })
        .await?;
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
        .await?;
    Setting::repo(&mut tx)
        .insert(&Setting {
            id: 1,
            story_id: 1,
            name: "The lamp room".into(),
        })
        .await?;
    Character::repo(&mut tx)
        .insert(&Character {
            id: 1,
            story_id: 1,
            name: "Mara".into(),
            role: "keeper".into(),
            traits: Vec::new(),
        })
        .await?;
    let scenes = [
        (1, 1, "draft", "Mara climbs the stairs", 850),
        (2, 1, "draft", "The lamp fails", 1200),
        (3, 2, "final", "A ship in the fog", 640),
    ];
    let scenes: Vec<Scene> = scenes
        .into_iter()
        .map(|(id, chapter_id, status, title, word_count)| Scene {
            id,
            chapter_id,
            story_id: 1,
            location_id: Some(1),
            status: status.into(),
            title: title.into(),
            word_count,
            version: 1,
        })
        .collect();
    Scene::repo(&mut tx).insert_many(&scenes).await?;
    tx.commit().await
}

fn step(n: u32, title: &str) {
    println!("\n{n}. {title}");
}

fn keys(report: &CommitReport) {
    if report.is_empty() {
        println!("   commit invalidated nothing");
    }
    for key in report.keys() {
        println!("   invalidated {key}");
    }
}

/// Two contexts over one database, as two servers behind a load balancer would have, sharing
/// their invalidations over Redis.
#[cfg(feature = "redis")]
async fn two_instances(store: &Store, url: &str) -> Result<()> {
    let channel = format!("studio:{}", std::process::id());
    let connect = || async {
        let bus = cached_runtime::RedisBroadcast::connect(url, channel.clone()).await?;
        Ok::<_, cached_runtime::Error>(Context::builder(store.clone()).broadcast(bus).build())
    };
    let (a, b) = (connect().await?, connect().await?);
    let before = Scene::repo(&b).get(1).await?.expect("scene 1");
    println!(
        "   instance B caches scene 1 ({:?}): {}",
        before.title,
        b.is_cached(SceneKey(1))
    );
    Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Retold on instance A"))
        .await?;
    let committed = Instant::now();
    while b.is_cached(SceneKey(1)) && committed.elapsed() < std::time::Duration::from_secs(1) {
        tokio::task::yield_now().await;
    }
    println!(
        "   instance A commits an edit; B dropped scene 1 {:?} after A's commit returned",
        committed.elapsed()
    );
    let after = Scene::repo(&b).get(1).await?.expect("scene 1");
    println!("   B reads it again from the database: {:?}", after.title);
    println!(
        "   A sent {} broadcast(s), B received {}",
        a.stats().broadcasts_sent,
        b.stats().broadcasts_received
    );
    Ok(())
}

/// Step 11: another connection updates a scene with plain SQL (or a MongoDB command); the
/// change feed drops the cached row, and the next read shows the new title.
#[cfg(feature = "feed")]
async fn outside_write(store: &Store) -> Result<()> {
    #[cfg(any(feature = "postgres", feature = "mongo"))]
    use cached_runtime::FeedSetup;
    use cached_runtime::{ChangeFeed, RawStore};
    let feed = match store.raw_unchecked() {
        #[cfg(feature = "postgres")]
        RawStore::Postgres(pool) => ChangeFeed::postgres(pool, FeedSetup::Install).await?,
        #[cfg(feature = "mongo")]
        RawStore::Mongo(db) => ChangeFeed::mongo(db, FeedSetup::Install).await?,
        // The binary log is read over a replication connection; root's URL has the rights.
        #[cfg(feature = "mysql-feed")]
        RawStore::MySql(pool) => {
            let url = arg("--database-url").expect("a MySQL store comes from --database-url");
            ChangeFeed::mysql(pool, &url).await?
        }
        _ if store.backend() == "SQLite" => {
            println!("   (SQLite needs no change feed: its writers are all in this process)");
            return Ok(());
        }
        _ => {
            println!(
                "   (this build has no change feed for {}: add the `mysql-feed` feature)",
                store.backend()
            );
            return Ok(());
        }
    };
    let ctx = Context::builder(store.clone()).change_feed(feed).build();
    let before = Scene::repo(&ctx).get(2).await?.expect("scene 2");
    println!(
        "   a context with a change feed caches scene 2 ({:?})",
        before.title
    );
    match store.raw_unchecked() {
        // Another connection, as `psql` or another service would have.
        #[cfg(feature = "postgres")]
        RawStore::Postgres(pool) => {
            on_another_connection(
                pool,
                "UPDATE scenes SET title = 'Edited in psql' WHERE id = 2",
            )
            .await?
        }
        #[cfg(feature = "mysql-feed")]
        RawStore::MySql(pool) => {
            let sql = "UPDATE scenes SET title = 'Edited in the mysql client' WHERE id = 2";
            on_another_connection(pool, sql).await?
        }
        #[cfg(feature = "mongo")]
        RawStore::Mongo(db) => {
            use mongodb::bson::doc;
            db.collection::<mongodb::bson::Document>("scenes")
                .update_one(
                    doc! { "_id": 2_i64 },
                    doc! { "$set": { "title": "Edited in mongosh" } },
                )
                .await
                .map_err(Error::Mongo)?;
        }
        _ => unreachable!("only stores with a feed get here"),
    }
    let committed = Instant::now();
    while ctx.is_cached(SceneKey(2)) && committed.elapsed() < std::time::Duration::from_secs(5) {
        tokio::task::yield_now().await;
    }
    let lag = committed.elapsed();
    let after = Scene::repo(&ctx).get(2).await?.expect("scene 2");
    println!(
        "   another connection updates it, outside the cache; the feed dropped it {lag:?} after \
         that commit returned"
    );
    println!("   the next read through the cache: {:?}", after.title);
    assert!(
        after.title.starts_with("Edited in"),
        "the change feed did not drop scene 2 within 5 s of the outside commit"
    );
    Ok(())
}

/// Runs `sql` on a new connection to the pool's server, outside the pool and the cache.
#[cfg(any(feature = "postgres", feature = "mysql-feed"))]
async fn on_another_connection<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    sql: &'static str,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    use sqlx::ConnectOptions as _;
    let mut other = pool
        .connect_options()
        .connect()
        .await
        .map_err(Error::Database)?;
    sqlx::Executor::execute(&mut other, sql)
        .await
        .map_err(Error::Database)?;
    Ok(())
}

#[cfg(not(feature = "feed"))]
async fn outside_write(store: &Store) -> Result<()> {
    let feature = match store.backend() {
        "SQLite" => {
            println!("   (SQLite needs no change feed: its writers are all in this process)");
            return Ok(());
        }
        "PostgreSQL" => "postgres,feed",
        "MongoDB" => "mongo,feed",
        _ => "mysql-feed",
    };
    println!(
        "   (this build has no change feed: run it with `--features {feature}` to watch another\n    \
         connection's UPDATE reach the cache)"
    );
    Ok(())
}

/// `--serve 127.0.0.1:3000`: the studio as a web API instead of the tour (`web.rs`).
#[cfg(feature = "web")]
async fn serve(ctx: Context, addr: &str) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    println!("Serving on http://{addr}: GET /scenes/1, GET /stories/1/outline, PUT /scenes/1 ...");
    println!("  http://{addr}/        a browser-side cache kept fresh by Cache-Invalidate headers");
    println!(
        "  http://{addr}/admin   the cache's debug page (stats, graph, invalidations, lookup)"
    );
    println!("  http://{addr}/metrics Prometheus metrics");
    // Audits 20 cached entries against the database every 2 s (the consistency metric).
    let auditor = ctx.start_auditor(20, std::time::Duration::from_secs(2));
    let app = web::router(ctx.clone()).merge(ops::router(&ctx, ops::prometheus()));
    let served = axum::serve(listener, app).await;
    drop(auditor);
    served.unwrap_or_else(|e| panic!("the server stopped: {e}"));
    Ok(())
}

#[cfg(not(feature = "web"))]
async fn serve(_ctx: Context, _addr: &str) -> Result<()> {
    rebuild_with("web")
}

#[tokio::main]
async fn main() -> Result<()> {
    let database = connect().await?;
    let ctx = Context::new(database.store.clone());
    let seeded = seed(&ctx).await?;
    println!(
        "Studio: a story with 2 chapters and 3 scenes on {}, cached by moka.",
        database.backend()
    );
    println!(
        "Seeded in one transaction; its commit touched {} cache keys.",
        seeded.keys().len()
    );
    ctx.clear();
    if let Some(addr) = arg("--serve") {
        return serve(ctx, &addr).await;
    }

    step(1, "A miss, then a hit");
    let started = Instant::now();
    let scene = Scene::repo(&ctx).get(1).await?.expect("seeded");
    let miss = started.elapsed();
    let started = Instant::now();
    let again = Scene::repo(&ctx).get(1).await?.expect("cached");
    let hit = started.elapsed();
    println!(
        "   get(1) -> {:?} (miss: loaded from {} in {miss:?})",
        scene.title,
        database.backend()
    );
    println!("   get(1) -> {:?} (hit: same Arc, {hit:?})", again.title);
    let drafts = Scene::repo(&ctx).find_by_status("draft").await?;
    let in_chapter = Scene::repo(&ctx).count_by_chapter_id(1).await?;
    println!(
        "   find_by_status(\"draft\") -> {} scenes, cached as `{}`",
        drafts.len(),
        SceneQuery::ByStatus("draft".into())
    );
    println!(
        "   count_by_chapter_id(1) -> {in_chapter}, cached as `{}`",
        SceneQuery::ByChapterId(1).count_key()
    );
    let per_status = Scene::repo(&ctx).count_grouped_by_status().await?;
    println!(
        "   count_grouped_by_status() -> {per_status:?}, one entry: `{}`",
        SceneQuery::count_grouped_by_status()
    );

    step(2, "Edit a scene in a transaction");
    let mut tx = ctx.begin().await?;
    Scene::repo(&mut tx)
        .update(
            2,
            SceneUpdate::default()
                .status("final")
                .title("The lamp fails, and Mara relights it"),
        )
        .await?;
    let outside = Scene::repo(&ctx).get(1).await?.expect("cached");
    println!(
        "   while the transaction is open, other readers see committed data ({:?})",
        outside.status
    );
    println!(
        "   pending: {} keys, the cache is untouched until commit",
        tx.pending_keys().len()
    );
    let report = tx.commit().await?;
    keys(&report);
    println!(
        "   (`title` is not indexed, so only the status queries moved; the row was rewritten)"
    );
    println!(
        "   count_grouped_by_status() -> {:?}: a row changed groups, so it was dropped",
        Scene::repo(&ctx).count_grouped_by_status().await?
    );

    step(3, "A rollback invalidates nothing");
    let mut tx = ctx.begin().await?;
    Scene::repo(&mut tx)
        .update(1, SceneUpdate::default().title("A title we regret"))
        .await?;
    tx.rollback().await?;
    let kept = Scene::repo(&ctx).get(1).await?.expect("cached");
    println!(
        "   rolled back; scene 1 is still {:?}, served from the cache: {}",
        kept.title,
        ctx.is_cached(SceneKey(1))
    );

    step(4, "An atomic increment");
    let drafts = Scene::repo(&ctx).find_by_status("draft").await?;
    println!(
        "   find_by_status(\"draft\") -> {} scene(s), cached again",
        drafts.len()
    );
    let mut tx = ctx.begin().await?;
    let grown = Scene::repo(&mut tx).increment_word_count(1, 150).await?;
    let report = tx.commit().await?;
    println!(
        "   increment_word_count(1, 150) -> {} words, in one UPDATE ... RETURNING",
        grown.word_count
    );
    keys(&report);
    let still = ctx.is_cached(SceneQuery::ByStatus("draft".into()).list_key());
    println!("   word_count is not indexed, so the `draft` query survived: {still}");

    step(5, "A batch insert");
    let mut tx = ctx.begin().await?;
    let new_scenes: Vec<Scene> = (4..=6)
        .map(|id| Scene {
            id,
            chapter_id: 2,
            story_id: 1,
            location_id: None,
            status: "draft".into(),
            title: format!("Interlude {}", id - 3),
            word_count: 300,
            version: 1,
        })
        .collect();
    let stored = Scene::repo(&mut tx).insert_many(&new_scenes).await?;
    let report = tx.commit().await?;
    println!(
        "   insert_many -> {} rows in one statement, one cache update:",
        stored.len()
    );
    keys(&report);
    let total = Scene::repo(&ctx).count().await?;
    println!("   count() -> {total}");

    step(6, "A cached view spanning entities");
    let outline = StoryOutline::get(&ctx, 1).await?.expect("story 1");
    println!(
        "   StoryOutline(1): {:?}, {} chapters, {} words (loaded through the cache)",
        outline.title,
        outline.chapters.len(),
        outline.words
    );
    let part = PartSummary::get(&ctx, 1).await?.expect("part 1");
    println!(
        "   PartSummary(1): {} chapters, {} scenes, {} words",
        part.chapters, part.scenes, part.words
    );
    let hits = ctx.stats().hits;
    StoryOutline::get(&ctx, 1).await?;
    println!(
        "   again: a hit ({} -> {} hits), one cache lookup",
        hits,
        ctx.stats().hits
    );
    let mut tx = ctx.begin().await?;
    Scene::repo(&mut tx).increment_word_count(5, 99).await?;
    let report = tx.commit().await?;
    println!("   a scene edit reaches the views through relates_to (Scene -> Chapter -> Part):");
    keys(&report);
    let outline = StoryOutline::get(&ctx, 1).await?.expect("story 1");
    println!("   StoryOutline(1) reloaded: {} words", outline.words);

    step(7, "The invalidation graph, generated by the derives");
    for line in cached_runtime::graph().to_mermaid().lines() {
        println!("   {line}");
    }
    let old = Scene::repo(&ctx).get(1).await?.expect("scene 1");
    let mut moved = (*old).clone();
    moved.chapter_id = 2;
    moved.status = "final".into();
    println!("   explain: moving scene 1 to chapter 2 and marking it final would invalidate");
    for line in cached_runtime::graph()
        .explain(Some(&*old), Some(&moved))
        .to_string()
        .lines()
    {
        println!("     {line}");
    }

    step(8, "Two editors, one scene (optimistic: a version field)");
    editing::two_editors(&ctx).await?;

    step(
        9,
        "Lock a chapter while renumbering its scenes (pessimistic)",
    );
    editing::renumber_chapter(&ctx, 2).await?;

    step(10, "Two instances, one Redis channel");
    match arg("--redis-url") {
        #[cfg(feature = "redis")]
        Some(url) => two_instances(&database.store, &url).await?,
        #[cfg(not(feature = "redis"))]
        Some(_) => rebuild_with("redis"),
        None => println!(
            "   (run with `-- --redis-url redis://127.0.0.1:6379` to watch a commit on one instance\n    \
             drop the same keys on another)"
        ),
    }

    step(11, "Writes from outside the application (a change feed)");
    outside_write(&database.store).await?;

    step(
        12,
        "Notes and appearances: ids from the database, pages, a join entity",
    );
    records::notes(&ctx).await?;
    records::appearances(&ctx).await?;

    step(13, "What the cache did");
    print!("{}", ctx.stats());
    drop(ctx);
    database.cleanup().await
}
