//! The shared cache in Redis (a second level behind each instance's own): a view computed on
//! one instance is read from Redis by the others; a commit deletes what it reaches before
//! any instance hears of it; a store overtaken by a commit is refused; an entry this build
//! cannot read is a miss; while Redis is paused, the breaker sends reads to the database
//! (and without it, every read waits out the timeout).
//! Every answer is compared with a cold read (a context without any cache in common).
//!
//! Needs Redis (`CACHED_REDIS_URL`) and each database server, as the other tests. Redis
//! restarting, empty or from an older snapshot, is in `restarts`.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
mod restarts;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cached_runtime::{
    CachedView, Context, ContextBuilder, LoadView, RedisBroadcast, Result, SharedCache, ViewCtx,
};
use common::domain::*;
use common::redis_users::{channel, redis_url, rename_scene, Echo, OwnRedis};
use common::Backend;

/// The test that pauses Redis takes this exclusively; the others share it.
static REDIS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Two instances over one seeded database, on one channel, each with a shared cache
/// (`settings`) and sharing what `share` says. Also returns the channel (the keys' prefix).
async fn two_instances(
    backend: Backend,
    url: &str,
    settings: impl Fn(SharedCache) -> SharedCache,
    share: impl Fn(ContextBuilder) -> ContextBuilder,
) -> Option<(Context, Context, common::TestDb, String)> {
    let channel = channel();
    let bus = |channel: String| async {
        RedisBroadcast::connect(url, channel)
            .await
            .unwrap()
            .commit_wait(Duration::from_secs(60))
            .shared_cache(settings(SharedCache::new()))
    };
    let bus_a = bus(channel.clone()).await;
    let (a, db) = common::seeded_with(backend, |b| share(b.broadcast(bus_a))).await?;
    let bus_b = bus(channel.clone()).await;
    let b = share(Context::builder(a.store().clone()).broadcast(bus_b)).build();
    Some((a, b, db, channel))
}

fn views(builder: ContextBuilder) -> ContextBuilder {
    builder
        .share_view::<StoryOutline>()
        .share_view::<GatedTitle>()
}

/// What a context with no cache in common with the instances reads.
async fn cold_outline(db: &common::TestDb, story: i64) -> Option<StoryOutline> {
    let cold = Context::new(db.store.clone());
    StoryOutline::get(&cold, story)
        .await
        .unwrap()
        .map(|o| (*o).clone())
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn shared_entry(url: &str, channel: &str, key: &str) -> Option<Vec<u8>> {
    redis::cmd("HGET")
        .arg(format!("{{{channel}}}:v:{key}"))
        .arg("v")
        .query_async(&mut redis(url).await)
        .await
        .unwrap()
}

/// A view whose load can be held between its read and its return.
#[derive(CachedView, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[view(key = "Scene", reads(Scene))]
struct GatedTitle {
    title: String,
}

static HOLD_LOADS: AtomicBool = AtomicBool::new(false);

fn gate() -> &'static (tokio::sync::Notify, tokio::sync::Notify) {
    static GATE: OnceLock<(tokio::sync::Notify, tokio::sync::Notify)> = OnceLock::new();
    GATE.get_or_init(Default::default)
}

impl LoadView for GatedTitle {
    async fn load(ctx: &mut ViewCtx<'_, Self>, id: i64) -> Result<Option<Self>> {
        let scene = ctx.get::<Scene>(id).await?;
        if HOLD_LOADS.load(SeqCst) {
            let (read, release) = gate();
            read.notify_one();
            release.notified().await;
        }
        Ok(scene.map(|s| GatedTitle {
            title: s.title.clone(),
        }))
    }
}

