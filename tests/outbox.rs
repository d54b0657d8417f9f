//! The broadcast's outbox (`RedisBroadcast::outbox`): each commit's message is written in its
//! own transaction and relayed by the instances alive when its writer does not publish it.
//!
//! - a writer process killed with `kill -9` between its commit and its publish: the other
//!   instance drops exactly the committed keys within the relay bound, and its silence clears
//!   nothing;
//! - on every backend: the table empties as Redis takes the messages, and a row left as a dead
//!   writer leaves it is relayed (precisely; an unreadable one as a clear) and deleted.
//!
//! Needs Redis (`CACHED_REDIS_URL`).

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use cached_runtime::{Context, Outbox, RawStore, RedisBroadcast, Stats};
use common::domain::*;
use common::redis_users::{channel, redis_url, LockableUser};
use common::torture::{self, Instances};
use common::{scene_title as title, within};
use common::{Backend, TestDb};

/// Tests that take Redis users away run one at a time.
static REDIS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A relay that acts quickly, so that the tests are short.
fn outbox() -> Outbox {
    Outbox::new()
        .relay_after(Duration::from_millis(300))
        .poll(Duration::from_millis(50))
}

/// A broadcast with the test's outbox. Its own silence bound is long, so that the clear it
/// makes once after subscribing (see README) falls after the test.
async fn bus(url: &str, channel: &str) -> RedisBroadcast {
    RedisBroadcast::connect(url, channel)
        .await
        .unwrap()
        .silence(Duration::from_secs(60))
        .outbox(outbox())
}

async fn warm(ctx: &Context) {
    for id in [1, 2, 3] {
        Scene::repo(ctx).get(id).await.unwrap();
    }
}

/// The rows in the outbox table (collection).
async fn outbox_rows(db: &TestDb) -> i64 {
    match db.store.raw_unchecked() {
        RawStore::Mongo(db) => db
            .collection::<mongodb::bson::Document>("cached_outbox")
            .count_documents(mongodb::bson::doc! {})
            .await
            .unwrap() as i64,
        RawStore::Sqlite(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM cached_outbox")
            .fetch_one(pool)
            .await
            .unwrap(),
        RawStore::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM cached_outbox")
            .fetch_one(pool)
            .await
            .unwrap(),
        RawStore::MySql(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM cached_outbox")
            .fetch_one(pool)
            .await
            .unwrap(),
        _ => unreachable!(),
    }
}

/// Leaves a row in the outbox as a writer that died before publishing leaves it.
async fn leave_row(db: &TestDb, id: &str, payload: &str) {
    if let RawStore::Mongo(mongo) = db.store.raw_unchecked() {
        mongo
            .collection::<mongodb::bson::Document>("cached_outbox")
            .insert_one(mongodb::bson::doc! { "_id": id, "created_ms": 0_i64, "payload": payload })
            .await
            .unwrap();
        return;
    }
    let payload = payload.replace('\'', "''");
    db.execute(&format!(
        "INSERT INTO cached_outbox (id, created_ms, payload) VALUES ('{id}', 0, '{payload}')"
    ))
    .await;
}

/// A dead writer's message for scene `id`, in the wire format.
fn message_for_scene(id: i64) -> String {
    serde_json::json!({
        "from": 77,
        "graph": cached_runtime::graph().fingerprint(),
        "keys": [{"entity": {"ty": "Scene", "name": "scene"}, "kind": {"Row": {"Int": id}}}],
    })
    .to_string()
}

fn relayed(a: &Context, b: &Context) -> u64 {
    let count = |s: Stats| s.outbox_relayed;
    count(a.stats()) + count(b.stats())
}

// Two instances with an outbox on one database: a commit's row is gone once Redis has its
// message; a row a dead writer left is relayed by one of them within the relay bound, drops
// exactly its keys on both, and is deleted; an unreadable row is relayed as a clear.
backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_outbox_empties_as_redis_takes_messages_and_relays_what_a_dead_writer_left(backend) {
        let Some(url) = redis_url() else { return };
        let channel = channel();
        let bus_a = bus(&url, &channel).await;
        let (a, db) = seeded!(backend, |b| b.broadcast(bus_a));
        let b = Context::builder(db.store.clone())
            .broadcast(bus(&url, &channel).await)
            .build();

        // A commit: B drops the key, the row goes once Redis has the message.
        warm(&b).await;
        Scene::repo(&a)
            .update(1, SceneUpdate::default().title("Sent"))
            .await
            .unwrap();
        within("B hears A's commit", Duration::from_secs(5), || {
            !b.is_cached(SceneKey(1))
        })
        .await;
        let started = Instant::now();
        while outbox_rows(&db).await > 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "the row stays");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(title(&b, 1).await, "Sent");
        assert_eq!(relayed(&a, &b), 0, "nothing was left to relay");

        // A row a dead writer left: relayed within relay_after + two polls (+ slack).
        warm(&b).await;
        warm(&a).await;
        leave_row(&db, "dead-1", &message_for_scene(2)).await;
        let took = within("a relay drops scene 2 on B", Duration::from_secs(5), || {
            !b.is_cached(SceneKey(2))
        })
        .await;
        within("and on A", Duration::from_secs(5), || !a.is_cached(SceneKey(2))).await;
        assert!(b.is_cached(SceneKey(3)) && a.is_cached(SceneKey(3)), "exactly its keys");
        // (A relay applies, then counts.)
        within("the relay is counted", Duration::from_secs(5), || relayed(&a, &b) >= 1).await;
        eprintln!("{backend:?}: a dead writer's row relayed {took:?} after it was left");
        let started = Instant::now();
        while outbox_rows(&db).await > 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "the relayed row stays");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A row no instance can read (damaged, a newer format): relayed as a clear.
        warm(&b).await;
        leave_row(&db, "dead-2", "not a message").await;
        within("an unreadable row clears B", Duration::from_secs(5), || {
            !b.is_cached(SceneKey(3))
        })
        .await;
    }
}

