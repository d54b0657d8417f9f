//! Many instances, when messages go missing: a writer process killed with its message unsent,
//! a writer cut off from Redis, gaps, duplicates and reordering on the channel, a queue that
//! overflows, a message too large, a sender from another build. In each, the other instance
//! drops the keys within the silence bound, or the writer refuses to commit.
//!
//! Needs Redis (`CACHED_REDIS_URL`). Messages "from another instance" are published on the
//! channel by the test in the wire format (JSON), as a second build would send them.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use cached_runtime::{Context, Error, LoadView, QueryKey, RedisBroadcast, SharedCache};
use common::domain::*;
use common::redis_users::{channel, redis_url, rename_scene, LockableUser};
use common::Backend;
use common::{scene_title as title, within};

/// Tests that take Redis users away run one at a time.
static REDIS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The other instance's broadcast: its own silence bound long, so that the clear it makes once
/// after subscribing (see README) falls after the test; the senders' bounds are theirs.
async fn listener(url: &str, channel: &str) -> RedisBroadcast {
    RedisBroadcast::connect(url, channel)
        .await
        .unwrap()
        .silence(Duration::from_secs(60))
}

/// A seeded instance listening on a channel of its own (the test publishes there).
async fn listening(url: &str) -> (Context, common::TestDb, String) {
    let channel = channel();
    let bus = listener(url, &channel).await;
    let (b, db) = common::seeded_with(Backend::Sqlite, |b| b.broadcast(bus))
        .await
        .unwrap();
    (b, db, channel)
}

/// Publishes `json` on `channel`, as another instance would.
async fn publish(url: &str, channel: &str, json: serde_json::Value) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(json.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Not a test of its own: the writer process of
/// `a_writer_killed_with_its_message_unsent_is_noticed_within_the_silence_bound`, run by
/// that test as a child (see `common::child`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    common::child::writer().await;
}

/// A writer process commits while Redis refuses it (its user locked out), so its message
/// stays in its queue, and is then killed with `kill -9`: the message is gone for good. The
/// other instance notices the writer's silence and drops everything within the bound (3 s,
/// plus its one-second check), and reads the committed row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_with_its_message_unsent_is_noticed_within_the_silence_bound() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.lock().await;
    let mut user = LockableUser::new(&url, "child").await;
    let channel = channel();
    let (seeded, _db) = common::seeded_with(Backend::Sqlite, |b| b).await.unwrap();
    let file = common::child::sqlite_file(&seeded).await;
    let bus = listener(&url, &channel).await;
    let b = Context::builder(seeded.store().clone())
        .broadcast(bus)
        .build();
    Scene::repo(&b).get(2).await.unwrap();

    let mut child = common::child::Writer::spawn(&file, &user.url, &channel, false);
    within(
        "B hears the writer's commit",
        Duration::from_secs(5),
        || !b.is_cached(SceneKey(2)),
    )
    .await;
    assert_ne!(title(&b, 1).await, "From the dead");
    assert!(b.is_cached(SceneKey(1)));

    user.lock_out().await;
    let said = child.commit();
    let committed = Instant::now();
    child.kill(); // SIGKILL: its queue dies with it
    assert_eq!(
        said, "committed",
        "the commit landed within the writer's fence"
    );

    within(
        "B gives up on the silent writer",
        Duration::from_secs(5),
        || !b.is_cached(SceneKey(1)),
    )
    .await;
    let took = committed.elapsed();
    assert!(b.stats().broadcast_silences >= 1, "{:?}", b.stats());
    assert_eq!(title(&b, 1).await, "From the dead");
    eprintln!("B dropped the killed writer's keys {took:?} after its commit returned");
    assert!(took < Duration::from_secs(5), "{took:?}");
    user.delete().await;
}

/// Reads of scene 1 on an instance whose subscription is deaf (open, answering `PING`,
/// delivering nothing: on a cluster, a node cut off from the bus the channel's messages
/// travel on) after another instance renamed it: for 4 s, or until it reads the new title.
/// Returns the title before, the reads, and the deaf instance's outages.
async fn reads_while_deaf(url: &str, echo_check: bool) -> (String, Vec<String>, u64) {
    let silence = Duration::from_millis(600);
    let channel = channel();
    let mut deaf = RedisBroadcast::connect(url, &channel)
        .await
        .unwrap()
        .silence(silence)
        .__deaf();
    if !echo_check {
        deaf = deaf.__without_echo_check();
    }
    let (a, _db) = seeded_over(deaf).await;
    let b = Context::builder(a.store().clone())
        .broadcast(
            RedisBroadcast::connect(url, &channel)
                .await
                .unwrap()
                .silence(silence),
        )
        .build();
    // Past the clear A makes once after subscribing; it never hears of B.
    tokio::time::sleep(silence + Duration::from_millis(300)).await;
    let before = title(&a, 1).await;
    rename_scene(&b, 1, "Heard by the deaf").await;
    let started = Instant::now();
    let mut reads = vec![title(&a, 1).await];
    while reads.last().unwrap() != "Heard by the deaf" && started.elapsed() < Duration::from_secs(4)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        reads.push(title(&a, 1).await);
    }
    eprintln!(
        "A read the new title {:?} after B's commit",
        started.elapsed()
    );
    (before, reads, a.stats().broadcast_outages)
}

