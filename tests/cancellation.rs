//! A caller that stops waiting (a timeout, a client that hung up) cannot leave the cache older
//! than the database: `commit()`, writes through `&ctx` and `ctx.transaction(...)`, dropped at
//! each of their await points in turn (after 1, 2, 3, ... polls), then every cached row
//! compared with the database.
//!
//! The negative control runs the same sweep with the guard switched off (commits on the
//! caller's task, test-only) and must find stale rows, or the sweep proves nothing.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_runtime::Context;
use common::domain::*;
use common::model::drop_after;
use common::{Backend, TestDb};

/// Rows the sweep writes, one per step.
const ROWS: i64 = 60;

/// Scenes 100.. in chapter 1, cached.
async fn rows(ctx: &Context) {
    let scenes: Vec<Scene> = (100..100 + ROWS)
        .map(|id| common::scene(id, 1, "draft", 0))
        .collect();
    Scene::repo(ctx).insert_many(&scenes).await.unwrap();
    for id in 100..100 + ROWS {
        Scene::repo(ctx).get(id).await.unwrap().unwrap();
    }
}

/// The rows whose cached value differs from the database's.
async fn stale_rows(ctx: &Context, db: &TestDb) -> Vec<String> {
    let mut stale = Vec::new();
    for id in 100..100 + ROWS {
        let cached = Scene::repo(ctx)
            .get(id)
            .await
            .unwrap()
            .map(|s| (*s).clone());
        let stored = db.scene(id).await;
        if cached != stored {
            stale.push(format!(
                "scene {id}: cached {:?}, stored {:?}",
                cached.map(|s| s.word_count),
                stored.map(|s| s.word_count)
            ));
        }
    }
    stale
}

