//! The broadcast and the shared cache on a Redis Cluster (three masters, three replicas: see
//! `.ci/redis-cluster`): two instances connected through `RedisBroadcast::connect_cluster`
//! hear each other's commits and share views; a master failing over while they run (the one
//! holding the shared cache's slot) costs them their caches for a moment, never a stale read.
//!
//! Needs `CACHED_REDIS_CLUSTER_URLS` (comma-separated node URLs, e.g.
//! `redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003`), with the same
//! skip/require rule as the other servers.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use cached_runtime::{Context, LoadView, RedisBroadcast, SharedCache};
use common::domain::*;
use common::redis_users::{channel, rename_scene};
use common::Backend;

/// One test at a time: one of them fails a master over.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cluster_urls() -> Option<Vec<String>> {
    let urls = common::service_url(
        "Redis Cluster",
        "CACHED_REDIS_CLUSTER_URLS",
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003",
    )?;
    Some(urls.split(',').map(str::to_owned).collect())
}

async fn bus(urls: &[String], channel: &str) -> RedisBroadcast {
    bus_with(urls, channel, SharedCache::new()).await
}

async fn bus_with(urls: &[String], channel: &str, settings: SharedCache) -> RedisBroadcast {
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisBroadcast::connect_cluster(&urls, channel)
        .await
        .expect("the cluster answers")
        .commit_wait(Duration::from_secs(30))
        .shared_cache(settings)
}

/// Two instances on one seeded SQLite database, on `channel` over the cluster.
async fn two_instances(urls: &[String], channel: &str) -> (Context, Context, common::TestDb) {
    let bus_a = bus(urls, channel).await;
    let (a, db) = common::seeded_with(Backend::Sqlite, |b| {
        b.broadcast(bus_a).share_view::<StoryOutline>()
    })
    .await
    .expect("SQLite always runs");
    let b = Context::builder(a.store().clone())
        .broadcast(bus(urls, channel).await)
        .share_view::<StoryOutline>()
        .build();
    (a, b, db)
}

async fn cold_outline(db: &common::TestDb) -> StoryOutline {
    let cold = Context::new(db.store.clone());
    (*StoryOutline::get(&cold, 1).await.unwrap().unwrap()).clone()
}