/// A subscription that delivers nothing is noticed through the instance's own messages,
/// which do not come back: it counts as lost (an outage), the instance clears and
/// subscribes again, and reads the committed row within its silence bound and two checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_subscription_is_noticed_by_its_own_messages_not_coming_back() {
    let Some(url) = redis_url() else { return };
    let (_, reads, outages) = reads_while_deaf(&url, true).await;
    assert_eq!(reads.last().unwrap(), "Heard by the deaf", "{reads:?}");
    assert!(outages > 0);
}

/// Control: without the check, the deaf instance serves the old title throughout (it never
/// heard of the writer, so the writer's silence tells it nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_echo_check_a_deaf_subscription_serves_the_old_row() {
    let Some(url) = redis_url() else { return };
    let (before, reads, outages) = reads_while_deaf(&url, false).await;
    assert!(reads.iter().all(|t| *t == before), "{reads:?}");
    assert_eq!(outages, 0);
}

/// A writer cut off from Redis for longer than half its silence bound refuses to commit:
/// nothing is written, the error says why (HTTP 503), and once Redis takes it back it
/// commits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_cut_off_from_redis_refuses_to_commit_and_writes_nothing() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.lock().await;
    let mut user = LockableUser::new(&url, "fenced").await;
    let bus = RedisBroadcast::connect(&user.url, channel())
        .await
        .unwrap()
        .silence(Duration::from_millis(600));
    let (a, _db) = common::seeded_with(Backend::Sqlite, |b| b.broadcast(bus))
        .await
        .unwrap();
    Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Before"))
        .await
        .unwrap();
    user.lock_out().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let refused = Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Unheard"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::BroadcastUnreachable { .. }),
        "{refused:?}"
    );
    assert_eq!(refused.http_status(), 503);
    assert_eq!(a.stats().broadcast_refused_commits, 1);
    a.clear();
    assert_eq!(title(&a, 1).await, "Before", "nothing was written");

    user.set(true).await;
    let mut tries = 0;
    loop {
        tries += 1;
        match Scene::repo(&a)
            .update(1, SceneUpdate::default().title("Heard"))
            .await
        {
            Ok(_) => break,
            Err(Error::BroadcastUnreachable { .. }) if tries < 50 => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(title(&a, 1).await, "Heard");
    user.delete().await;
}

/// Redis refuses this instance's messages for good (its user may no longer `PUBLISH`:
/// NOPERM): the publisher does not block on them forever unnoticed: its commits are refused,
/// nothing is written, and the other instance gives up on it within the silence bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_redis_refuses_for_good_refuses_to_commit() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.lock().await;
    let mut user = LockableUser::new(&url, "noperm").await;
    let channel = channel();
    let bus_a = RedisBroadcast::connect(&user.url, channel.clone())
        .await
        .unwrap()
        .silence(Duration::from_millis(900));
    let (a, _db) = seeded_over(bus_a).await;
    let bus_b = listener(&url, &channel).await;
    let b = Context::builder(a.store().clone()).broadcast(bus_b).build();
    Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Heard"))
        .await
        .unwrap();
    within("B applies A's commit", Duration::from_secs(5), || {
        b.stats().broadcasts_received == 1
    })
    .await;
    common::caches_again(&b).await; // once A's release came

    user.deny("publish").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let refused = Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Refused"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::BroadcastUnreachable { .. }),
        "{refused:?}"
    );
    within("B gives up on A", Duration::from_secs(3), || {
        b.stats().broadcast_silences == 1
    })
    .await;
    assert_eq!(title(&b, 1).await, "Heard", "nothing was written");
    user.delete().await;
}