/// Drops `commit()` after 1, 2, 3, ... polls, one row per step, and returns the stale rows
/// once every commit has finished.
async fn sweep_commits(ctx: &Context, db: &TestDb, guarded: bool) -> Vec<String> {
    let applies = Arc::new(AtomicUsize::new(0));
    let seen = applies.clone();
    ctx.on_invalidate(move |_| {
        seen.fetch_add(1, SeqCst);
    });
    let base = applies.load(SeqCst);
    let mut cut_short = 0;
    for step in 0..ROWS {
        let id = 100 + step;
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .increment_word_count(id, 1)
            .await
            .unwrap();
        if drop_after(1 + step as usize % 6, tx.commit()).await {
            cut_short += 1;
        }
    }
    assert!(
        cut_short > 0,
        "no timeout fired: the sweep did not cut any commit short"
    );
    if guarded {
        // Every commit runs to its end and applies once, timed out or not.
        let deadline = Instant::now() + Duration::from_secs(30);
        while applies.load(SeqCst) < base + ROWS as usize {
            assert!(Instant::now() < deadline, "a commit never applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    } else {
        // Unguarded, a cut commit never applies: give the database time to finish.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stale_rows(ctx, db).await
}

/// Drops writes through `&ctx` (each its own transaction and commit) after 1, 2, 3, ...
/// polls, then waits until the cache agrees with the database (a stale entry never does).
async fn sweep_context_writes(ctx: &Context, db: &TestDb) -> Vec<String> {
    for step in 0..ROWS {
        let mut scenes = Scene::repo(ctx);
        drop_after(
            1 + step as usize,
            scenes.increment_word_count(100 + step, 10),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stale = stale_rows(ctx, db).await;
        if stale.is_empty() || Instant::now() > deadline {
            return stale;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops `ctx.transaction(...)` bodies of two writes (and their commit) after 1, 2, 3, ...
/// polls, then waits until the cache agrees with the database.
async fn sweep_transactions(ctx: &Context, db: &TestDb) -> Vec<String> {
    for step in 0..ROWS / 2 {
        let id = 100 + 2 * step;
        let body = ctx.transaction(async move |tx| {
            Scene::repo(&mut *tx).increment_word_count(id, 100).await?;
            Scene::repo(&mut *tx)
                .increment_word_count(id + 1, 100)
                .await?;
            Ok(())
        });
        drop_after(1 + step as usize, body).await;
    }
    settled(ctx, db).await
}

/// The stale rows once the cache agrees with the database, or after 10 s (a stale entry
/// never agrees).
async fn settled(ctx: &Context, db: &TestDb) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stale = stale_rows(ctx, db).await;
        if stale.is_empty() || Instant::now() > deadline {
            return stale;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connections in the pool `seeded!` opens.
const POOL: usize = 8;

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_context_write_runs_to_its_end_and_leaves_every_connection_usable(backend) {
        let (ctx, db) = seeded!(backend);
        rows(&ctx).await;
        // Each write is dropped after 1 to 8 polls: mid-BEGIN, mid-statement, mid-commit.
        for step in 0..ROWS {
            let mut scenes = Scene::repo(&ctx);
            drop_after(1 + step as usize % 8, scenes.increment_word_count(100 + step, 7)).await;
        }
        // Each one runs to its end on a task of its own: every increment lands, once.
        let deadline = Instant::now() + Duration::from_secs(30);
        for id in 100..100 + ROWS {
            while db.scene(id).await.map(|s| s.word_count) != Some(7) {
                let now = db.scene(id).await.map(|s| s.word_count);
                assert!(Instant::now() < deadline, "scene {id}: word count {now:?}, not 7");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let stale = settled(&ctx, &db).await;
        assert!(stale.is_empty(), "stale after dropped writes:\n{}", stale.join("\n"));
        if matches!(backend, Backend::Postgres | Backend::MySql) {
            // Every pooled connection still works: as many transactions at once as the pool
            // holds, each writing (a connection left mid-statement would fail here).
            let barrier = Arc::new(tokio::sync::Barrier::new(POOL));
            let mut all = Vec::new();
            for i in 0..POOL as i64 {
                let (ctx, barrier) = (ctx.clone(), barrier.clone());
                all.push(tokio::spawn(async move {
                    let mut tx = ctx.begin().await?;
                    Scene::repo(&mut tx).increment_word_count(100 + i, 1).await?;
                    barrier.wait().await;
                    tx.commit().await.map(drop)
                }));
            }
            for one in all {
                tokio::time::timeout(Duration::from_secs(30), one)
                    .await
                    .expect("every connection answers")
                    .unwrap()
                    .unwrap();
            }
            let stale = settled(&ctx, &db).await;
            assert!(stale.is_empty(), "stale after the pool-wide writes:\n{}", stale.join("\n"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_transaction_leaves_no_lock_behind(backend) {
        let (ctx, db) = seeded!(backend);
        rows(&ctx).await;
        // Transactions that lock a row, write it and are dropped (their caller gone) before
        // they commit: at BEGIN, mid-lock, mid-write or while they wait.
        const UNITS: i64 = 24;
        for step in 0..UNITS {
            let id = 100 + step;
            let unit = {
                let ctx = ctx.clone();
                async move {
                    let mut tx = ctx.begin().await?;
                    Scene::repo(&mut tx).get_for_update(id).await?;
                    Scene::repo(&mut tx).increment_word_count(id, 1000).await?;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    tx.commit().await.map(drop)
                }
            };
            let unit: std::pin::Pin<Box<dyn std::future::Future<Output = cached_runtime::Result<()>> + Send>> =
                Box::pin(unit);
            // Dropped after 1 to 8 polls, or by a timeout while it waits (never committed).
            let polls = drop_after(1 + step as usize % 8, unit);
            let dropped = tokio::time::timeout(Duration::from_millis(300), polls).await;
            assert!(dropped.unwrap_or(true), "dropped before its commit");
        }
        // None of them committed, and none holds a lock (a row lock, a MongoDB transaction
        // left open on the server, a lock marker): a write to each row goes through at once.
        for id in 100..100 + UNITS {
            let mut scenes = Scene::repo(&ctx);
            let write = scenes.increment_word_count(id, 1);
            let done = tokio::time::timeout(Duration::from_secs(10), write)
                .await
                .unwrap_or_else(|_| panic!("scene {id}: a dropped transaction still holds it"));
            assert_eq!(done.unwrap().word_count, 1, "scene {id}: a dropped write landed");
        }
        let stale = settled(&ctx, &db).await;
        assert!(stale.is_empty(), "stale after dropped transactions:\n{}", stale.join("\n"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_commit_still_reaches_the_cache(backend) {
        let (ctx, db) = seeded!(backend);
        rows(&ctx).await;
        let stale = sweep_commits(&ctx, &db, true).await;
        assert!(stale.is_empty(), "stale after cancelled commits:\n{}", stale.join("\n"));
        let stale = sweep_context_writes(&ctx, &db).await;
        assert!(stale.is_empty(), "stale after cancelled writes:\n{}", stale.join("\n"));
        let stale = sweep_transactions(&ctx, &db).await;
        assert!(stale.is_empty(), "stale after cancelled transactions:\n{}", stale.join("\n"));
    }
}

/// Negative control: without the guard, the same sweep leaves rows stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_guard_a_dropped_commit_leaves_the_cache_stale() {
    let mut found = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        let Some((ctx, db)) = common::seeded_with(backend, |b| b.__unguarded_commits()).await
        else {
            continue;
        };
        rows(&ctx).await;
        let stale = sweep_commits(&ctx, &db, false).await;
        eprintln!(
            "{backend:?}: {} stale row(s) without the guard",
            stale.len()
        );
        found.push((backend, stale.len()));
    }
    assert!(
        found.iter().any(|(_, n)| *n > 0),
        "the unguarded sweep found no stale row on any backend ({found:?}): the sweep cannot \
         tell the guard from its absence"
    );
}
