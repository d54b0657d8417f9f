//! Transactions: the cache changes only after a successful commit.

use crate::common;

use cached_runtime::{ConstraintKind, Error, LoadView, QueryKey};
use common::domain::*;
use common::{scene, Backend, TestDb};

async fn assert_untouched(ctx: &cached_runtime::Context, db: &TestDb) {
    assert!(ctx.is_cached(SceneKey(1)));
    assert_eq!(
        Scene::repo(ctx).get(1).await.unwrap().unwrap().title,
        "Scene 1"
    );
    assert!(ctx.is_cached(SceneQuery::ByChapterId(1).list_key()));
    assert!(ctx.is_cached(SceneKey(4)), "negative entry for 4 survives");
    assert!(Scene::repo(ctx).get(4).await.unwrap().is_none());
    assert_eq!(db.scene(1).await.unwrap().title, "Scene 1");
    assert!(db.scene(4).await.is_none());
}

async fn warm(ctx: &cached_runtime::Context) -> u64 {
    Scene::repo(ctx).get(1).await.unwrap();
    Scene::repo(ctx).get(4).await.unwrap();
    Scene::repo(ctx).find_by_chapter_id(1).await.unwrap();
    ctx.stats().invalidations.values().sum()
}

fn invalidations(ctx: &cached_runtime::Context) -> u64 {
    ctx.stats().invalidations.values().sum()
}