/// What a receiver does with another instance's numbers: a gap clears (and counts), a
/// duplicate or a late message is applied without a gap, an unreadable message clears, and a
/// goodbye means its silence is not a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_and_unreadable_messages_clear_duplicates_and_late_ones_do_not() {
    let Some(url) = redis_url() else { return };
    let (b, _db, channel) = listening(&url).await;
    let warm = async || {
        for id in [1, 2, 3] {
            Scene::repo(&b).get(id).await.unwrap();
        }
        assert!(b.is_cached(SceneKey(3)));
    };
    let scene_key = |id: i64| serde_json::json!({"entity": {"ty": "Scene", "name": "scene"}, "kind": {"Row": {"Int": id}}});
    // This build's graph, as its messages carry it.
    let fingerprint = cached_runtime::graph().fingerprint();
    let send = async |seq: u64, keys: Vec<serde_json::Value>| {
        let json = serde_json::json!({"from": 77, "seq": seq, "graph": fingerprint,
            "silence_ms": 60_000, "keys": keys});
        publish(&url, &channel, json).await;
    };
    warm().await;
    send(1, vec![scene_key(1)]).await;
    within("message 1 applied", Duration::from_secs(5), || {
        !b.is_cached(SceneKey(1))
    })
    .await;
    assert!(b.is_cached(SceneKey(3)), "in order: just the key");

    // 2 and 3 are missed; 4 arrives.
    warm().await;
    send(4, vec![scene_key(1)]).await;
    within("the gap is noticed", Duration::from_secs(5), || {
        b.stats().broadcast_gaps == 1
    })
    .await;
    assert!(!b.is_cached(SceneKey(3)), "a gap clears");

    // 3 arrives late, 4 again: applied, no gap.
    warm().await;
    send(3, vec![scene_key(2)]).await;
    send(4, vec![scene_key(1)]).await;
    within("late and duplicate applied", Duration::from_secs(5), || {
        !b.is_cached(SceneKey(1)) && !b.is_cached(SceneKey(2))
    })
    .await;
    assert!(
        b.is_cached(SceneKey(3)),
        "no clear for a late or repeated one"
    );
    assert_eq!(b.stats().broadcast_gaps, 1);

    // Something that is not a message.
    warm().await;
    publish(&url, &channel, serde_json::json!("not an invalidation")).await;
    // (The listener clears, then counts: wait for both.)
    within(
        "an unreadable message clears",
        Duration::from_secs(5),
        || !b.is_cached(SceneKey(3)) && b.stats().broadcast_gaps == 2,
    )
    .await;

    // A sender that says goodbye is not missed; one that falls silent is.
    warm().await;
    let bye = serde_json::json!({"from": 77, "seq": 5, "graph": fingerprint, "bye": true});
    publish(&url, &channel, bye).await;
    let silent = serde_json::json!({"from": 78, "seq": 1, "graph": fingerprint,
        "silence_ms": 300});
    publish(&url, &channel, silent).await;
    within(
        "the silent sender is noticed",
        Duration::from_secs(3),
        || b.stats().broadcast_silences == 1,
    )
    .await;
    assert!(!b.is_cached(SceneKey(3)), "a silent sender clears");
    assert_eq!(
        b.stats().broadcast_silences,
        1,
        "not the one that said goodbye"
    );
}

/// A message from a build whose graph differs (a rolling deploy) drops, besides what it
/// names, every query and count of the entities it names, and the views that read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_from_another_build_is_applied_conservatively() {
    let Some(url) = redis_url() else { return };
    let (b, _db, channel) = listening(&url).await;
    Scene::repo(&b).get(1).await.unwrap();
    Scene::repo(&b).get(2).await.unwrap();
    Scene::repo(&b).find_by_chapter_id(2).await.unwrap();
    Scene::repo(&b).count_by_chapter_id(2).await.unwrap();
    StoryOutline::get(&b, 1).await.unwrap();
    assert!(b.is_cached(StoryOutlineKey::new(1)));
    // Another build says: scene 1 changed (its key set does not name chapter 2's queries).
    let json = serde_json::json!({"from": 91, "seq": 1, "graph": 12345, "silence_ms": 60_000,
        "keys": [{"entity": {"ty": "Scene", "name": "scene"}, "kind": {"Row": {"Int": 1}}}]});
    publish(&url, &channel, json).await;
    within(
        "the foreign message applied",
        Duration::from_secs(5),
        || b.stats().broadcasts_received == 1,
    )
    .await;
    assert_eq!(b.stats().broadcast_foreign, 1);
    assert!(!b.is_cached(SceneKey(1)));
    assert!(!b.is_cached(SceneQuery::ByChapterId(2).list_key()));
    assert!(!b.is_cached(SceneQuery::ByChapterId(2).count_key()));
    assert!(!b.is_cached(StoryOutlineKey::new(1)), "views reading them");
    assert!(b.is_cached(SceneKey(2)), "rows it does not name stay");
}

/// A database seeded without a broadcast, and a context over it with `bus`: no message of
/// the seeding is still on its way to another instance when a test begins (a fenced commit's
/// release is published after the commit returns; one came late to B under load and dropped
/// what the test had just cached there).
async fn seeded_over(bus: RedisBroadcast) -> (Context, common::TestDb) {
    let (seeded, db) = common::seeded_with(Backend::Sqlite, |b| b).await.unwrap();
    let ctx = Context::builder(seeded.store().clone())
        .broadcast(bus)
        .build();
    (ctx, db)
}

