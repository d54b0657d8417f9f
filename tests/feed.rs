//! Change feeds: writes made outside the application (plain SQL on another connection, `psql`,
//! a MongoDB client) invalidate the cache as the application's own commits do, on PostgreSQL
//! (triggers + NOTIFY) and MongoDB (change streams). Every answer is compared with a cold read
//! of the database after `ctx.catch_up()`; the feed's keys for a write are compared with the
//! keys the same write through the repository invalidated.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cached_runtime::{CacheKey, ChangeFeed, Context, ContextBuilder, FeedSetup, RawStore, Source};
use common::domain::*;
use common::torture::{self, Instances};
use common::{Backend, TestDb};
use mongodb::bson::{doc, Document};

/// The tests of this file kill the feed's connection by what it runs: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs each body on the backends that have a change feed.
macro_rules! feed_tests {
    ($( #[$attr:meta] async fn $name:ident($backend:ident) $body:block )*) => {
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $( #[$attr] async fn $name() { let $backend = Backend::Postgres; $body } )*
        }
        mod mysql {
            #[allow(unused_imports)]
            use super::*;
            $( #[$attr] async fn $name() { let $backend = Backend::MySql; $body } )*
        }
        mod mongo {
            #[allow(unused_imports)]
            use super::*;
            $( #[$attr] async fn $name() { let $backend = Backend::Mongo; $body } )*
        }
    };
}

/// A seeded database and a context on it with a change feed (set up by the feed itself).
async fn feed_context(
    backend: Backend,
    configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> Option<(Context, TestDb)> {
    let db = common::database(backend, 8).await?;
    common::seed(&Context::new(db.store.clone())).await;
    let feed = connect(&db).await.expect("the change feed connects");
    let ctx = configure(Context::builder(db.store.clone()).change_feed(feed)).build();
    Some((ctx, db))
}

async fn connect(db: &TestDb) -> cached_runtime::Result<ChangeFeed> {
    match db.store.raw_unchecked() {
        RawStore::Postgres(pool) => ChangeFeed::postgres(pool, FeedSetup::Install).await,
        RawStore::Mongo(mongo) => ChangeFeed::mongo(mongo, FeedSetup::Install).await,
        // The binary log is read over a replication connection: the server's URL (root).
        RawStore::MySql(pool) => ChangeFeed::mysql(pool, db.server().unwrap().0).await,
        _ => unreachable!("feeds run on PostgreSQL, MySQL/MariaDB and MongoDB"),
    }
}

/// An outside write: plain SQL on the pool (not through the cache), or a MongoDB command.
async fn outside(db: &TestDb, sql: &str, mongo: impl AsyncFnOnce(&mongodb::Database)) {
    match db.store.raw_unchecked() {
        RawStore::Mongo(m) => mongo(m).await,
        _ => batch(db, sql).await,
    }
}

fn scenes(db: &mongodb::Database) -> mongodb::Collection<Document> {
    db.collection("scenes")
}

/// Runs SQL statements on one connection (several statements in one string: a transaction).
async fn batch(db: &TestDb, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match db.store.raw_unchecked() {
        RawStore::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        RawStore::MySql(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        _ => unreachable!("SQL needs a SQL store"),
    }
    .expect("outside SQL");
}

/// The ids of the scenes with `status`, read straight from the database.
async fn cold_ids_by_status(db: &TestDb, status: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = match db.store.raw_unchecked() {
        RawStore::Postgres(pool) => sqlx::query_scalar("SELECT id FROM scenes WHERE status = $1")
            .bind(status)
            .fetch_all(pool)
            .await
            .unwrap(),
        RawStore::MySql(pool) => sqlx::query_scalar("SELECT id FROM scenes WHERE status = ?")
            .bind(status)
            .fetch_all(pool)
            .await
            .unwrap(),
        RawStore::Mongo(m) => {
            let mut cursor = scenes(m).find(doc! { "status": status }).await.unwrap();
            let mut ids = Vec::new();
            while cursor.advance().await.unwrap() {
                ids.push(
                    cursor
                        .deserialize_current()
                        .unwrap()
                        .get_i64("_id")
                        .unwrap(),
                );
            }
            ids
        }
        _ => unreachable!(),
    };
    ids.sort();
    ids
}

/// Every scene, every status lookup and count the test touches: what the cache answers equals
/// a cold read.
async fn assert_fresh(ctx: &Context, db: &TestDb, ids: &[i64], statuses: &[&str], what: &str) {
    for id in ids {
        db.assert_scene_fresh(ctx, *id, what).await;
    }
    for status in statuses {
        let mut cached: Vec<i64> = Scene::repo(ctx)
            .find_by_status(*status)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        cached.sort();
        let cold = cold_ids_by_status(db, status).await;
        assert_eq!(cached, cold, "{what}: find_by_status({status})");
        let count = Scene::repo(ctx).count_by_status(*status).await.unwrap();
        assert_eq!(
            count as usize,
            cold.len(),
            "{what}: count_by_status({status})"
        );
    }
}

/// Warms every entry `assert_fresh` reads, and checks it is served from the cache.
async fn warm(ctx: &Context, db: &TestDb, ids: &[i64], statuses: &[&str]) {
    assert_fresh(ctx, db, ids, statuses, "warm-up").await;
    for id in ids {
        assert!(
            ctx.is_cached(SceneKey(*id)),
            "scene {id} cached after warm-up"
        );
    }
}

/// The keys and entities the feed applied, collected by a hook.
#[derive(Default, Clone)]
struct Heard(Arc<Mutex<(BTreeSet<String>, BTreeSet<String>)>>);

impl Heard {
    fn on(ctx: &Context) -> Heard {
        let heard = Heard::default();
        let sink = heard.0.clone();
        ctx.on_invalidate(move |inv| {
            if inv.source == Source::Feed {
                let mut sink = sink.lock().unwrap();
                sink.0.extend(inv.keys.iter().map(CacheKey::to_string));
                sink.1.extend(inv.entities.iter().map(|e| e.to_string()));
            }
        });
        heard
    }

    fn take(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The feed, once caught up, applied exactly the keys and bumps of `report` (the commit that
/// the repository made and applied itself).
async fn same_keys(ctx: &Context, heard: &Heard, what: &str, report: cached_runtime::CommitReport) {
    ctx.catch_up().await.unwrap();
    let (keys, entities) = heard.take();
    let (want_keys, want_entities) = report_sets(&report);
    assert_eq!(keys, want_keys, "{what}: the feed's keys");
    assert_eq!(
        entities, want_entities,
        "{what}: the feed's whole-entity bumps"
    );
}

fn report_sets(report: &cached_runtime::CommitReport) -> (BTreeSet<String>, BTreeSet<String>) {
    (
        report.keys().iter().map(CacheKey::to_string).collect(),
        report.entities().iter().map(|e| e.to_string()).collect(),
    )
}

feed_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outside_writes_invalidate_rows_queries_and_counts(backend) {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(backend, |b| b).await else { return };
        let statuses = ["draft", "final", "review"];
        let ids = [1, 2, 3, 40];
        warm(&ctx, &db, &ids, &statuses).await;

        // An update of a field that forms no key, and one that moves a row between queries.
        outside(&db, "UPDATE scenes SET title = 'Renamed' WHERE id = 1", async |m| {
            scenes(m).update_one(doc! {"_id": 1_i64}, doc! {"$set": {"title": "Renamed"}}).await.unwrap();
        }).await;
        outside(&db, "UPDATE scenes SET status = 'review' WHERE id = 2", async |m| {
            scenes(m).update_one(doc! {"_id": 2_i64}, doc! {"$set": {"status": "review"}}).await.unwrap();
        }).await;
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &ids, &statuses, "after outside updates").await;
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().title, "Renamed");

        // An insert of a row a negative entry said did not exist, and a delete.
        warm(&ctx, &db, &ids, &statuses).await;
        outside(
            &db,
            "INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count, version) \
             VALUES (40, 1, 1, 'review', 'New', 0, 1)",
            async |m| {
                scenes(m).insert_one(doc! {"_id": 40_i64, "chapter_id": 1_i64, "story_id": 1_i64,
                    "location_id": null, "status": "review", "title": "New", "word_count": 0_i64,
                    "version": 1_i64}).await.unwrap();
            },
        ).await;
        outside(&db, "DELETE FROM scenes WHERE id = 3", async |m| {
            scenes(m).delete_one(doc! {"_id": 3_i64}).await.unwrap();
        }).await;
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &ids, &statuses, "after an outside insert and delete").await;

        // A set-based write, in one transaction with a write to another table.
        warm(&ctx, &db, &ids, &statuses).await;
        match db.store.raw_unchecked() {
            RawStore::Mongo(m) => {
                let mut session = m.client().start_session().await.unwrap();
                session.start_transaction().await.unwrap();
                scenes(m).update_many(doc! {}, doc! {"$set": {"status": "final"}})
                    .session(&mut session).await.unwrap();
                m.collection::<Document>("chapters")
                    .update_one(doc! {"_id": 1_i64}, doc! {"$set": {"title": "Dawn"}})
                    .session(&mut session).await.unwrap();
                session.commit_transaction().await.unwrap();
            }
            _ => batch(&db,
                "BEGIN; UPDATE scenes SET status = 'final'; \
                 UPDATE chapters SET title = 'Dawn' WHERE id = 1; COMMIT",
            ).await,
        }
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &ids, &statuses, "after a set-based outside transaction").await;
        assert_eq!(Chapter::repo(&ctx).get(1).await.unwrap().unwrap().title, "Dawn");
        let stats = ctx.stats();
        assert!(stats.feed_events >= 4, "feed events counted: {stats:?}");
        assert_eq!(stats.feed_outages, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_invalidates_what_the_repository_does_for_the_same_write(backend) {
        let _serial = SERIAL.lock().await;
        let Some((ctx, _db)) = feed_context(backend, |b| b).await else { return };
        let heard = Heard::on(&ctx);
        ctx.catch_up().await.unwrap();
        heard.take();
        // Each write through a transaction, then what the feed heard of that same commit.
        let mut new = common::scene(50, 2, "draft", 10);
        new.location_id = Some(1);
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx).insert(&new).await.unwrap();
        same_keys(&ctx, &heard, "insert", tx.commit().await.unwrap()).await;
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx).update(50, SceneUpdate::default().title("Only the title")).await.unwrap();
        same_keys(&ctx, &heard, "update of a field that forms no key", tx.commit().await.unwrap()).await;
        let mut tx = ctx.begin().await.unwrap();
        let patch = SceneUpdate::default().status("final").chapter_id(1).location_id(None);
        Scene::repo(&mut tx).update(50, patch).await.unwrap();
        same_keys(&ctx, &heard, "update of three key-forming fields", tx.commit().await.unwrap()).await;
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx).delete(50).await.unwrap();
        same_keys(&ctx, &heard, "delete", tx.commit().await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_read_before_an_outside_commit_is_refused(backend) {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) =
            feed_context(backend, |b| b.__fill_delay(Duration::from_millis(400))).await
        else {
            return;
        };
        let reader = {
            let ctx = ctx.clone();
            tokio::spawn(async move { Scene::repo(&ctx).get(1).await.unwrap().unwrap() })
        };
        // The reader has read the old row and waits before its fill.
        common::loads_paused(&ctx, 1).await;
        outside(&db, "UPDATE scenes SET title = 'Outside' WHERE id = 1", async |m| {
            scenes(m).update_one(doc! {"_id": 1_i64}, doc! {"$set": {"title": "Outside"}}).await.unwrap();
        }).await;
        ctx.catch_up().await.unwrap();
        let old = reader.await.unwrap();
        assert_eq!(old.title, "Scene 1", "the reader read before the commit");
        assert!(!ctx.is_cached(SceneKey(1)), "its value was not stored after the commit");
        assert!(ctx.stats().stale_fills_rejected >= 1);
        db.assert_scene_fresh(&ctx, 1, "after the refused fill").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_feed_clears_refuses_fills_and_misses_nothing(backend) {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(backend, |b| b).await else { return };
        let statuses = ["draft", "final"];
        warm(&ctx, &db, &[1, 2, 3], &statuses).await;
        cut_the_feed(&db).await;
        // Written while the feed may be down: seen once it is back (or refused meanwhile).
        outside(&db, "UPDATE scenes SET status = 'final', title = 'While down' WHERE id = 1", async |m| {
            scenes(m).update_one(doc! {"_id": 1_i64},
                doc! {"$set": {"status": "final", "title": "While down"}}).await.unwrap();
        }).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ctx.stats().feed_outages == 0 {
            assert!(Instant::now() < deadline, "the feed never noticed its connection was cut");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &[1, 2, 3], &statuses, "after the feed came back").await;
        // Caching resumed: a second read is a hit.
        let hits = ctx.stats().hits;
        Scene::repo(&ctx).get(1).await.unwrap();
        assert_eq!(ctx.stats().hits, hits + 1, "the cache serves again once the feed is back");
        // And the feed applies outside writes again.
        outside(&db, "UPDATE scenes SET title = 'After' WHERE id = 1", async |m| {
            scenes(m).update_one(doc! {"_id": 1_i64}, doc! {"$set": {"title": "After"}}).await.unwrap();
        }).await;
        ctx.catch_up().await.unwrap();
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().title, "After");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn outside_writers_leave_no_stale_read_once_the_feed_caught_up(backend) {
        let _serial = SERIAL.lock().await;
        let Some((violations, summary)) = torture_outside(backend, true, true).await else { return };
        assert_eq!(violations, 0, "{summary}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn without_the_feed_outside_writers_leave_stale_reads(backend) {
        let _serial = SERIAL.lock().await;
        let Some((violations, summary)) = torture_outside(backend, false, true).await else { return };
        assert!(violations > 0, "the harness could not see outside writes: {summary}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_feed_stays_up(backend) {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(backend, |b| b).await else { return };
        // Several heartbeats with nothing to hear.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(ctx.stats().feed_outages, 0, "heartbeats on a quiet feed are not outages");
        warm(&ctx, &db, &[1, 2], &["draft"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_table_change_drops_every_entry_of_its_entities(backend) {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(backend, |b| b).await else { return };
        warm(&ctx, &db, &[1, 2, 3], &["draft", "final"]).await;
        let truncate = match backend {
            // MySQL cannot truncate a table another table's foreign key names, unless told.
            Backend::MySql => "SET FOREIGN_KEY_CHECKS = 0; TRUNCATE TABLE notes; \
                               TRUNCATE TABLE appearances; TRUNCATE TABLE scenes; \
                               SET FOREIGN_KEY_CHECKS = 1",
            _ => "TRUNCATE notes, appearances, scenes",
        };
        outside(&db, truncate, async |m| {
            scenes(m).drop().await.unwrap();
        }).await;
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &[1, 2, 3], &["draft", "final"], "after the table was emptied").await;
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap(), None);
    }
}

/// The torture harness with the writers outside: they commit through a context the readers'
/// context knows nothing of (as another program would), and the readers hear of the writes
/// only through the feed. A read must return at least the versions committed before the last
/// `catch_up` that returned.
async fn torture_outside(backend: Backend, feed: bool, protect: bool) -> Option<(u64, String)> {
    let db = common::database(backend, 8).await?;
    common::seed(&Context::new(db.store.clone())).await;
    let builder = torture::configure(protect)(Context::builder(db.store.clone()));
    let reads = match feed {
        true => builder.change_feed(connect(&db).await.unwrap()).build(),
        false => builder.build(),
    };
    let writes = Context::new(db.store.clone());
    let label = format!(
        "{backend:?}, writers outside, feed {}",
        if feed { "on" } else { "OFF" }
    );
    Some(torture::run(&label, protect, Instances::outside(writes, reads)).await)
}

/// Cuts the feed's connection the way an operator or a network would.
async fn cut_the_feed(db: &TestDb) {
    match db.store.raw_unchecked() {
        RawStore::Postgres(pool) => {
            // The listening connection is the one whose last statement was the LISTEN or the
            // feed's heartbeat (this file's tests run one at a time).
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND (query LIKE 'LISTEN%' OR query = 'SELECT 1')",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(!killed.is_empty(), "found the feed's connection");
        }
        RawStore::MySql(pool) => {
            // The server's thread that sends this test's binary log to the feed.
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(!ids.is_empty(), "found the feed's connection");
            for id in ids {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {id}")))
                    .execute(pool)
                    .await;
            }
        }
        RawStore::Mongo(m) => {
            // The next getMore fails with an error the driver does not resume by itself.
            m.client()
                .database("admin")
                .run_command(doc! {
                    "configureFailPoint": "failCommand",
                    "mode": { "times": 1 },
                    "data": { "failCommands": ["getMore"], "errorCode": 2 },
                })
                .await
                .unwrap();
        }
        _ => unreachable!(),
    }
}

mod postgres_only {
    use super::*;

    /// The feed's apply goes through the stale-fill guard: with the guard off, a load that
    /// read before an outside commit stores its value after the feed applied that commit.
    /// (On the MongoDB test server, with ~50 commits a second, a 3 s run finds none by luck
    /// too often to prove anything either way.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_the_feed_but_no_stale_fill_guard_outside_writers_leave_stale_reads() {
        let _serial = SERIAL.lock().await;
        let Some((violations, summary)) = torture_outside(Backend::Postgres, true, false).await
        else {
            return;
        };
        assert!(violations > 0, "the guard made no difference: {summary}");
    }

    /// The feed listens on a connection of its own: on a pool of one connection, reads,
    /// commits and `catch_up` still get it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_takes_no_connection_from_the_pool() {
        let _serial = SERIAL.lock().await;
        let Some(db) = common::database(Backend::Postgres, 1).await else {
            return;
        };
        common::seed(&Context::new(db.store.clone())).await;
        let feed = connect(&db).await.unwrap();
        let ctx = Context::builder(db.store.clone()).change_feed(feed).build();
        tokio::time::timeout(Duration::from_secs(5), Scene::repo(&ctx).get(1))
            .await
            .expect("a read waited for a pool connection the feed holds")
            .unwrap();
        db.execute("UPDATE scenes SET title = 'outside' WHERE id = 1")
            .await;
        tokio::time::timeout(Duration::from_secs(5), ctx.catch_up())
            .await
            .expect("catch_up waited for a pool connection the feed holds")
            .unwrap();
        assert_fresh(&ctx, &db, &[1], &["draft"], "a pool of one").await;
    }

    /// A notification the feed cannot read clears the cache (whatever it said, dropping
    /// everything covers it), and counts as an outage.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreadable_notification_clears() {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(Backend::Postgres, |b| b).await else {
            return;
        };
        warm(&ctx, &db, &[1], &["draft"]).await;
        db.execute("SELECT pg_notify('cached_feed', 'not what the triggers send')")
            .await;
        ctx.catch_up().await.unwrap();
        assert!(!ctx.is_cached(SceneKey(1)));
        assert_eq!(ctx.stats().feed_outages, 1);
    }

    /// A statement whose rows do not fit in one notification is sent in chunks, or as "the
    /// whole table" when a chunk still does not fit (long key values).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_statements_are_chunked_or_sent_whole() {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(Backend::Postgres, |b| b).await else {
            return;
        };
        db.execute(
            "INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count, version) \
             SELECT g, 1, 1, 'bulk', 'Bulk', 0, 1 FROM generate_series(100, 399) g",
        )
        .await;
        ctx.catch_up().await.unwrap();
        let ids: Vec<i64> = (100..400).step_by(7).collect();
        let statuses = ["bulk", "moved"];
        warm(&ctx, &db, &ids, &statuses).await;
        db.execute("UPDATE scenes SET status = 'moved' WHERE id % 2 = 0 AND id >= 100")
            .await;
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &ids, &statuses, "after 150 rows moved").await;
        let long = "x".repeat(300);
        warm(&ctx, &db, &ids, &statuses).await;
        db.execute(&format!(
            "UPDATE scenes SET status = '{long}' WHERE id >= 100"
        ))
        .await;
        ctx.catch_up().await.unwrap();
        assert_fresh(
            &ctx,
            &db,
            &ids,
            &[&long, "bulk", "moved"],
            "after long values",
        )
        .await;
    }

    /// A change that arrives later than `max_lag` after its statement ran takes the cache
    /// offline (cleared, no fills) until the feed has caught up; then it caches again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_feed_that_falls_behind_its_bound_goes_offline_until_caught_up() {
        let _serial = SERIAL.lock().await;
        let Some(db) = common::database(Backend::Postgres, 8).await else {
            return;
        };
        common::seed(&Context::new(db.store.clone())).await;
        let feed = connect(&db)
            .await
            .unwrap()
            .max_lag(Duration::from_millis(300));
        let ctx = Context::builder(db.store.clone()).change_feed(feed).build();
        warm(&ctx, &db, &[1, 2], &["draft"]).await;
        // Committed 600 ms after its statement: its notification is 600 ms old on arrival.
        db.execute(
            "BEGIN; UPDATE scenes SET title = 'Late' WHERE id = 1; SELECT pg_sleep(0.6); COMMIT",
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ctx.stats().feed_outages == 0 {
            assert!(Instant::now() < deadline, "a late change was not noticed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !ctx.is_cached(SceneKey(2)),
            "everything was dropped while behind"
        );
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &[1, 2], &["draft"], "after catching up").await;
        let hits = ctx.stats().hits;
        Scene::repo(&ctx).get(2).await.unwrap();
        assert_eq!(ctx.stats().hits, hits + 1, "caching resumed once caught up");
        assert_eq!(ctx.stats().feed_outages, 1);
    }

    /// `psql`, another program entirely, writes; the cache follows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_psql_session_is_heard() {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(Backend::Postgres, |b| b).await else {
            return;
        };
        let (url, schema) = db.server().unwrap();
        db.assert_scene_fresh(&ctx, 2, "warm").await;
        let status = std::process::Command::new("psql")
            .arg(url)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!(
                "UPDATE {schema}.scenes SET title = 'From psql' WHERE id = 2"
            ))
            .output()
            .expect("psql runs");
        assert!(
            status.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        ctx.catch_up().await.unwrap();
        assert_eq!(
            Scene::repo(&ctx).get(2).await.unwrap().unwrap().title,
            "From psql"
        );
    }

    /// `FeedSetup::Verify` refuses a database without the triggers, and says what to run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_names_what_is_missing() {
        let _serial = SERIAL.lock().await;
        let Some(db) = common::database(Backend::Postgres, 2).await else {
            return;
        };
        let RawStore::Postgres(pool) = db.store.raw_unchecked() else {
            unreachable!()
        };
        let err = ChangeFeed::postgres(pool, FeedSetup::Verify)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("cached_feed_upd"), "{message}");
        assert!(message.contains("postgres_setup_sql"), "{message}");
        let sql = ChangeFeed::postgres_setup_sql(pool).await.unwrap();
        db.execute(&sql).await;
        ChangeFeed::postgres(pool, FeedSetup::Verify).await.unwrap();
    }
}

