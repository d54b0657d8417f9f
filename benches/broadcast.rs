//! The Redis invalidation broadcast, side by side with what it adds to:
//!
//! - `broadcast_commit`: a cached `update` committed on a context that broadcasts (its fence
//!   goes to Redis while the database commits; the commit waits until Redis has taken it) vs
//!   the same update on a context that does not, interleaved on one file-backed SQLite
//!   database; on a context that publishes after the commit instead (`fence_commits(false)`:
//!   one Redis round trip after the database's); and on a context whose broadcast has an
//!   outbox (one more `INSERT` in the transaction, a batched `DELETE` after);
//!   `broadcast_commit_postgres`: the same on PostgreSQL (with `CACHED_POSTGRES_URL`);
//! - `broadcast_reach`: after `commit()` returns on instance A, how long until instance B (same
//!   channel, same process) has dropped the row, next to one Redis `PING` round trip; and its
//!   distribution over 2,000 commits (p50, p90, p99, max, printed).
//!
//! Needs `CACHED_REDIS_URL` (e.g. `redis://127.0.0.1:6379`); prints SKIPPED without it. Run with
//! `cargo bench --bench broadcast`.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)]
mod domain;
mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use cached_runtime::prelude::*;
use cached_runtime::{Outbox, RedisBroadcast, Store};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use domain::*;

async fn update(ctx: &Context, text: String) {
    let mut tx = ctx.begin().await.unwrap();
    Scene::repo(&mut tx)
        .update(5, SceneUpdate::default().title(text))
        .await
        .unwrap();
    black_box(tx.commit().await.unwrap());
}

/// The contexts compared, in order: no broadcast, the broadcast (fenced commits), the
/// broadcast publishing after the commit, the broadcast with an outbox.
const VARIANTS: [&str; 4] = [
    "update_local",
    "update_broadcast",
    "update_broadcast_after_commit",
    "update_outbox",
];

/// The three broadcasting contexts over `pool`, each on a channel of its own under `channel`:
/// fenced commits (the default), publishing after the commit, and with an outbox.
async fn variants<P: Clone + Into<Store>>(pool: &P, url: &str, channel: &str) -> [Context; 3] {
    let connect = async |suffix: &str| {
        RedisBroadcast::connect(url, format!("{channel}{suffix}"))
            .await
            .unwrap()
    };
    let fenced = connect("").await;
    let after = connect(":after").await.fence_commits(false);
    let outboxed = connect(":outbox").await.outbox(Outbox::new());
    [fenced, after, outboxed].map(|bus| Context::builder(pool.clone()).broadcast(bus).build())
}

/// From `commit()` returning on `a` until `b` has dropped the row, for `n` commits one at a
/// time; sorted.
async fn reach(a: &Context, b: &Context, n: usize, text: &impl Fn() -> String) -> Vec<Duration> {
    let mut lags = Vec::with_capacity(n);
    for _ in 0..n {
        // (Cached again once the last commit's fence is down.)
        while !b.is_cached(SceneKey(5)) {
            Scene::repo(b).get(5).await.unwrap();
        }
        update(a, text()).await;
        let returned = Instant::now();
        while b.is_cached(SceneKey(5)) {
            tokio::task::yield_now().await;
        }
        lags.push(returned.elapsed());
    }
    lags.sort();
    lags
}

/// [`reach`] as B's listener sees it: when B's hook ran on each commit's invalidation (after
/// the apply), measured from when `commit()` returned (0 if before). Nothing spins while it
/// waits: on two cores a spinning reader competes with B's listener for a CPU.
async fn heard(a: &Context, heard: &Heard, n: usize, text: &impl Fn() -> String) -> Vec<Duration> {
    let mut lags = Vec::with_capacity(n);
    for _ in 0..n {
        let before = heard.count.load(Ordering::SeqCst);
        let waiting = heard.ran.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();
        update(a, text()).await;
        let returned = Instant::now();
        while heard.count.load(Ordering::SeqCst) == before {
            waiting.as_mut().await;
            waiting.set(heard.ran.notified());
            waiting.as_mut().enable();
        }
        let at = *heard.at.lock().unwrap();
        lags.push(at.saturating_duration_since(returned));
    }
    lags.sort();
    lags
}

