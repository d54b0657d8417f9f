//! Optimistic and pessimistic updates on every backend: a `#[cache(version)]` field moved on
//! by every repository write, `update_if_version` (one winner per version, the loser gets
//! `Error::VersionConflict` and nothing changes), and `get_for_update` holding a row lock to
//! the end of its transaction.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use cached_runtime::Error;
use common::domain::*;
use common::{scene, Backend};

backend_tests! {
    #[tokio::test]
    async fn every_repository_write_moves_the_version_on(backend) {
        let (ctx, db) = seeded!(backend);
        // Inserted through the repository: version 1, whatever the row held.
        let mut tx = ctx.begin().await.unwrap();
        let inserted = Scene::repo(&mut tx)
            .insert(&Scene { version: 42, ..scene(10, 2, "draft", 5) })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(inserted.version, 1);
        assert_eq!(db.scene(10).await.unwrap().version, 1);

        let scenes = || Scene::repo(&ctx);
        let v = |row: Arc<Scene>| row.version;
        assert_eq!(v(scenes().get(1).await.unwrap().unwrap()), 1);
        assert_eq!(v(scenes().update(1, SceneUpdate::default().title("A")).await.unwrap()), 2);
        assert_eq!(v(scenes().update(1, SceneUpdate::default().status("final")).await.unwrap()), 3);
        assert_eq!(v(scenes().increment_word_count(1, 5).await.unwrap()), 4);
        assert_eq!(v(scenes().decrement_word_count(1, 1).await.unwrap()), 5);
        let bulk = scenes()
            .update_many_by_chapter_id(1, SceneUpdate::default().title("B"))
            .await
            .unwrap();
        // Scene 1 was at 5, scene 2 at 1: each moved on by one.
        assert_eq!(bulk.iter().map(|s| (s.id, s.version)).collect::<Vec<_>>(), [(1, 6), (2, 2)]);
        // An empty patch writes nothing and moves nothing.
        assert_eq!(v(scenes().update(1, SceneUpdate::default()).await.unwrap()), 6);
        for id in [1, 2, 3, 10] {
            db.assert_scene_fresh(&ctx, id, "versions").await;
        }
    }

    #[tokio::test]
    async fn update_if_version_writes_only_at_the_version_read(backend) {
        let (ctx, db) = seeded!(backend);
        // The version read from the cache is the one that committed.
        let read = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        let won = Scene::repo(&ctx)
            .update_if_version(1, read.version, SceneUpdate::default().title("First"))
            .await
            .unwrap();
        assert_eq!((won.title.as_str(), won.version), ("First", read.version + 1));

        // A second editor who read the same version loses, and nothing changes.
        let lost = Scene::repo(&ctx)
            .update_if_version(1, read.version, SceneUpdate::default().title("Second"))
            .await
            .unwrap_err();
        match &lost {
            Error::VersionConflict { entity, id, expected, found, stale_cache_dropped } => {
                assert_eq!((*entity, id.as_str(), *expected, *found), ("Scene", "1", 1, 2));
                // The cache held version 2, as the database does: nothing stale to drop.
                assert!(!stale_cache_dropped, "{lost}");
            }
            other => panic!("expected a version conflict, got {other}"),
        }
        assert!(!lost.is_retryable(), "a version conflict needs a fresh read, not a blind retry");
        assert_eq!(db.scene(1).await.unwrap().title, "First");
        db.assert_scene_fresh(&ctx, 1, "versions").await;

        // The same through a patch that moves the row between queries (the old row is read
        // locked first): the loser changes no query either.
        let drafts = Scene::repo(&ctx).find_by_status("draft").await.unwrap().len();
        let err = Scene::repo(&ctx)
            .update_if_version(1, 1, SceneUpdate::default().status("final"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::VersionConflict { found: 2, .. }), "{err}");
        assert_eq!(Scene::repo(&ctx).find_by_status("draft").await.unwrap().len(), drafts);
        let moved = Scene::repo(&ctx)
            .update_if_version(1, 2, SceneUpdate::default().status("final"))
            .await
            .unwrap();
        assert_eq!((moved.status.as_str(), moved.version), ("final", 3));
        assert_eq!(Scene::repo(&ctx).find_by_status("draft").await.unwrap().len(), drafts - 1);

        // An unknown id is NotFound, not a conflict.
        let err = Scene::repo(&ctx)
            .update_if_version(99, 1, SceneUpdate::default().title("x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");

        // In a transaction, a conflict writes nothing and the transaction goes on.
        let mut tx = ctx.begin().await.unwrap();
        let err = Scene::repo(&mut tx)
            .update_if_version(3, 7, SceneUpdate::default().title("stale"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::VersionConflict { expected: 7, found: 1, .. }), "{err}");
        Scene::repo(&mut tx)
            .update_if_version(3, 1, SceneUpdate::default().title("fresh"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let stored = db.scene(3).await.unwrap();
        assert_eq!((stored.title.as_str(), stored.version), ("fresh", 2));
        for id in [1, 2, 3] {
            db.assert_scene_fresh(&ctx, id, "versions").await;
        }
    }

    #[tokio::test]
    async fn a_conflict_that_proves_the_cached_row_stale_drops_it(backend) {
        let (ctx, db) = seeded!(backend);
        let read = Scene::repo(&ctx).get(3).await.unwrap().unwrap();
        let drafts = Scene::repo(&ctx).find_by_status("draft").await.unwrap().len();
        // A write behind the cache moves the row to version 2 (no TTL: the cache would keep
        // version 1 for good).
        if let cached_runtime::RawStore::Mongo(mongo) = db.store.raw_unchecked() {
            use mongodb::bson::doc;
            mongo
                .collection::<mongodb::bson::Document>("scenes")
                .update_one(
                    doc! { "_id": 3_i64 },
                    doc! { "$set": { "status": "final" }, "$inc": { "version": 1 } },
                )
                .await
                .unwrap();
        } else {
            db.execute("UPDATE scenes SET status = 'final', version = version + 1 WHERE id = 3")
                .await;
        }
        let err = Scene::repo(&ctx)
            .update_if_version(3, read.version, SceneUpdate::default().title("mine"))
            .await
            .unwrap_err();
        match &err {
            Error::VersionConflict { found, stale_cache_dropped, .. } => {
                assert_eq!(*found, read.version + 1, "{err}");
                assert!(*stale_cache_dropped, "the cache held version {}: {err}", read.version);
            }
            other => panic!("expected a version conflict, got {other}"),
        }
        assert!(err.to_string().contains("cached copy was older"), "{err}");
        // The client follows the 409's advice: read again (now the database's row), retry.
        let again = Scene::repo(&ctx).get(3).await.unwrap().unwrap();
        assert_eq!((again.version, again.status.as_str()), (read.version + 1, "final"));
        let saved = Scene::repo(&ctx)
            .update_if_version(3, again.version, SceneUpdate::default().title("mine"))
            .await
            .unwrap();
        assert_eq!(saved.title, "mine");
        // The unseen write moved the row out of the drafts: that query was dropped too.
        let now = Scene::repo(&ctx).find_by_status("draft").await.unwrap().len();
        assert_eq!(now, drafts - 1);
        db.assert_scene_fresh(&ctx, 3, "a conflict after a write behind the cache").await;
    }

    #[tokio::test]
    async fn concurrent_editors_win_once_per_version(backend) {
        let (ctx, db) = seeded!(backend);
        const EDITORS: usize = 6;
        const SAVES: usize = 4;
        let start = db.scene(1).await.unwrap();
        let mut editors = Vec::new();
        for _ in 0..EDITORS {
            let ctx = ctx.clone();
            editors.push(tokio::spawn(async move {
                let mut won = Vec::new();
                while won.len() < SAVES {
                    // Read (from the cache), edit, save if nobody saved in between.
                    let read = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
                    let patch = SceneUpdate::default().word_count(read.word_count + 1);
                    match Scene::repo(&ctx).update_if_version(1, read.version, patch).await {
                        Ok(saved) => {
                            assert_eq!(saved.version, read.version + 1);
                            won.push(saved.version);
                        }
                        // Someone else won this version; or (SQLite, MongoDB) the database
                        // aborted the racing transaction five times: read again.
                        Err(Error::VersionConflict { .. } | Error::Conflict { .. }) => {}
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                    tokio::task::yield_now().await;
                }
                won
            }));
        }
        let mut versions = Vec::new();
        for editor in editors {
            versions.extend(editor.await.unwrap());
        }
        versions.sort_unstable();
        let wins = (EDITORS * SAVES) as i64;
        // Exactly one winner per version, and every win counted once.
        let expected: Vec<i64> = (start.version + 1..=start.version + wins).collect();
        assert_eq!(versions, expected);
        let stored = db.scene(1).await.unwrap();
        assert_eq!(stored.word_count, start.word_count + wins);
        assert_eq!(stored.version, start.version + wins);
        db.assert_scene_fresh(&ctx, 1, "versions").await;
    }

    #[tokio::test]
    async fn get_for_update_holds_the_row_until_commit(backend) {
        let (ctx, db) = seeded!(backend);
        let misses = ctx.stats().misses;
        let mut first = ctx.begin().await.unwrap();
        let locked = Scene::repo(&mut first).get_for_update(1).await.unwrap().unwrap();
        assert_eq!(locked.title, "Scene 1");

        // A second transaction that wants the same lock.
        let second = {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut tx = ctx.begin().await?;
                let row = Scene::repo(&mut tx).get_for_update(1).await?;
                tx.commit().await?;
                Ok::<_, Error>(row.map(|s| s.title.clone()))
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let waiting = if backend == Backend::Mongo {
            // MongoDB does not wait for a lock: the second transaction's write of the
            // document conflicts, with the retryable error.
            let err = second.await.unwrap().unwrap_err();
            assert!(matches!(err, Error::Conflict { .. }), "{err}");
            None
        } else {
            assert!(!second.is_finished(), "the second locker must wait for the first's commit");
            Some(second)
        };
        Scene::repo(&mut first)
            .update(1, SceneUpdate::default().title("Renumbered"))
            .await
            .unwrap();
        first.commit().await.unwrap();
        if let Some(second) = waiting {
            // Released by the commit, it sees the committed write.
            let seen = tokio::time::timeout(Duration::from_secs(10), second)
                .await
                .expect("the second locker runs once the first commits")
                .unwrap()
                .unwrap();
            assert_eq!(seen.as_deref(), Some("Renumbered"));
        }
        let mut tx = ctx.begin().await.unwrap();
        let rows = Scene::repo(&mut tx).get_many_for_update(&[3, 99, 1]).await.unwrap();
        let titles: Vec<_> = rows.iter().map(|r| r.as_ref().map(|s| s.title.clone())).collect();
        assert_eq!(titles, [Some("Scene 3".into()), None, Some("Renumbered".into())]);
        tx.commit().await.unwrap();
        // Locked reads filled nothing: the next read through the context is a miss.
        let before = ctx.stats().misses;
        assert_eq!(before, misses, "locked reads go to the database, not the cache");
        db.assert_scene_fresh(&ctx, 3, "versions").await;
        assert_eq!(ctx.stats().misses, before + 1);
        db.assert_scene_fresh(&ctx, 1, "versions").await;
    }
}