/// Starts a load of `GatedTitle` 1 on `ctx` and returns once it has read scene 1; the load is
/// held until `gate().1` is notified.
async fn held_load(ctx: &Context) -> tokio::task::JoinHandle<std::sync::Arc<GatedTitle>> {
    HOLD_LOADS.store(true, SeqCst);
    let loading = {
        let ctx = ctx.clone();
        tokio::spawn(async move { GatedTitle::get(&ctx, 1).await.unwrap().unwrap() })
    };
    gate().0.notified().await;
    HOLD_LOADS.store(false, SeqCst);
    loading
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_view_computed_on_one_instance_is_read_from_redis_by_the_other(backend) {
        let Some(url) = redis_url() else { return };
        let _turn = REDIS.read().await;
        // Everything compressed on the way: the compressed path is the one exercised.
        let Some((a, b, db, channel)) =
            two_instances(backend, &url, |s| s.compress_over(0), views).await
        else {
            return;
        };
        let on_a = StoryOutline::get(&a, 1).await.unwrap().unwrap();
        assert_eq!(a.stats().shared.stores, 1, "{}", a.stats());
        assert!(shared_entry(&url, &channel, "story_outline:1").await.is_some());
        let on_b = StoryOutline::get(&b, 1).await.unwrap().unwrap();
        let shared = b.stats().shared;
        assert_eq!((shared.hits, shared.misses), (1, 0), "B read it from Redis");
        assert!(shared.runs_checked, "stamped with the Redis process's run");
        assert_eq!(*on_b, *on_a);
        assert_eq!(Some((*on_b).clone()), cold_outline(&db, 1).await);
        // B now holds it in process: the next read is a plain hit.
        StoryOutline::get(&b, 1).await.unwrap();
        assert_eq!(b.stats().shared.hits, 1);

        // A commit on B: the shared instance is gone when commit() returns, and each
        // instance's next read is computed again, equal to a cold read.
        rename_scene(&b, 1, "Renamed on B").await;
        assert!(shared_entry(&url, &channel, "story_outline:1").await.is_none());
        for ctx in [&a, &b] {
            let mut fresh = None;
            let deadline = Instant::now() + Duration::from_secs(5);
            while fresh.is_none() && Instant::now() < deadline {
                let read = StoryOutline::get(ctx, 1).await.unwrap().map(|o| (*o).clone());
                if read == cold_outline(&db, 1).await {
                    fresh = read;
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let fresh = fresh.expect("the instance read the renamed outline within 5 s");
            assert!(fresh.chapters.iter().any(|c| c.scenes.iter().any(|s| s.1 == "Renamed on B")));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_rows_are_read_from_redis_and_deleted_by_a_write(backend) {
        let Some(url) = redis_url() else { return };
        let _turn = REDIS.read().await;
        let share = |b: ContextBuilder| b.share_rows::<Scene>();
        let Some((a, b, db, channel)) = two_instances(backend, &url, |s| s, share).await else {
            return;
        };
        Scene::repo(&a).get(2).await.unwrap().unwrap();
        let on_b = Scene::repo(&b).get(2).await.unwrap().unwrap();
        assert_eq!(b.stats().shared.hits, 1);
        assert_eq!(Some((*on_b).clone()), db.scene(2).await);
        rename_scene(&a, 2, "Renamed on A").await;
        assert!(shared_entry(&url, &channel, "scene:2").await.is_none());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let read = Scene::repo(&b).get(2).await.unwrap().map(|s| (*s).clone());
            if read == db.scene(2).await {
                assert_eq!(read.unwrap().title, "Renamed on A");
                break;
            }
            assert!(Instant::now() < deadline, "B still reads the old row");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Absent rows are not shared: B's miss of one goes to the database.
        assert!(Scene::repo(&b).get(999).await.unwrap().is_none());
        assert!(shared_entry(&url, &channel, "scene:999").await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_this_build_cannot_read_is_a_miss_and_is_replaced(backend) {
        let Some(url) = redis_url() else { return };
        let _turn = REDIS.read().await;
        let Some((a, b, db, channel)) = two_instances(backend, &url, |s| s, views).await else {
            return;
        };
        StoryOutline::get(&a, 1).await.unwrap().unwrap();
        // Damaged in place (its stamp kept, so only its bytes are wrong).
        let _: () = redis::cmd("HSET")
            .arg(format!("{{{channel}}}:v:story_outline:1"))
            .arg("v")
            .arg(&b"\x01\x01\xff\xff\xff\x7fgarbage"[..])
            .query_async(&mut redis(&url).await)
            .await
            .unwrap();
        let on_b = StoryOutline::get(&b, 1).await.unwrap().map(|o| (*o).clone());
        assert_eq!(on_b, cold_outline(&db, 1).await, "answered from the database");
        let shared = b.stats().shared;
        assert_eq!((shared.undecodable, shared.hits, shared.stores), (1, 0, 1), "{shared:?}");
        // What B stored in its place reads back.
        let c = views(Context::builder(db.store.clone()).broadcast(
            RedisBroadcast::connect(&url, channel.clone())
                .await
                .unwrap()
                .shared_cache(SharedCache::new()),
        ))
        .build();
        assert_eq!(StoryOutline::get(&c, 1).await.unwrap().map(|o| (*o).clone()), on_b);
        assert_eq!(c.stats().shared.hits, 1);
    }
}

/// A store whose load read something a commit changed before the store is refused: the
/// other instance computes the view again rather than read the old one from Redis. With
/// the protections off (`__unchecked_stores`), it reads the old one: the check is what
/// keeps it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_overtaken_by_a_commit_is_refused() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.write().await;
    for checked in [true, false] {
        let settings = move |s: SharedCache| match checked {
            true => s,
            false => s.__unchecked_stores(),
        };
        let (a, b, db, channel) = two_instances(Backend::Sqlite, &url, settings, views)
            .await
            .expect("SQLite always runs");
        let title = format!("Renamed ({checked})");
        // A reads scene 1; B renames it; A's load then returns its old title.
        let loading = held_load(&a).await;
        rename_scene(&b, 1, &title).await;
        gate().1.notify_one();
        let old = loading.await.unwrap();
        assert_ne!(old.title, title, "the load read before the commit");
        let on_b = GatedTitle::get(&b, 1).await.unwrap().unwrap();
        let in_redis = shared_entry(&url, &channel, "gated_title:1").await;
        if checked {
            assert_eq!(on_b.title, title, "B read the view as of after the commit");
            assert_eq!(db.scene(1).await.unwrap().title, title);
            assert_eq!(b.stats().shared.hits, 0);
        } else {
            assert_eq!(
                on_b.title, old.title,
                "without the checks B reads the old value"
            );
            assert!(in_redis.is_some());
        }
        drop((a, b));
    }
}

/// An instance (SQLite, views and scenes shared, a 50 ms call timeout, then `settings`) and
/// Redis paused for writes for 1.5 s (`CLIENT PAUSE ... WRITE`: the scripts wait); also the
/// admin connection that paused it.
async fn paused_instance(
    url: &str,
    settings: impl Fn(SharedCache) -> SharedCache,
) -> (Context, common::TestDb, redis::aio::MultiplexedConnection) {
    let share = |b: ContextBuilder| views(b).share_rows::<Scene>();
    let settings = |s: SharedCache| settings(s.timeout(Duration::from_millis(50)));
    let (a, _b, db, _channel) = two_instances(Backend::Sqlite, url, settings, share)
        .await
        .expect("SQLite always runs");
    let mut admin = redis(url).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    (a, db, admin)
}

/// While Redis does not answer (`CLIENT PAUSE ... WRITE`: the scripts wait), reads give up on
/// it after the timeout, the breaker opens after three, and the next reads go straight to
/// the database; once Redis answers again, a trial read closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_paused_the_breaker_sends_reads_to_the_database() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.write().await;
    let (a, db, mut admin) = paused_instance(&url, |s| s).await;
    let paused = Instant::now();
    let mut slow_reads = 0;
    for id in 1..=3 {
        let started = Instant::now();
        let row = Scene::repo(&a).get(id).await.unwrap().map(|s| (*s).clone());
        assert_eq!(row, db.scene(id).await);
        if started.elapsed() >= Duration::from_millis(50) {
            slow_reads += 1;
        }
    }
    let shared = a.stats().shared;
    assert!(shared.breaker_open, "{shared:?}");
    assert_eq!((shared.breaker_opens, shared.errors), (1, 3), "{shared:?}");
    assert_eq!(slow_reads, 3, "each waited out the timeout");
    // Open: the next read does not wait for Redis at all.
    let started = Instant::now();
    let outline = StoryOutline::get(&a, 1)
        .await
        .unwrap()
        .map(|o| (*o).clone());
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(outline, cold_outline(&db, 1).await);
    assert!(
        paused.elapsed() < Duration::from_millis(1500),
        "all within the pause"
    );
    // Redis answers again, the cool-down (1 s) passes: a trial read closes the breaker.
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let row = Scene::repo(&a).get(4).await.unwrap().map(|s| (*s).clone());
    assert_eq!(row, db.scene(4).await);
    assert!(!a.stats().shared.breaker_open, "{:?}", a.stats().shared);
}

/// The control of the test above: with a breaker that never opens, every read during the
/// pause waits out the timeout, the fourth too (what the breaker saves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_breaker_every_read_in_the_pause_waits_out_the_timeout() {
    let Some(url) = redis_url() else { return };
    let _turn = REDIS.write().await;
    let never_opens = |s: SharedCache| s.breaker(u32::MAX, Duration::from_secs(1));
    let (a, db, mut admin) = paused_instance(&url, never_opens).await;
    for id in 1..=3 {
        let row = Scene::repo(&a).get(id).await.unwrap().map(|s| (*s).clone());
        assert_eq!(row, db.scene(id).await);
    }
    let started = Instant::now();
    let outline = StoryOutline::get(&a, 1)
        .await
        .unwrap()
        .map(|o| (*o).clone());
    let waited = started.elapsed();
    assert_eq!(outline, cold_outline(&db, 1).await);
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let shared = a.stats().shared;
    assert!(waited >= Duration::from_millis(50), "waited {waited:?}");
    assert_eq!(shared.breaker_opens, 0, "{shared:?}");
    assert!(shared.errors >= 4, "every read timed out: {shared:?}");
}

/// The torture test across three instances with the shared cache on each: writers commit on
/// A, readers read through B and C (slow fills among fast ones; nothing kept in process, so
/// every read goes to Redis first and what B stores C reads, and the other way round), while
/// Redis stops answering writes for 150 ms every 700 ms (`CLIENT PAUSE WRITE`: the scripts,
/// publishes and stores wait; reads time out and the breaker opens), and every message on the
/// channel is delivered a second time, up to 20 ms late. Once an instance has
/// applied every broadcast A had sent when a reader noted the committed versions, no read
/// through it may return an older version.
async fn torture_shared(checked: bool) -> Option<(u64, String, cached_runtime::SharedStats)> {
    let url = redis_url()?;
    let _turn = REDIS.write().await;
    // A short cool-down: the breaker closes again soon after each pause.
    let settings = move |s: SharedCache| {
        let s = s.breaker(3, Duration::from_millis(100));
        match checked {
            true => s,
            false => s.__unchecked_stores(),
        }
    };
    let share = |b: ContextBuilder| {
        common::torture::configure(true)(
            b.share_view::<StoryOutline>()
                .share_rows::<Scene>()
                .max_entry_bytes(1),
        )
    };
    let (a, b, db, channel) = two_instances(Backend::Sqlite, &url, settings, share).await?;
    let bus_c = RedisBroadcast::connect(&url, channel.clone())
        .await
        .unwrap()
        .shared_cache(settings(SharedCache::new()));
    let c = share(Context::builder(db.store.clone()).broadcast(bus_c)).build();
    // Every message arrives twice, the second time up to 20 ms late (after later ones).
    let echo = Echo::start(&url, &channel, Duration::from_millis(20));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let pauses = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            let mut admin = redis(&url).await;
            let mut paused = 0;
            while !stop.load(SeqCst) {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let _: () = redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(150)
                    .arg("WRITE")
                    .query_async(&mut admin)
                    .await
                    .unwrap();
                paused += 1;
            }
            paused
        })
    };
    let label = format!("SQLite, writes on A, reads on B and C, shared cache (checked: {checked})");
    let instances = common::torture::Instances::two(a, b.clone())
        .and_reads(c.clone())
        .without_evictor();
    let (violations, summary) = common::torture::run(&label, true, instances).await;
    stop.store(true, SeqCst);
    let paused = pauses.await.unwrap();
    let echoed = echo.stop();
    assert!(echoed > 0, "the echo published no message again");
    let (on_b, on_c) = (b.stats().shared, c.stats().shared);
    let mut shared = on_b;
    shared.hits += on_c.hits;
    shared.stores += on_c.stores;
    shared.breaker_opens += on_c.breaker_opens;
    let summary = format!(
        "{summary}; Redis paused {paused} times; {echoed} messages echoed late; \
         B: {on_b:?}; C: {on_c:?}"
    );
    Some((violations, summary, shared))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_shared_cache_no_read_on_another_instance_returns_older_data() {
    let Some((violations, summary, shared)) = torture_shared(true).await else {
        return;
    };
    eprintln!("{summary}");
    assert_eq!(violations, 0, "{summary}");
    assert!(
        shared.hits > 0 && shared.stores > 0,
        "Redis answered some reads: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_its_checks_off_the_shared_cache_serves_stale_reads() {
    let Some((violations, summary, _)) = torture_shared(false).await else {
        return;
    };
    eprintln!("{summary}");
    assert!(
        violations > 0,
        "the test could not detect the race: {summary}"
    );
}