/// Prints a sorted distribution of lags.
fn print_distribution(label: &str, lags: &[Duration]) {
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    eprintln!(
        "\n{label} over {} commits: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}\n",
        lags.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

/// When B's hook last ran on a remote invalidation.
struct Heard {
    at: std::sync::Mutex<Instant>,
    count: AtomicI64,
    ran: tokio::sync::Notify,
}

impl Heard {
    fn on(b: &Context) -> std::sync::Arc<Heard> {
        let heard = std::sync::Arc::new(Heard {
            at: std::sync::Mutex::new(Instant::now()),
            count: AtomicI64::new(0),
            ran: tokio::sync::Notify::new(),
        });
        let hook = heard.clone();
        b.on_invalidate(move |event| {
            if event.source == cached_runtime::Source::Remote {
                *hook.at.lock().unwrap() = Instant::now();
                hook.count.fetch_add(1, Ordering::SeqCst);
                hook.ran.notify_waiters();
            }
        });
        heard
    }
}

fn broadcast(c: &mut Criterion) {
    let Ok(url) = std::env::var("CACHED_REDIS_URL") else {
        eprintln!("\n*** SKIPPED: broadcast benchmarks (set CACHED_REDIS_URL) ***\n");
        return;
    };
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let pool = rt.block_on(support::database(&dir, 100));
    let channel = format!("cached-bench:{}", std::process::id());
    let (a, b, after, outboxed) = rt.block_on(async {
        let bus_b = RedisBroadcast::connect(&url, channel.clone())
            .await
            .unwrap();
        let [a, after, outboxed] = variants(&pool, &url, &channel).await;
        (
            a,
            Context::builder(pool.clone()).broadcast(bus_b).build(),
            after,
            outboxed,
        )
    });
    let plain = Context::new(pool.clone());
    let n = AtomicI64::new(0);
    let text = || format!("t{}", n.fetch_add(1, Ordering::Relaxed));

    let mut group = c.benchmark_group("broadcast_commit");
    group.measurement_time(Duration::from_secs(10));
    support::rotating(&mut group, &rt, &VARIANTS, |variant| {
        update([&plain, &a, &after, &outboxed][variant], text())
    });
    group.finish();

    if let Ok(pg) = std::env::var("CACHED_POSTGRES_URL") {
        let schema = format!("cached_bench_bc_{}", std::process::id());
        let (pg_plain, pg_broadcast, pg_after, pg_outbox) = rt.block_on(async {
            let pool = support::pg_studio(&pg, &schema, SCHEMA_POSTGRES).await;
            sqlx::raw_sql(
                "INSERT INTO scenes (id, chapter_id, story_id, status, title, word_count)
                 SELECT g, 1, 1, 'draft', 'Scene ' || g, 100 FROM generate_series(1, 100) g",
            )
            .execute(&pool)
            .await
            .unwrap();
            let [fenced, after, outboxed] = variants(&pool, &url, &format!("{channel}:pg")).await;
            (Context::new(pool), fenced, after, outboxed)
        });
        let mut group = c.benchmark_group("broadcast_commit_postgres");
        group.measurement_time(Duration::from_secs(10));
        let contexts = [&pg_plain, &pg_broadcast, &pg_after, &pg_outbox];
        support::rotating(&mut group, &rt, &VARIANTS, |variant| {
            update(contexts[variant], text())
        });
        group.finish();
        drop((pg_plain, pg_broadcast, pg_after, pg_outbox));
        rt.block_on(support::drop_pg_schema(&pg, &schema));
    }

    let mut group = c.benchmark_group("broadcast_reach");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("commit_returned_to_dropped_on_b", |bench| {
        bench.to_async(&rt).iter_custom(|iters| {
            let (a, b, text) = (&a, &b, &text);
            async move { reach(a, b, iters as usize, text).await.iter().sum() }
        })
    });
    // The same, as a distribution (criterion reports means): 2,000 commits, one at a time;
    // and from a writer on B's channel that publishes after its commit instead of fencing.
    let unfenced_writer = rt.block_on(async {
        let bus = RedisBroadcast::connect(&url, channel.clone())
            .await
            .unwrap();
        Context::builder(pool.clone())
            .broadcast(bus.fence_commits(false))
            .build()
    });
    for (label, writer) in [
        ("fenced", &a),
        ("published after the commit", &unfenced_writer),
    ] {
        let lags = rt.block_on(reach(writer, &b, 2000, &text));
        print_distribution(&format!("broadcast_reach ({label})"), &lags);
    }
    let hook = Heard::on(&b);
    for (label, writer) in [
        ("fenced", &a),
        ("published after the commit", &unfenced_writer),
    ] {
        let lags = rt.block_on(heard(writer, &hook, 2000, &text));
        print_distribution(&format!("broadcast_heard ({label})"), &lags);
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    group.bench_function("redis_ping", |bench| {
        bench.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            async move {
                let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
                black_box(pong)
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1));
    targets = broadcast
}
criterion_main!(benches);
