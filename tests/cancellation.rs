//! A caller that stops waiting (a timeout, a client that hung up) cannot leave the cache older
//! than the database: `commit()`, writes through `&ctx` and `ctx.transaction(...)`, dropped at
//! each of their await points in turn (after 1, 2, 3, ... polls), then every cached row
//! compared with the database.
//!
//! The negative control runs the same sweep with the guard switched off (commits on the
//! caller's task, test-only) and must find stale rows, or the sweep proves nothing.

#[macro_use]
mod common;

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

backend_tests! {
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