backend_tests! {
    #[tokio::test]
    async fn commit_applies_the_recorded_invalidations_and_reports_them(backend) {
        let (ctx, _db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).find_by_status("draft").await.unwrap();
        // Cached view instances that read scene 1 are named in the report.
        StoryOutline::get(&ctx, 1).await.unwrap();
        PartSummary::get(&ctx, 1).await.unwrap();

        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .update(1, SceneUpdate::default().status("final"))
            .await
            .unwrap();
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().status,
            "draft",
            "before commit, readers see the committed row"
        );
        assert!(ctx.is_cached(SceneQuery::ByStatus("draft".into()).list_key()));
        let pending: Vec<String> = tx.pending_keys().iter().map(ToString::to_string).collect();
        let report = tx.commit().await.unwrap();
        // The view instances that read what changed are found at apply; everything pending
        // before is in the report, first.
        assert!(report.key_strings().starts_with(&pending), "{report}");
        assert_eq!(
            report.key_strings(),
            [
                "scene?status=draft",
                "scene#count?status=draft",
                "scene?status=final",
                "scene#count?status=final",
                "scene#count_by(status)",
                "scene:1",
                "part_summary:1",
                "story_outline:1"
            ]
        );
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().status,
            "final"
        );
        assert!(!ctx.is_cached(SceneQuery::ByStatus("draft".into()).list_key()));
        assert_eq!(
            report.to_string(),
            "invalidated 8 key(s): scene?status=draft, scene#count?status=draft, scene?status=final, \
             scene#count?status=final, scene#count_by(status), scene:1, part_summary:1, \
             story_outline:1"
        );
    }

    #[tokio::test]
    async fn rollback_touches_nothing(backend) {
        let (ctx, db) = seeded!(backend);
        let before = warm(&ctx).await;
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .update(1, SceneUpdate::default().title("Gone"))
            .await
            .unwrap();
        Scene::repo(&mut tx)
            .insert(&scene(4, 1, "draft", 0))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_untouched(&ctx, &db).await;
        assert_eq!(invalidations(&ctx), before);
    }

    #[tokio::test]
    async fn dropping_a_transaction_rolls_back_and_touches_nothing(backend) {
        let (ctx, db) = seeded!(backend);
        let before = warm(&ctx).await;
        {
            let mut tx = ctx.begin().await.unwrap();
            Scene::repo(&mut tx)
                .update(1, SceneUpdate::default().title("Gone"))
                .await
                .unwrap();
            Scene::repo(&mut tx)
                .insert(&scene(4, 1, "draft", 0))
                .await
                .unwrap();
        }
        assert_untouched(&ctx, &db).await;
        assert_eq!(invalidations(&ctx), before);
    }

    #[tokio::test]
    async fn an_error_mid_transaction_aborts_it_and_touches_nothing(backend) {
        let (ctx, db) = seeded!(backend);
        let before = warm(&ctx).await;
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .update(1, SceneUpdate::default().title("Gone"))
            .await
            .unwrap();
        let err = Scene::repo(&mut tx)
            .insert(&scene(2, 1, "draft", 0))
            .await
            .unwrap_err();
        assert!(err.is_constraint(ConstraintKind::Unique), "{err}");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, Error::TransactionAborted), "{err}");
        assert_untouched(&ctx, &db).await;
        assert_eq!(invalidations(&ctx), before);
    }

    #[tokio::test]
    async fn not_found_inside_a_transaction_does_not_abort_it(backend) {
        let (ctx, _db) = seeded!(backend);
        let mut tx = ctx.begin().await.unwrap();
        let err = Scene::repo(&mut tx).delete(99).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }));
        Scene::repo(&mut tx)
            .update(1, SceneUpdate::default().title("Kept"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().title,
            "Kept"
        );
    }

    #[tokio::test]
    async fn reads_inside_a_transaction_see_its_writes_and_fill_nothing(backend) {
        let (ctx, _db) = seeded!(backend);
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .insert(&scene(4, 2, "final", 9))
            .await
            .unwrap();
        Scene::repo(&mut tx)
            .update(1, SceneUpdate::default().status("final"))
            .await
            .unwrap();
        let mut scenes = Scene::repo(&mut tx);
        assert_eq!(scenes.get(4).await.unwrap().unwrap().word_count, 9);
        let finals: Vec<i64> = scenes
            .find_by_status("final")
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(finals, [1, 2, 4]);
        assert_eq!(scenes.count().await.unwrap(), 4);
        for key in [SceneKey(1), SceneKey(4)] {
            assert!(
                !ctx.is_cached(key),
                "transaction reads must not fill the shared cache"
            );
        }
        assert!(!ctx.is_cached(SceneQuery::ByStatus("final".into()).list_key()));
        let stats = ctx.stats();
        assert_eq!((stats.hits, stats.misses, stats.fills), (0, 0, 0));
        drop(tx);
        assert!(Scene::repo(&ctx).get(4).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn several_writes_to_one_row_apply_the_last_value(backend) {
        let (ctx, _db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        StoryOutline::get(&ctx, 1).await.unwrap();
        PartSummary::get(&ctx, 1).await.unwrap();
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .increment_word_count(1, 1)
            .await
            .unwrap();
        Scene::repo(&mut tx)
            .update(1, SceneUpdate::default().title("Last"))
            .await
            .unwrap();
        Scene::repo(&mut tx)
            .increment_word_count(1, 1)
            .await
            .unwrap();
        let report = tx.commit().await.unwrap();
        assert_eq!(
            report.key_strings(),
            ["scene:1", "part_summary:1", "story_outline:1"],
            "each key reported once"
        );
        let row = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert_eq!((row.title.as_str(), row.word_count), ("Last", 102));
    }

    #[tokio::test]
    async fn writes_across_entities_commit_together(backend) {
        let (ctx, _db) = seeded!(backend);
        let mut tx = ctx.begin().await.unwrap();
        Chapter::repo(&mut tx)
            .insert(&Chapter {
                id: 3,
                story_id: 1,
                part_id: 1,
                title: "Dawn".into(),
                position: 3,
            })
            .await
            .unwrap();
        Scene::repo(&mut tx)
            .insert(&scene(4, 3, "draft", 0))
            .await
            .unwrap();
        Story::repo(&mut tx)
            .update(1, StoryUpdate::default().status("revising"))
            .await
            .unwrap();
        let report = tx.commit().await.unwrap();
        for key in [
            "chapter:3",
            "scene:4",
            "story:1",
            "chapter?part_id=1",
            "scene?chapter_id=3",
            "story?status=revising",
        ] {
            assert!(
                report.key_strings().iter().any(|k| k == key),
                "{key} missing from {report}"
            );
        }
        assert_eq!(
            Scene::repo(&ctx).find_by_chapter_id(3).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn a_value_too_long_is_typed_and_changes_nothing(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        let err = Scene::repo(&ctx)
            .update(1, SceneUpdate::default().title("x".repeat(300)))
            .await
            .unwrap_err();
        // SQLite has no column lengths; the schema enforces the limit with a CHECK (on
        // MongoDB, with the collection's `$jsonSchema` validator).
        let expected = match backend {
            Backend::Sqlite | Backend::Mongo => ConstraintKind::Check,
            _ => ConstraintKind::TooLong,
        };
        assert!(err.is_constraint(expected), "{err}");
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().title, "Scene 1");
        assert_eq!(db.scene(1).await.unwrap().title, "Scene 1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadlock_is_a_retryable_conflict_and_changes_nothing(backend) {
        if backend == Backend::Sqlite {
            // SQLite serializes writers (BEGIN IMMEDIATE): two transactions cannot deadlock.
            return;
        }
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).get(2).await.unwrap();
        let mut first = ctx.begin().await.unwrap();
        let mut second = ctx.begin().await.unwrap();
        Scene::repo(&mut first).increment_word_count(1, 10).await.unwrap();
        Scene::repo(&mut second).increment_word_count(2, 10).await.unwrap();
        // Each now wants the other's row.
        let crossing = tokio::spawn(async move {
            match Scene::repo(&mut first).increment_word_count(2, 10).await {
                Ok(_) => Ok(first),
                Err(err) => {
                    let aborted = first.commit().await.unwrap_err();
                    assert!(matches!(aborted, Error::TransactionAborted), "{aborted}");
                    Err(err)
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let second = match Scene::repo(&mut second).increment_word_count(1, 10).await {
            Ok(_) => Ok(second),
            Err(err) => {
                let aborted = second.commit().await.unwrap_err();
                assert!(matches!(aborted, Error::TransactionAborted), "{aborted}");
                Err(err)
            }
        };
        let first = crossing.await.unwrap();
        let (survivor, victim) = match (first, second) {
            (Ok(t), Err(e)) | (Err(e), Ok(t)) => (t, e),
            (Ok(_), Ok(_)) => panic!("both crossing writes succeeded: no deadlock?"),
            (Err(a), Err(b)) => panic!("both failed: {a}; {b}"),
        };
        assert!(victim.is_retryable(), "a deadlock is a retryable conflict: {victim}");
        assert!(matches!(victim, Error::Conflict { .. }), "{victim}");
        survivor.commit().await.unwrap();
        // The survivor added 10 to both rows; the victim's writes are gone everywhere.
        for (id, words) in [(1, 110), (2, 210)] {
            assert_eq!(db.scene(id).await.unwrap().word_count, words);
            let cached = Scene::repo(&ctx).get(id).await.unwrap().unwrap();
            assert_eq!(cached.word_count, words, "scene {id}");
        }
    }
}