/// Not a test of its own: the writer process of
/// `a_writer_killed_between_commit_and_publish_has_its_keys_relayed_precisely` (see
/// `common::child`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    common::child::writer().await;
}

/// A writer process with an outbox commits while Redis refuses it (its user locked out), so
/// its message is only in the outbox, and is killed with `kill -9`. The other instance relays
/// the row: it drops exactly the committed key within the relay bound, reads the committed
/// row, and when it notices the writer's silence it clears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_between_commit_and_publish_has_its_keys_relayed_precisely() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.lock().await;
    let mut user = LockableUser::new(&url, "outboxed").await;
    let channel = channel();
    let (seeded, db) = common::seeded_with(Backend::Sqlite, |b| b).await.unwrap();
    let file = common::child::sqlite_file(&seeded).await;
    let b = Context::builder(db.store.clone())
        .broadcast(bus(&url, &channel).await)
        .build();
    // B's relay makes the table before the child's first transaction.
    Scene::repo(&b).get(2).await.unwrap();
    b.transaction(async |_| Ok(())).await.unwrap();

    let mut child = common::child::Writer::spawn(&file, &user.url, &channel, true);
    within(
        "B hears the writer's commit",
        Duration::from_secs(5),
        || !b.is_cached(SceneKey(2)),
    )
    .await;
    warm(&b).await;
    assert_ne!(title(&b, 1).await, "From the dead");

    user.lock_out().await;
    let said = child.commit();
    let committed = Instant::now();
    child.kill(); // SIGKILL: its queue dies with it; the outbox row does not
    assert_eq!(said, "committed");

    within(
        "B relays the killed writer's row",
        Duration::from_secs(3),
        || !b.is_cached(SceneKey(1)),
    )
    .await;
    let took = committed.elapsed();
    assert!(
        b.is_cached(SceneKey(3)),
        "exactly its keys: nothing cleared"
    );
    // (A relay applies, then counts.)
    within("B counts its relay", Duration::from_secs(5), || {
        b.stats().outbox_relayed == 1
    })
    .await;
    assert_eq!(title(&b, 1).await, "From the dead");
    eprintln!("B dropped the killed writer's key {took:?} after its commit returned");

    // The writer's silence bound (3 s) passes: B notices, and clears nothing.
    within("B notices the silence", Duration::from_secs(6), || {
        b.stats().broadcast_silences >= 1
    })
    .await;
    assert!(b.is_cached(SceneKey(3)), "{:?}", b.stats());
    assert_eq!(outbox_rows(&db).await, 0);
    user.delete().await;
}

/// An instance whose relay cannot read the outbox (the table gone, a permission taken away,
/// the database out of reach) would not hear of a dead writer's commits: it caches nothing
/// (counted as an outage) until it can read it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_read_the_outbox_caches_nothing_until_it_can() {
    let Some(url) = redis_url() else { return };
    let channel = channel();
    let bus_b = bus(&url, &channel).await;
    let (b, db) = common::seeded_with(Backend::Sqlite, |c| c.broadcast(bus_b))
        .await
        .unwrap();
    Scene::repo(&b).get(1).await.unwrap();
    assert!(b.is_cached(SceneKey(1)));

    db.execute("DROP TABLE cached_outbox").await;
    within("B notices", Duration::from_secs(5), || {
        b.stats().broadcast_outages == 1
    })
    .await;
    assert!(!b.is_cached(SceneKey(1)), "dropped");
    Scene::repo(&b).get(1).await.unwrap();
    assert!(!b.is_cached(SceneKey(1)), "and nothing filled meanwhile");

    db.execute(
        "CREATE TABLE cached_outbox (id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, \
         payload TEXT NOT NULL)",
    )
    .await;
    let started = Instant::now();
    loop {
        Scene::repo(&b).get(1).await.unwrap();
        if b.is_cached(SceneKey(1)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "B caches again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The torture test across two instances on PostgreSQL, both with an outbox: writers commit on
/// A (each commit also writes and then deletes its outbox row), readers read through B, which
/// hears of the writes over Redis and relays what is left in the outbox. Once B has received
/// what A sent, no read returns an older version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_instances_with_an_outbox_no_read_returns_older_data() {
    let Some(url) = redis_url() else { return };
    let channel = channel();
    // A commit returns once Redis took its message: the torture test counts a version as
    // heard once A counted it sent.
    let bus_a = bus(&url, &channel)
        .await
        .commit_wait(Duration::from_secs(60));
    let (a, db) = seeded!(Backend::Postgres, |b| b.broadcast(bus_a));
    let bus_b = bus(&url, &channel).await;
    let b = torture::configure(true)(Context::builder(db.store.clone()).broadcast(bus_b)).build();
    let label = "PostgreSQL, writes on A, reads on B, both with an outbox";
    let (violations, summary) = torture::run(label, true, Instances::two(a, b)).await;
    assert_eq!(violations, 0, "{summary}");
    eprintln!("{summary}");
}
