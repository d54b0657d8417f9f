//! Many instances in front of one database: two contexts (two in-process caches) over the same
//! store, each broadcasting its invalidations on one Redis channel. A commit, a manual
//! invalidation or a clear on one drops the same keys on the other; a remote commit refuses
//! the other's stale fill; a lost subscription takes the cache offline until it is back.
//!
//! Needs Redis: `CACHED_REDIS_URL` (e.g. `redis://127.0.0.1:6379`), with the same skip/require
//! rule as the database servers. Each test uses its own channel.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cached_runtime::{Context, ContextBuilder, Error, LoadView, QueryKey, RedisBroadcast, Source};
use common::domain::*;
use common::redis_users::{channel, redis_url, LockableUser};
use common::torture::{self, Instances};
use common::Backend;

/// Tests that take Redis users away lock this exclusively; the others share it.
static REDIS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Two instances over one seeded SQLite database (the broadcast does not look at the store),
/// both on `channel`; `configure_b` may slow the second one down.
async fn two_instances(
    url: &str,
    configure_b: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> (Context, Context, common::TestDb) {
    two_instances_on(Backend::Sqlite, url, |a| a, |bus| bus, configure_b)
        .await
        .expect("SQLite always runs")
}

/// [`two_instances`] over `backend`'s database (`None` when it is skipped); `configure_a`
/// may slow A down, `bus_b` may change B's broadcast.
async fn two_instances_on(
    backend: Backend,
    url: &str,
    configure_a: impl FnOnce(ContextBuilder) -> ContextBuilder,
    bus_b: impl FnOnce(RedisBroadcast) -> RedisBroadcast,
    configure_b: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> Option<(Context, Context, common::TestDb)> {
    let channel = channel();
    // Long enough that a commit on A never returns before Redis took its message, however
    // loaded the machine: the torture test counts a version as heard once A counted it sent.
    let bus_a = RedisBroadcast::connect(url, channel.clone())
        .await
        .unwrap()
        .commit_wait(Duration::from_secs(60));
    // Seeded without the broadcast, so that no message of the seeding is still on its way to
    // B when a test begins (a fenced commit's release is published after the commit returns).
    let (seeded, db) = common::seeded_with(backend, |b| b).await?;
    let a = configure_a(Context::builder(seeded.store().clone()).broadcast(bus_a)).build();
    let bus_b = bus_b(RedisBroadcast::connect(url, channel).await.unwrap());
    let b = configure_b(Context::builder(a.store().clone()).broadcast(bus_b)).build();
    Some((a, b, db))
}

/// Polls `done` until it holds, for at most 5 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_instance_drops_the_same_keys_on_the_other() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.read().await;
    let (a, b, _db) = two_instances(&url, |b| b).await;
    // Each remote invalidation B applies, as its sorted keys.
    let remote: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let seen = remote.clone();
    b.on_invalidate(move |inv| {
        if inv.source == Source::Remote {
            let mut keys: Vec<String> = inv.keys.iter().map(ToString::to_string).collect();
            keys.sort();
            seen.lock().unwrap().push(keys);
        }
    });
    for ctx in [&a, &b] {
        Scene::repo(ctx).get(1).await.unwrap().unwrap();
        Scene::repo(ctx).find_by_chapter_id(1).await.unwrap();
        Scene::repo(ctx).find_by_chapter_id(2).await.unwrap();
        Scene::repo(ctx).count_by_chapter_id(1).await.unwrap();
        Scene::repo(ctx)
            .count_grouped_by_chapter_id()
            .await
            .unwrap();
        Scene::repo(ctx).count_grouped_by_status().await.unwrap();
        StoryOutline::get(ctx, 1).await.unwrap().unwrap();
    }
    assert!(b.is_cached(SceneQuery::ByChapterId(1).count_key()));
    assert!(b.is_cached(SceneKey(1)));
    assert!(b.is_cached(SceneKey(3)));

    let (sa0, sb0) = (a.stats(), b.stats());
    // Scene 1 moves from chapter 1 to chapter 2 on instance A.
    let mut tx = a.begin().await.unwrap();
    Scene::repo(&mut tx)
        .update(1, SceneUpdate::default().chapter_id(2).title("Moved"))
        .await
        .unwrap();
    let report = tx.commit().await.unwrap();
    let mut sent = report.key_strings();
    sent.sort();
    // Once the whole message is in effect on B, its hooks have run: B applied exactly the keys
    // A dropped, in one invalidation.
    eventually("B applies A's message, with exactly A's keys", || {
        remote.lock().unwrap().contains(&sent)
    })
    .await;
    assert!(b.stats().broadcasts_received > sb0.broadcasts_received);
    assert!(!b.is_cached(SceneKey(1)));
    assert!(!b.is_cached(SceneQuery::ByChapterId(1).list_key()));
    assert!(!b.is_cached(SceneQuery::ByChapterId(2).list_key()));
    assert!(!b.is_cached(SceneQuery::ByChapterId(1).count_key()));
    assert!(!b.is_cached(StoryOutlineKey::new(1)));
    // The grouped counts of the field that changed, derived by B from the counts it heard of;
    // those of the field that did not stay.
    assert!(!b.is_cached(SceneQuery::count_grouped_by_chapter_id().key()));
    assert!(b.is_cached(SceneQuery::count_grouped_by_status().key()));
    // Exactly the keys A dropped: scene 3 and its row stay cached on B.
    assert!(b.is_cached(SceneKey(3)), "a precise broadcast, not a clear");

    // B now reads the new state from the database.
    assert_eq!(
        Scene::repo(&b).get(1).await.unwrap().unwrap().title,
        "Moved"
    );
    let in_one: Vec<i64> = Scene::repo(&b)
        .find_by_chapter_id(1)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(in_one, [2]);
    let (sa, sb) = (a.stats(), b.stats());
    let sent = |s: &cached_runtime::Stats, s0: &cached_runtime::Stats| {
        (
            s.broadcasts_sent - s0.broadcasts_sent,
            s.broadcasts_received - s0.broadcasts_received,
        )
    };
    assert_eq!(
        sent(&sa, &sa0),
        (1, 0),
        "A sends, and ignores its own message"
    );
    assert_eq!(
        sent(&sb, &sb0),
        (0, 1),
        "B receives, and sends nothing back"
    );
}

/// A hook is user code: one that panics, on the writer or on the listener, is caught and
/// counted, and neither the commit, the other hooks nor the broadcast (sent and heard) stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_hook_stops_neither_the_commit_nor_the_broadcast() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.read().await;
    let (a, b, db) = two_instances(&url, |b| b).await;
    a.on_invalidate(|_| panic!("a buggy hook on the writer"));
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    a.on_invalidate(move |_| {
        counted.fetch_add(1, SeqCst);
    });
    b.on_invalidate(|inv| {
        if inv.source == Source::Remote {
            panic!("a buggy hook on the listener");
        }
    });
    for round in 1..=2 {
        Scene::repo(&b).get(1).await.unwrap().unwrap();
        assert!(b.is_cached(SceneKey(1)));
        let title = format!("title {round}");
        Scene::repo(&a)
            .update(1, SceneUpdate::default().title(title.as_str()))
            .await
            .expect("a panicking hook does not fail the commit");
        eventually("B hears A's commit", || !b.is_cached(SceneKey(1))).await;
        assert_eq!(Scene::repo(&b).get(1).await.unwrap().unwrap().title, title);
        db.assert_scene_fresh(&a, 1, "a commit whose hook panicked")
            .await;
        assert_eq!(
            ran.load(SeqCst),
            round,
            "the hook after the panicking one ran"
        );
        assert_eq!(a.stats().hook_panics, round as u64);
        // B's hooks run once its cache dropped the keys: counted a moment later.
        eventually("the listener counts the panic", || {
            b.stats().hook_panics == round as u64
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_invalidations_and_clears_reach_every_instance() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.read().await;
    let (a, b, _db) = two_instances(&url, |b| b).await;
    Scene::repo(&b).get(1).await.unwrap();
    Scene::repo(&b).get(2).await.unwrap();
    Story::repo(&b).get(1).await.unwrap();

    a.invalidate::<Scene>(1);
    eventually("B drops scene 1", || !b.is_cached(SceneKey(1))).await;
    assert!(b.is_cached(SceneKey(2)));

    // A raw write touching scene 1: every query of Scene goes (a queries-only bump), rows stay.
    Scene::repo(&b).find_by_chapter_id(1).await.unwrap();
    let mut tx = a.begin().await.unwrap();
    tx.raw_write("UPDATE scenes SET word_count = word_count + 1 WHERE id = 1")
        .touches::<Scene>([1])
        .execute()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    eventually("B drops Scene's queries", || {
        !b.is_cached(SceneQuery::ByChapterId(1).list_key())
    })
    .await;
    assert!(
        b.is_cached(SceneKey(2)),
        "rows the raw write did not touch stay"
    );

    a.invalidate_entity::<Scene>();
    eventually("B drops every scene", || !b.is_cached(SceneKey(2))).await;
    assert!(b.is_cached(StoryKey(1)));

    a.clear();
    eventually("B drops everything", || !b.is_cached(StoryKey(1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_commit_refuses_a_load_that_read_before_it() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.read().await;
    let (a, b, _db) = two_instances(&url, |b| b.__fill_delay(Duration::from_millis(300))).await;
    let slow = {
        let b = b.clone();
        tokio::spawn(async move { Scene::repo(&b).get(1).await.unwrap().unwrap().title.clone() })
    };
    common::loads_paused(&b, 1).await; // B has read the old row and not stored it yet
    Scene::repo(&a)
        .update(1, SceneUpdate::default().title("New"))
        .await
        .unwrap();
    assert_eq!(
        slow.await.unwrap(),
        "Scene 1",
        "B's read began before the commit"
    );
    assert_eq!(b.stats().stale_fills_rejected, 1, "{}", b.stats());
    assert_eq!(Scene::repo(&b).get(1).await.unwrap().unwrap().title, "New");
}

/// A read on B while A's database commit is under way, once A's fence has reached B: B loads
/// the old row. Returns B's answers during and right after the commit, and the database's.
/// B ignores the release (as if it were lost), so only the fence stands between B and the
/// old row it read; `unfenced`, B applies the fence as a plain drop (the control).
async fn read_during_a_fenced_commit(
    backend: Backend,
    unfenced: bool,
) -> Option<(String, String, String, Context, common::TestDb)> {
    let url = redis_url()?;
    let channel = channel();
    let silence = Duration::from_millis(900);
    let bus_a = RedisBroadcast::connect(&url, channel.clone())
        .await
        .unwrap();
    let bus_a = bus_a.silence(silence).commit_wait(Duration::from_secs(10));
    let pause = Duration::from_millis(400);
    let (a, db) =
        common::seeded_with(backend, |b| b.broadcast(bus_a).__commit_delay(pause)).await?;
    let bus_b = RedisBroadcast::connect(&url, channel).await.unwrap();
    let bus_b = bus_b.silence(silence).__ignore_releases();
    let bus_b = if unfenced { bus_b.__unfenced() } else { bus_b };
    let b = Context::builder(a.store().clone()).broadcast(bus_b).build();
    assert_eq!(common::scene_title(&b, 1).await, "Scene 1");
    let heard = b.stats().broadcasts_received;
    let commit = {
        let a = a.clone();
        tokio::spawn(async move {
            let renamed = SceneUpdate::default().title("Renamed");
            Scene::repo(&a).update(1, renamed).await.unwrap();
        })
    };
    // The fence reaches B while A's database commit is paused.
    eventually("B hears the fence", || {
        b.stats().broadcasts_received > heard
    })
    .await;
    assert!(!commit.is_finished(), "the commit pauses after its fence");
    let during = common::scene_title(&b, 1).await;
    commit.await.unwrap();
    let after = common::scene_title(&b, 1).await;
    let database = db.scene(1).await.expect("scene 1").title;
    Some((during, after, database, b, db))
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_read_on_another_instance_returns_older_data_once_it_heard_of_the_commit(backend) {
        let Some((violations, summary)) = torture_two_instances(backend, true, Fences::Released).await else {
            return;
        };
        assert_eq!(violations, 0, "{summary}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fence_keeps_a_read_made_during_the_commit_out_of_the_cache(backend) {
        let _turn = REDIS.read().await;
        let Some((during, after, database, b, _db)) = read_during_a_fenced_commit(backend, false).await
        else {
            return;
        };
        assert_eq!(during, "Scene 1", "B read before the commit was visible");
        assert_eq!(database, "Renamed");
        assert_eq!(after, database, "B after commit() returned: {}", b.stats());
        assert!(!b.is_cached(SceneKey(1)), "nothing is stored while the fence is up");
        // The release never comes: the fence comes down after A's silence bound, and B
        // caches the row again, the database's.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let title = common::scene_title(&b, 1).await;
            if b.is_cached(SceneKey(1)) {
                assert_eq!(title, "Renamed");
                break;
            }
            assert!(Instant::now() < deadline, "the fence never came down");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_fence_a_read_during_the_commit_is_served_after_it(backend) {
        let _turn = REDIS.read().await;
        let Some((during, after, database, b, _db)) = read_during_a_fenced_commit(backend, true).await
        else {
            return;
        };
        assert_eq!((during.as_str(), database.as_str()), ("Scene 1", "Renamed"));
        assert_eq!(after, "Scene 1", "the control found no stale read: {}", b.stats());
    }
}

/// A row B reads often is warmed again after another instance's commit: once the fence is
/// down (while it is up nothing could be stored), B reloads it without being asked, and the
/// reload is the database's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_row_is_warmed_again_once_a_remote_fence_is_released() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.read().await;
    let (a, b, db) = two_instances(&url, |b| b.warm::<Scene>()).await;
    for _ in 0..3 {
        common::scene_title(&b, 1).await;
    }
    assert!(b.is_cached(SceneKey(1)));
    let renamed = SceneUpdate::default().title("Warmed");
    Scene::repo(&a).update(1, renamed).await.unwrap();
    eventually("B warms scene 1 again", || b.stats().warmed == 1).await;
    assert!(b.is_cached(SceneKey(1)));
    let misses = b.stats().misses;
    db.assert_scene_fresh(&b, 1, "the warmed row").await;
    assert_eq!(b.stats().misses, misses, "served from the warmed entry");
}

/// B's Redis user is locked out: it cannot hear a commit made meanwhile, so it must not serve
/// anything it cached, nor cache anything, until it has subscribed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_serves_from_the_database_until_it_is_back() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.write().await;
    let mut user = LockableUser::new(&url, "b").await;
    let channel = channel();
    let bus_a = RedisBroadcast::connect(&url, channel.clone())
        .await
        .unwrap();
    let (a, _db) = common::seeded_with(Backend::Sqlite, |b| b.broadcast(bus_a))
        .await
        .unwrap();
    let bus_b = RedisBroadcast::connect(&user.url, channel).await.unwrap();
    let b = Context::builder(a.store().clone()).broadcast(bus_b).build();
    Scene::repo(&b).get(1).await.unwrap();
    assert!(b.is_cached(SceneKey(1)));

    user.lock_out().await;
    eventually("B notices the lost subscription", || {
        b.stats().broadcast_outages == 1
    })
    .await;
    assert!(!b.is_cached(SceneKey(1)), "an outage drops what B cached");

    // A commit that B cannot hear of.
    Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Unheard"))
        .await
        .unwrap();
    for _ in 0..3 {
        let title = Scene::repo(&b).get(1).await.unwrap().unwrap().title.clone();
        assert_eq!(title, "Unheard", "B reads the database while it is offline");
    }
    assert!(!b.is_cached(SceneKey(1)), "nothing is cached while offline");

    // Redis lets B back in: it resubscribes and caches again.
    user.set(true).await;
    common::caches_again(&b).await;
    Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Heard"))
        .await
        .unwrap();
    eventually("B hears commits again", || !b.is_cached(SceneKey(1))).await;
    user.delete().await;
}

/// A's Redis user is locked out when it commits: the commit succeeds (the database has it) after
/// waiting at most `commit_wait`, and the message goes out as soon as Redis takes A back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_redis_refuses_is_retried_until_it_lands() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.write().await;
    let mut user = LockableUser::new(&url, "a").await;
    let channel = channel();
    // A silence bound long enough that A, cut off, still commits (its fence is half of it).
    let bus_a = RedisBroadcast::connect(&user.url, channel.clone())
        .await
        .unwrap()
        .commit_wait(Duration::from_millis(100))
        .silence(Duration::from_secs(10));
    let (a, _db) = common::seeded_with(Backend::Sqlite, |b| b.broadcast(bus_a))
        .await
        .unwrap();
    let bus_b = RedisBroadcast::connect(&url, channel).await.unwrap();
    let b = Context::builder(a.store().clone()).broadcast(bus_b).build();
    Scene::repo(&b).get(1).await.unwrap();
    let sent = a.stats().broadcasts_sent;

    user.lock_out().await;
    let started = Instant::now();
    Scene::repo(&a)
        .update(1, SceneUpdate::default().title("Delayed"))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a commit waits for Redis at most its commit_wait (and the write's own retries)"
    );
    assert!(
        b.is_cached(SceneKey(1)),
        "nothing reached B while A was locked out"
    );
    assert_eq!(a.stats().broadcasts_sent, sent);

    user.set(true).await;
    eventually("A's message lands once Redis takes A back", || {
        !b.is_cached(SceneKey(1))
    })
    .await;
    eventually("A counts it as sent", || {
        a.stats().broadcasts_sent == sent + 1
    })
    .await;
    assert_eq!(
        Scene::repo(&b).get(1).await.unwrap().unwrap().title,
        "Delayed"
    );
    user.delete().await;
}

/// Redis stops answering without closing anything (`CLIENT PAUSE`): B's heartbeat notices and
/// B goes offline until Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_takes_the_subscriber_offline() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.write().await;
    let (_a, b, _db) = two_instances(&url, |b| b).await;
    Scene::repo(&b).get(1).await.unwrap();
    assert!(b.is_cached(SceneKey(1)));
    let admin = redis::Client::open(url.as_str()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    eventually("B's heartbeat notices", || b.stats().broadcast_outages == 1).await;
    assert!(!b.is_cached(SceneKey(1)), "offline: nothing cached");
    Scene::repo(&b).get(1).await.unwrap();
    assert!(!b.is_cached(SceneKey(1)), "offline: nothing cached");
    common::caches_again(&b).await;
}

/// The torture test across instances: writers commit on A (fenced commits: each announced
/// while the database commits), readers read through B, which hears of the writes only over
/// Redis. A reader first waits until B has received every broadcast A had sent when the
/// reader noted the committed versions; from then on B must not return an older version,
/// which holds only if remote invalidations and fences refuse B's loads in flight.
/// `fences`: whether B raises the fences it hears (else it applies them as plain drops: a
/// control), and whether it ignores A's releases (as if each were lost).
async fn torture_two_instances(
    backend: Backend,
    protect: bool,
    fences: Fences,
) -> Option<(u64, String)> {
    let url = redis_url()?;
    let _turn = REDIS.read().await;
    let bus_b = |bus: RedisBroadcast| match fences {
        Fences::Released => bus,
        Fences::NeverReleased => bus.__ignore_releases(),
        Fences::IgnoredNeverReleased => bus.__unfenced().__ignore_releases(),
    };
    // With releases lost, each commit pauses after its fence (200 µs): B's readers load
    // during more of A's commits, which is what the fences must keep out.
    let configure_a = |a: ContextBuilder| match fences {
        Fences::Released => a,
        _ => a.__commit_delay(Duration::from_micros(200)),
    };
    let configure_b = torture::configure(protect);
    let (a, b, _db) = two_instances_on(backend, &url, configure_a, bus_b, configure_b).await?;
    let label = format!("{backend:?}, writes on A, reads on B over Redis ({fences:?})");
    Some(torture::run(&label, protect, Instances::two(a, b)).await)
}

/// What B does with A's fences in the torture test across instances.
#[derive(Debug, Clone, Copy)]
enum Fences {
    /// Raises them, and lowers them on their release (the product).
    Released,
    /// Raises them; every release is lost (they come down after A's silence bound).
    NeverReleased,
    /// Applies them as plain drops; every release is lost (the control).
    IgnoredNeverReleased,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_instances_the_torture_test_finds_stale_reads_when_the_guard_is_off() {
    let Some((violations, summary)) =
        torture_two_instances(Backend::Sqlite, false, Fences::Released).await
    else {
        return;
    };
    assert!(
        violations > 0,
        "the test could not detect the race: {summary}"
    );
}

/// Every release lost: B's fences alone keep what its readers loaded during A's commits out
/// of its cache (until they come down after A's silence bound, applied once more).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_instances_fences_alone_keep_older_data_out_when_releases_are_lost() {
    let outcome = torture_two_instances(Backend::Postgres, true, Fences::NeverReleased).await;
    let Some((violations, summary)) = outcome else {
        return;
    };
    assert_eq!(violations, 0, "{summary}");
}

/// The control: the same with B applying A's fences as plain drops (its stale-fill guard
/// on). A load that read before A's commit was visible is stored, and served after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_instances_the_torture_test_finds_stale_reads_without_fences() {
    let outcome =
        torture_two_instances(Backend::Postgres, true, Fences::IgnoredNeverReleased).await;
    let Some((violations, summary)) = outcome else {
        return;
    };
    assert!(
        violations > 0,
        "the test could not detect the race: {summary}"
    );
}

/// The broadcast's tasks run on the runtime that connected; when that runtime shuts down while
/// the context lives on, the context can no longer hear other instances and caches nothing.
#[test]
fn a_context_whose_broadcast_runtime_is_gone_caches_nothing() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.blocking_read();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, _db) = rt
        .block_on(common::seeded_with(Backend::Sqlite, |b| b))
        .unwrap();
    let short_lived = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bus = short_lived
        .block_on(RedisBroadcast::connect(&url, channel()))
        .unwrap();
    let b =
        short_lived.block_on(async { Context::builder(a.store().clone()).broadcast(bus).build() });
    rt.block_on(async {
        Scene::repo(&b).get(1).await.unwrap();
        assert!(b.is_cached(SceneKey(1)), "caches while the broadcast runs");
    });
    drop(short_lived);
    rt.block_on(async {
        assert!(
            !b.is_cached(SceneKey(1)),
            "the broadcast stopped: nothing cached is served"
        );
        Scene::repo(&b).get(1).await.unwrap();
        assert!(!b.is_cached(SceneKey(1)), "and nothing new is cached");
    });
}

#[tokio::test]
async fn an_unreachable_redis_is_a_typed_error() {
    let err = RedisBroadcast::connect("redis://127.0.0.1:1", "nowhere")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Redis(_)), "{err:?}");
    assert!(err.to_string().contains("RedisBroadcast::connect"), "{err}");
}