mod mysql_only {
    use super::*;

    /// The server moves to a new binary log file (`FLUSH BINARY LOGS`, as at a size limit or
    /// a restart): the feed follows the rotate, and `catch_up` still waits for the right
    /// place in the new file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_follows_the_log_into_its_next_file() {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(Backend::MySql, |b| b).await else {
            return;
        };
        warm(&ctx, &db, &[1, 2], &["draft", "final"]).await;
        for round in 0..3 {
            db.execute("FLUSH BINARY LOGS").await;
            db.execute(&format!(
                "UPDATE scenes SET status = 'final', title = 'r{round}' WHERE id = 1"
            ))
            .await;
            ctx.catch_up().await.unwrap();
            assert_fresh(
                &ctx,
                &db,
                &[1, 2],
                &["draft", "final"],
                "after a new log file",
            )
            .await;
            db.execute("UPDATE scenes SET status = 'draft' WHERE id = 1")
                .await;
            ctx.catch_up().await.unwrap();
            assert_fresh(&ctx, &db, &[1, 2], &["draft", "final"], "and back").await;
        }
        assert_eq!(ctx.stats().feed_outages, 0);
    }

    /// Statements the row log carries as text: a transaction with savepoints (as nested
    /// transactions write them) changes rows only and keeps the cache online; a DDL whose
    /// text starts with a multi-byte character clears the cache, and the feed goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statements_logged_as_text_never_stop_the_feed() {
        let _serial = SERIAL.lock().await;
        let Some((ctx, db)) = feed_context(Backend::MySql, |b| b).await else {
            return;
        };
        warm(&ctx, &db, &[1, 2], &["draft", "final"]).await;
        let RawStore::MySql(pool) = db.store.raw_unchecked() else {
            unreachable!()
        };
        let mut conn = pool.acquire().await.unwrap();
        for sql in [
            "BEGIN",
            "UPDATE scenes SET status = 'final' WHERE id = 1",
            "SAVEPOINT sp1",
            "UPDATE scenes SET title = 'rolled back' WHERE id = 2",
            "ROLLBACK TO SAVEPOINT sp1",
            "SAVEPOINT sp2",
            "UPDATE scenes SET title = 'kept' WHERE id = 2",
            "RELEASE SAVEPOINT sp2",
            "COMMIT",
        ] {
            sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap();
        }
        drop(conn);
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &[1, 2], &["draft", "final"], "after savepoints").await;
        assert_eq!(ctx.stats().feed_outages, 0, "savepoints change no row");

        db.execute("/*\u{e9}t\u{e9}*/ CREATE TABLE feed_odd_text (id INT)")
            .await;
        db.execute("DROP TABLE feed_odd_text").await;
        // A feed task that died on the text would leave this waiting for its timeout.
        ctx.catch_up().await.unwrap();
        assert!(ctx.stats().feed_outages >= 1, "a DDL clears the cache");
        warm(&ctx, &db, &[1, 2], &["draft", "final"]).await;
        db.execute("UPDATE scenes SET status = 'draft' WHERE id = 1")
            .await;
        ctx.catch_up().await.unwrap();
        assert_fresh(&ctx, &db, &[1, 2], &["draft", "final"], "after the DDL").await;
    }

    /// A server that does not log rows with their names is refused, with what to set.
    #[tokio::test]
    async fn the_feed_checks_the_server_logs_what_it_needs() {
        let _serial = SERIAL.lock().await;
        let Some(db) = common::database(Backend::MySql, 2).await else {
            return;
        };
        let RawStore::MySql(pool) = db.store.raw_unchecked() else {
            unreachable!()
        };
        sqlx::raw_sql("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
            .execute(pool)
            .await
            .unwrap();
        let refused = ChangeFeed::mysql(pool, db.server().unwrap().0).await;
        sqlx::raw_sql("SET GLOBAL binlog_row_metadata = 'FULL'")
            .execute(pool)
            .await
            .unwrap();
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("binlog_row_metadata = FULL"), "{message}");
    }
}

/// Without a feed, `catch_up` says so.
#[tokio::test]
async fn catch_up_without_a_feed_is_an_error() {
    let (ctx, _db) = seeded!(Backend::Sqlite);
    let err = ctx.catch_up().await.unwrap_err();
    assert!(err.to_string().contains("change_feed"), "{err}");
}
