//! The shared cache when Redis restarts under the instances: empty (every counter, stamp and
//! entry gone), or from a snapshot on disk that lacks the last invalidation's deletions. Each
//! test runs a Redis of its own (`OwnRedis`).

use super::*;

/// Redis restarts empty (its counters, stamps and entries gone) while two instances run, one
/// of them in the middle of a load whose snapshot predates the restart: the instances go
/// offline and clear, commits are refused until Redis is back (never lost), the held load's
/// store is refused, and afterwards every answer equals a cold read and the shared cache works
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_costs_no_stale_read() {
    if redis_url().is_none() {
        return;
    }
    let _turn = REDIS.write().await;
    let redis = OwnRedis::start();
    let url = redis.url();
    let (a, b, db, channel) = two_instances(Backend::Sqlite, &url, |s| s, views)
        .await
        .expect("SQLite always runs");
    StoryOutline::get(&a, 1).await.unwrap().unwrap();
    let on_b = StoryOutline::get(&b, 1)
        .await
        .unwrap()
        .map(|o| (*o).clone());
    assert_eq!(on_b, cold_outline(&db, 1).await);

    // A load on A reads scene 1 and is held; Redis restarts; B renames scene 1.
    let loading = held_load(&a).await;
    redis.down();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats().broadcast_outages == 0 || b.stats().broadcast_outages == 0 {
        assert!(Instant::now() < deadline, "both notice the outage");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.up();
    rename_scene(&b, 1, "Renamed after a restart").await;
    gate().1.notify_one();
    let held = loading.await.unwrap();
    assert_ne!(
        held.title, "Renamed after a restart",
        "the held load read before"
    );

    for ctx in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let title = GatedTitle::get(ctx, 1)
                .await
                .unwrap()
                .unwrap()
                .title
                .clone();
            let outline = StoryOutline::get(ctx, 1)
                .await
                .unwrap()
                .map(|o| (*o).clone());
            if title == "Renamed after a restart" && outline == cold_outline(&db, 1).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still old after the restart: {title}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Nothing old in the new Redis; and it shares again: a third instance reads the
    // instance A or B stored.
    if let Some(bytes) = shared_entry(&url, &channel, "gated_title:1").await {
        let text = String::from_utf8_lossy(&bytes).to_string();
        assert!(
            !text.contains(&held.title),
            "the held load stored its old value"
        );
    }
    let c = views(
        Context::builder(db.store.clone()).broadcast(
            RedisBroadcast::connect(&url, channel.clone())
                .await
                .unwrap()
                .shared_cache(SharedCache::new()),
        ),
    )
    .max_entry_bytes(1)
    .build();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.stats().shared.hits == 0 {
        let title = GatedTitle::get(&c, 1).await.unwrap().unwrap().title.clone();
        assert_eq!(title, "Renamed after a restart");
        assert!(Instant::now() < deadline, "{:?}", c.stats().shared);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Redis comes back from a snapshot on disk taken before the last invalidation, as after a
/// crash under RDB or AOF persistence (both lose the last writes): the entry that invalidation
/// deleted is back, with every counter that vouched for it. Returns what the instance that
/// lived through it read of story 1 over the next half second, what a new instance (nothing
/// in process) reads, and what the database holds.
async fn reads_after_a_restore(
    settings: fn(SharedCache) -> SharedCache,
) -> Option<(
    Vec<Option<StoryOutline>>,
    Option<StoryOutline>,
    Option<StoryOutline>,
)> {
    redis_url()?;
    let _turn = REDIS.write().await;
    let redis = OwnRedis::start();
    let url = redis.url();
    let (a, b, db, channel) = two_instances(Backend::Sqlite, &url, settings, views)
        .await
        .expect("SQLite always runs");
    StoryOutline::get(&a, 1).await.unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared_entry(&url, &channel, "story_outline:1")
        .await
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "A stores story 1's outline in Redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.save();
    rename_scene(&b, 1, "Renamed after the snapshot").await;
    assert!(
        shared_entry(&url, &channel, "story_outline:1")
            .await
            .is_none(),
        "the commit deleted the entry"
    );
    redis.down();
    redis.up();
    assert!(
        shared_entry(&url, &channel, "story_outline:1")
            .await
            .is_some(),
        "the restore brought the entry back"
    );
    let mut on_a = Vec::new();
    for _ in 0..25 {
        on_a.push(
            StoryOutline::get(&a, 1)
                .await
                .unwrap()
                .map(|o| (*o).clone()),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bus = RedisBroadcast::connect(&url, channel).await.unwrap();
    let c = views(
        Context::builder(db.store.clone())
            .broadcast(bus.shared_cache(settings(SharedCache::new()))),
    )
    .max_entry_bytes(1)
    .build();
    let on_c = StoryOutline::get(&c, 1)
        .await
        .unwrap()
        .map(|o| (*o).clone());
    Some((on_a, on_c, cold_outline(&db, 1).await))
}

/// The stamps' run is the Redis process's own: nothing stored before the restore is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restored_from_an_older_snapshot_serves_nothing_whose_deletion_it_lost() {
    let Some((on_a, on_c, cold)) = reads_after_a_restore(|s| s).await else {
        return;
    };
    let renamed = cold.as_ref().is_some_and(|o| {
        o.chapters
            .iter()
            .flat_map(|c| &c.scenes)
            .any(|s| s.1 == "Renamed after the snapshot")
    });
    assert!(renamed, "{cold:?}");
    assert_eq!(on_c, cold, "a new instance");
    for read in on_a {
        assert_eq!(read, cold, "the instance that lived through the restore");
    }
}

/// Control: with the run kept in a key (restored with the entry it vouches for), a new
/// instance reads the entry the last commit deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_run_in_a_key_a_restored_redis_serves_an_entry_whose_deletion_it_lost() {
    let Some((_, on_c, cold)) = reads_after_a_restore(SharedCache::__run_in_a_key).await else {
        return;
    };
    assert_ne!(
        on_c, cold,
        "the control reads the entry the restore brought back"
    );
}