/// When Redis does not take messages and more queue up than `max_queued`, everything queued
/// goes as one clear; an invalidation larger than `max_message_bytes` goes as whole-entity
/// bumps. Both are counted as degraded, and both reach the other instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_queue_and_an_oversized_message_degrade_and_still_arrive() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.lock().await;
    let mut user = LockableUser::new(&url, "queue").await;
    let channel = channel();
    let bus_a = RedisBroadcast::connect(&user.url, channel.clone())
        .await
        .unwrap()
        .silence(Duration::from_secs(20))
        .commit_wait(Duration::from_millis(50))
        .max_queued(3)
        .max_message_bytes(250);
    let (a, _db) = seeded_over(bus_a).await;
    let bus_b = listener(&url, &channel).await;
    let b = Context::builder(a.store().clone()).broadcast(bus_b).build();
    // Oversized: three rows in one message exceed 250 bytes; they go as a Scene bump.
    Scene::repo(&b).get(1).await.unwrap();
    Chapter::repo(&b).get(1).await.unwrap();
    let degraded = a.stats().broadcast_degraded; // read, not assumed to be 0
    let mut tx = a.begin().await.unwrap();
    for id in 1..=3 {
        Scene::repo(&mut tx)
            .update(id, SceneUpdate::default().word_count(7))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    within("the coarse message arrives", Duration::from_secs(5), || {
        !b.is_cached(SceneKey(1))
    })
    .await;
    assert!(b.is_cached(ChapterKey(1)), "whole Scene, not a clear");
    // (A counts a message once Redis has answered: B may have applied it a moment before.)
    within(
        "A counts the coarse message",
        Duration::from_secs(5),
        || a.stats().broadcast_degraded == degraded + 1,
    )
    .await;

    // Overflow: Redis refuses A; five commits queue up behind a limit of three.
    Chapter::repo(&b).get(1).await.unwrap();
    common::caches_again(&b).await; // once A's release came
    user.lock_out().await;
    for i in 0..5 {
        Scene::repo(&a)
            .update(1, SceneUpdate::default().word_count(100 + i))
            .await
            .unwrap();
    }
    assert!(b.is_cached(SceneKey(1)), "nothing reached B yet");
    user.set(true).await;
    within("the clear arrives", Duration::from_secs(10), || {
        !b.is_cached(ChapterKey(1))
    })
    .await;
    within("A counts the clear", Duration::from_secs(5), || {
        a.stats().broadcast_degraded >= degraded + 2
    })
    .await;
    assert_eq!(
        Scene::repo(&b).get(1).await.unwrap().unwrap().word_count,
        104
    );
    user.delete().await;
}

/// A Redis user denied `INFO` (a locked-down ACL): the broadcast works as for any user, and
/// the shared cache falls back to keeping its run in a key (with a warning; it then cannot
/// tell a restore or a lossy failover from an ordinary day): a view A stored is read from
/// Redis by B, and A's commit reaches B. Every answer equals a cold read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_denied_info_still_broadcasts_and_shares() {
    let Some(url) = redis_url() else { return };
    let channel = channel();
    let mut user = LockableUser::new(&url, "noinfo").await;
    user.deny("info").await;
    let bus = async || {
        RedisBroadcast::connect(&user.url, channel.clone())
            .await
            .expect("INFO is not needed to connect")
            .shared_cache(SharedCache::new())
    };
    let bus_a = bus().await;
    let (a, db) = common::seeded_with(Backend::Sqlite, |b| {
        b.broadcast(bus_a).share_view::<StoryOutline>()
    })
    .await
    .unwrap();
    // B keeps nothing in process: each read asks Redis first.
    let b = Context::builder(a.store().clone())
        .broadcast(bus().await)
        .share_view::<StoryOutline>()
        .max_entry_bytes(1)
        .build();
    let cold = async || {
        let cold = Context::new(db.store.clone());
        (*StoryOutline::get(&cold, 1).await.unwrap().unwrap()).clone()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.stats().shared.hits == 0 {
        a.clear();
        assert_eq!(
            *StoryOutline::get(&a, 1).await.unwrap().unwrap(),
            cold().await
        );
        assert_eq!(
            *StoryOutline::get(&b, 1).await.unwrap().unwrap(),
            cold().await
        );
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            a.stats().shared,
            b.stats().shared
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rename_scene(&a, 1, "Renamed by a user denied INFO").await;
    let on_b = (*StoryOutline::get(&b, 1).await.unwrap().unwrap()).clone();
    assert_eq!(on_b, cold().await);
    assert!(format!("{on_b:?}").contains("Renamed by a user denied INFO"));
    // The weaker guarantee is visible in the stats, not only in the log.
    assert!(!b.stats().shared.runs_checked);
    assert!(b.stats().to_string().contains("in a key"), "{}", b.stats());
    user.delete().await;
}