/// Reads the outline through `ctx` until it equals a cold read (at most 15 s).
async fn reads_fresh(ctx: &Context, db: &common::TestDb, what: &str) -> StoryOutline {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let cold = cold_outline(db).await;
        let read = StoryOutline::get(ctx, 1)
            .await
            .unwrap()
            .map(|o| (*o).clone());
        if read.as_ref() == Some(&cold) {
            return cold;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still not fresh after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn titles(outline: &StoryOutline) -> Vec<&str> {
    outline
        .chapters
        .iter()
        .flat_map(|c| c.scenes.iter().map(|s| s.1.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_and_the_shared_cache_work_on_a_cluster() {
    let Some(urls) = cluster_urls() else { return };
    let _serial = SERIAL.lock().await;
    let channel = channel();
    let (a, b, db) = two_instances(&urls, &channel).await;
    // A third instance that keeps nothing in process computes the outline and stores it.
    // Until the seeding's invalidations have come back to it through the cluster it cannot
    // prove a store current and skips it (counted in `skipped`): it reads until it stored.
    let w = Context::builder(db.store.clone())
        .broadcast(bus(&urls, &channel).await)
        .share_view::<StoryOutline>()
        .max_entry_bytes(1)
        .build();
    let deadline = Instant::now() + Duration::from_secs(10);
    let on_a = loop {
        let outline = StoryOutline::get(&w, 1).await.unwrap().unwrap();
        if w.stats().shared.stores == 1 {
            break outline;
        }
        assert!(Instant::now() < deadline, "{:?}", w.stats().shared);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let on_b = StoryOutline::get(&b, 1).await.unwrap().unwrap();
    assert_eq!(*on_b, *on_a);
    assert_eq!(b.stats().shared.hits, 1, "B read it from the cluster");
    assert_eq!(*on_b, cold_outline(&db).await);

    // A holds it in process; B's commit must reach A over the cluster to drop it.
    assert_eq!(*StoryOutline::get(&a, 1).await.unwrap().unwrap(), *on_a);
    rename_scene(&b, 1, "Renamed over the cluster").await;
    let fresh = reads_fresh(&a, &db, "A after B's commit").await;
    assert!(titles(&fresh).contains(&"Renamed over the cluster"));
    assert!(a.stats().broadcasts_received > 0, "{:?}", a.stats());
}

/// The master holding the shared cache's slot is shut down while the instances run; its
/// replica takes over. Meanwhile commits may be refused (never lost), and afterwards the
/// broadcast and the shared cache work again on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failing_over_costs_no_stale_read() {
    let Some(urls) = cluster_urls() else { return };
    let _serial = SERIAL.lock().await;
    let channel = channel();
    let (a, b, db) = two_instances(&urls, &channel).await;
    StoryOutline::get(&a, 1).await.unwrap().unwrap();
    StoryOutline::get(&b, 1).await.unwrap().unwrap();

    let client = redis::cluster::ClusterClient::new(urls.clone()).unwrap();
    let mut admin = client.get_async_connection().await.unwrap();
    let key = format!("{{{channel}}}:inv");
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    let master = master_of(&urls, slot).await;
    let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async(
            &mut redis::Client::open(format!("redis://{master}"))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await;
    let failed_at = Instant::now();
    // The replica takes over once the others agree the master is gone (node timeout 1 s).
    let new_master = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = master_of(&urls, slot).await;
        if now != master {
            break now;
        }
        assert!(
            failed_at.elapsed() < Duration::from_secs(20),
            "no failover within 20 s"
        );
    };
    eprintln!(
        "failover {master} -> {new_master} in {:?}",
        failed_at.elapsed()
    );

    rename_scene(&a, 1, "Renamed after a failover").await;
    let fresh = reads_fresh(&b, &db, "B after A's commit, after the failover").await;
    assert!(titles(&fresh).contains(&"Renamed after a failover"));
    let fresh_a = reads_fresh(&a, &db, "A").await;
    assert_eq!(fresh_a, fresh);
    // The shared cache works on the new master: a third instance reads what they stored.
    // Nothing kept in process: each of its reads asks the shared cache first.
    let c = Context::builder(db.store.clone())
        .broadcast(bus(&urls, &channel).await)
        .share_view::<StoryOutline>()
        .max_entry_bytes(1)
        .build();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = StoryOutline::get(&c, 1)
            .await
            .unwrap()
            .map(|o| (*o).clone());
        assert_eq!(read.as_ref(), Some(&fresh));
        if c.stats().shared.hits > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", c.stats().shared);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((a, b, c));
    whole_again();
}

/// The `host:port` of the master serving `slot`, as the surviving nodes see it.
async fn master_of(urls: &[String], slot: i64) -> String {
    nodes_of(urls, slot).await.remove(0)
}

/// The `host:port` of the master serving `slot`, then of its replicas, as the surviving nodes
/// see them.
async fn nodes_of(urls: &[String], slot: i64) -> Vec<String> {
    for url in urls {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let Ok(slots) = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<Vec<redis::Value>>>(&mut conn)
            .await
        else {
            continue;
        };
        for range in slots {
            let [redis::Value::Int(start), redis::Value::Int(end), nodes @ ..] = &range[..] else {
                continue;
            };
            if !(*start..=*end).contains(&slot) {
                continue;
            }
            let addresses: Vec<String> = nodes
                .iter()
                .filter_map(|node| match node {
                    redis::Value::Array(node) => match &node[..] {
                        [redis::Value::BulkString(host), redis::Value::Int(port), ..] => {
                            Some(format!("{}:{port}", String::from_utf8_lossy(host)))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            if !addresses.is_empty() {
                return addresses;
            }
        }
    }
    panic!("no node answered CLUSTER SLOTS");
}

/// Brings a master a test shut down back (as a replica) for the next run.
fn whole_again() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/redis-cluster");
    let status = std::process::Command::new("bash")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success(), "the cluster is whole again");
}

/// A plain connection to one node.
async fn node(address: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{address}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Whether the node at `address` holds story 1's outline in the shared cache on `channel`.
async fn holds_the_outline(node: &mut redis::aio::MultiplexedConnection, channel: &str) -> bool {
    let held: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(format!("{{{channel}}}:v:story_outline:1"))
        .arg("v")
        .query_async(node)
        .await
        .unwrap();
    held.is_some()
}

/// The master of the shared cache's slot stops replicating (its replica cannot log in again
/// after its link dropped: a stand-in for a slow link or a busy replica), takes one more
/// invalidation, and dies; its replica takes over without that invalidation's deletions
/// (`CLUSTER FAILOVER TAKEOVER`), so it still holds the entry the commit deleted. Returns
/// what a new instance (nothing in process) then reads of story 1, what the database holds,
/// and what the instance that lived through it read.
async fn read_after_a_lossy_failover(
    urls: &[String],
    settings: fn(SharedCache) -> SharedCache,
) -> LossyFailover {
    let _serial = SERIAL.lock().await;
    let channel = channel();
    let bus_a = bus_with(urls, &channel, settings(SharedCache::new())).await;
    let (a, db) = common::seeded_with(Backend::Sqlite, |b| {
        b.broadcast(bus_a).share_view::<StoryOutline>()
    })
    .await
    .expect("SQLite always runs");
    let b = Context::builder(a.store().clone())
        .broadcast(bus_with(urls, &channel, settings(SharedCache::new())).await)
        .share_view::<StoryOutline>()
        .build();
    // A stores the outline once it caught up with the seeding's invalidations.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats().shared.stores == 0 {
        a.clear();
        StoryOutline::get(&a, 1).await.unwrap().unwrap();
        assert!(Instant::now() < deadline, "{:?}", a.stats().shared);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut admin = redis::cluster::ClusterClient::new(urls.to_vec())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("{{{channel}}}:inv"))
        .query_async(&mut admin)
        .await
        .unwrap();
    // A node the last test restarted may take a moment to show as the replica.
    let deadline = Instant::now() + Duration::from_secs(20);
    let nodes = loop {
        let nodes = nodes_of(urls, slot).await;
        if nodes.len() > 1 {
            break nodes;
        }
        assert!(
            Instant::now() < deadline,
            "the slot has no replica: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (old_master, replica) = (&nodes[0], &nodes[1]);
    let mut master = node(old_master).await;
    let mut standby = node(replica).await;
    // The replica may still be syncing after the last test's restart: short waits, retried
    // (the connection's response timeout is shorter than a long one).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(200)
            .query_async(&mut master)
            .await
            .unwrap();
        if acked == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the replica has the entry");
    }
    let _: () = redis::cmd("READONLY")
        .query_async(&mut standby)
        .await
        .unwrap();
    assert!(holds_the_outline(&mut standby, &channel).await);

    // Replication stops: the connections already open stay logged in, the replica's next one
    // is refused.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(format!("cut-off-{}", std::process::id()))
        .query_async(&mut master)
        .await
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut master)
        .await
        .unwrap();
    rename_scene(&b, 1, "Renamed on the old master only").await;
    assert!(
        !holds_the_outline(&mut master, &channel).await,
        "the commit deleted it"
    );
    assert!(
        holds_the_outline(&mut standby, &channel).await,
        "the replica never heard of the deletion"
    );
    let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async(&mut master)
        .await;
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("TAKEOVER")
        .query_async(&mut standby)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while master_of(urls, slot).await != *replica {
        assert!(Instant::now() < deadline, "no takeover within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(holds_the_outline(&mut standby, &channel).await);

    let c = Context::builder(db.store.clone())
        .broadcast(bus_with(urls, &channel, settings(SharedCache::new())).await)
        .share_view::<StoryOutline>()
        .max_entry_bytes(1)
        .build();
    let on_c = (*StoryOutline::get(&c, 1).await.unwrap().unwrap()).clone();
    let cold = cold_outline(&db).await;
    // A lived through the failover: it reads (nothing kept in process) until it stores in
    // the new master's run again, or 10 s passed.
    let (mut on_a, stored) = (Vec::new(), a.stats().shared.stores);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats().shared.stores == stored && Instant::now() < deadline {
        a.clear();
        on_a.push((*StoryOutline::get(&a, 1).await.unwrap().unwrap()).clone());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a_stores_again = a.stats().shared.stores > stored;
    drop((a, b, c));
    whole_again();
    LossyFailover {
        on_c,
        cold,
        on_a,
        a_stores_again,
    }
}

/// What [`read_after_a_lossy_failover`] found.
struct LossyFailover {
    /// What a new instance read.
    on_c: StoryOutline,
    /// What the database holds.
    cold: StoryOutline,
    /// What the instance that lived through the failover read until it stored again.
    on_a: Vec<StoryOutline>,
    /// Whether it stored in the shared cache again within 10 s.
    a_stores_again: bool,
}

/// The stamps' run is the serving process's own: the replica that took over vouches for
/// nothing the old master stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_took_over_without_the_last_deletions_serves_none_of_them() {
    let Some(urls) = cluster_urls() else { return };
    let found = read_after_a_lossy_failover(&urls, |s| s).await;
    assert!(titles(&found.cold).contains(&"Renamed on the old master only"));
    assert_eq!(found.on_c, found.cold, "a new instance");
    for read in &found.on_a {
        assert_eq!(*read, found.cold, "the instance that lived through it");
    }
    // It counts in the new master's run (it met it and subscribed again): it stores again.
    assert!(found.a_stores_again, "A stores in the shared cache again");
}

/// Control: with the run kept in a key (replicated with the entry it vouches for), a new
/// instance reads the entry the last commit deleted on the old master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_run_in_a_key_a_replica_that_took_over_serves_a_deleted_entry() {
    let Some(urls) = cluster_urls() else { return };
    let found = read_after_a_lossy_failover(&urls, SharedCache::__run_in_a_key).await;
    assert_ne!(
        found.on_c, found.cold,
        "the control reads the entry the failover lost the deletion of"
    );
}
