//! Bulk and in-place operations on every backend: `update_many_by_<field>`, list fields
//! (`append_` / `remove_`), batches that fail on a duplicate key, retried transactions.

use crate::common;

use cached_runtime::{ConstraintKind, Error, QueryKey};
use common::domain::*;
use common::scene;

backend_tests! {
    #[tokio::test]
    async fn update_many_invalidates_exactly_the_rows_and_queries_it_changes(backend) {
        let (ctx, db) = seeded!(backend);
        let drafts = SceneQuery::ByStatus("draft".into());
        let finals = SceneQuery::ByStatus("final".into());
        let chapter = SceneQuery::ByChapterId(1);
        Scene::repo(&ctx).find_by_status("draft").await.unwrap();
        Scene::repo(&ctx).find_by_status("final").await.unwrap();
        Scene::repo(&ctx).find_by_chapter_id(1).await.unwrap();
        Scene::repo(&ctx).get_many(&[1, 2, 3]).await.unwrap();

        let mut tx = ctx.begin().await.unwrap();
        let updated = Scene::repo(&mut tx)
            .update_many_by_status("draft", SceneUpdate::default().status("review"))
            .await
            .unwrap();
        assert_eq!(updated.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 3]);
        assert!(updated.iter().all(|s| s.status == "review"));
        let report = tx.commit().await.unwrap();
        let keys = report.key_strings();
        for key in [
            "scene?status=draft",
            "scene#count?status=draft",
            "scene?status=review",
            "scene#count?status=review",
            "scene:1",
            "scene:3",
        ] {
            assert!(keys.contains(&key.to_string()), "{key} missing from {report}");
        }
        for key in ["scene?status=final", "scene?chapter_id=1", "scene:2"] {
            assert!(!keys.contains(&key.to_string()), "{key} dropped by {report}");
        }
        // Untouched entries stay; rewritten rows are served from the cache, fresh.
        assert!(ctx.is_cached(finals.list_key()));
        assert!(ctx.is_cached(chapter.list_key()));
        assert!(!ctx.is_cached(drafts.list_key()));
        let misses = ctx.stats().misses;
        assert_eq!(Scene::repo(&ctx).get(3).await.unwrap().unwrap().status, "review");
        assert_eq!(ctx.stats().misses, misses, "scene 3 was written through");
        assert!(Scene::repo(&ctx).find_by_status("draft").await.unwrap().is_empty());
        assert_eq!(Scene::repo(&ctx).count_by_status("review").await.unwrap(), 2);
        assert_eq!(db.scene(1).await.unwrap().status, "review");
        assert_eq!(db.scene(2).await.unwrap().status, "final");

        // A patch of non-key fields drops no query at all.
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .update_many_by_chapter_id(1, SceneUpdate::default().word_count(5))
            .await
            .unwrap();
        let report = tx.commit().await.unwrap();
        assert!(
            report.keys().iter().all(|k| !k.is_query()),
            "no membership changed: {report}"
        );
        assert_eq!(db.scene(2).await.unwrap().word_count, 5);
        assert_eq!(Scene::repo(&ctx).get(2).await.unwrap().unwrap().word_count, 5);

        // No match: nothing written, nothing invalidated.
        let none = Scene::repo(&ctx)
            .update_many_by_status("missing", SceneUpdate::default().title("x"))
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn list_fields_append_and_remove_in_place(backend) {
        let (ctx, _db) = seeded!(backend);
        let before = Character::repo(&ctx).get(1).await.unwrap().unwrap();
        assert!(before.traits.is_empty());
        Character::repo(&ctx).find_by_name("Mara").await.unwrap();

        let row = Character::repo(&ctx).append_traits(1, "brave").await.unwrap();
        assert_eq!(row.traits, ["brave"]);
        Character::repo(&ctx).append_traits(1, "stubborn").await.unwrap();
        let row = Character::repo(&ctx).append_traits(1, "brave").await.unwrap();
        assert_eq!(row.traits, ["brave", "stubborn", "brave"]);
        assert!(
            ctx.is_cached(CharacterQuery::ByName("Mara".into()).list_key()),
            "a list is not key-forming: queries stay"
        );
        let row = Character::repo(&ctx).remove_traits(1, "brave").await.unwrap();
        assert_eq!(row.traits, ["stubborn"], "every equal item is removed");

        // The cache holds what the database holds.
        let misses = ctx.stats().misses;
        assert_eq!(Character::repo(&ctx).get(1).await.unwrap().unwrap().traits, ["stubborn"]);
        assert_eq!(ctx.stats().misses, misses, "written through");
        let fresh = cached_runtime::Context::new(ctx.store().clone());
        assert_eq!(Character::repo(&fresh).get(1).await.unwrap().unwrap().traits, ["stubborn"]);
        assert_eq!(Character::repo(&ctx).find_by_name("Mara").await.unwrap()[0].traits, ["stubborn"]);

        let err = Character::repo(&ctx).append_traits(99, "x").await.unwrap_err();
        assert!(matches!(err, Error::NotFound { entity: "Character", .. }), "{err}");
        assert!(Character::repo(&ctx).get(99).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_batch_with_a_duplicate_key_is_typed_and_changes_nothing(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).find_by_chapter_id(2).await.unwrap();
        let count = Scene::repo(&ctx).count().await.unwrap();
        let err = Scene::repo(&ctx)
            .insert_many(&[scene(10, 2, "draft", 1), scene(3, 2, "draft", 1)])
            .await
            .unwrap_err();
        assert!(err.is_constraint(ConstraintKind::Unique), "{err}");
        assert!(db.scene(10).await.is_none(), "the batch is all or nothing");
        assert_eq!(Scene::repo(&ctx).count().await.unwrap(), count);
        assert!(ctx.is_cached(SceneQuery::ByChapterId(2).list_key()));
        assert!(Scene::repo(&ctx).get(10).await.unwrap().is_none());

        // delete_many drops exactly the rows and queries of the rows that existed.
        let mut tx = ctx.begin().await.unwrap();
        assert_eq!(Scene::repo(&mut tx).delete_many(&[3, 42]).await.unwrap(), 1);
        let report = tx.commit().await.unwrap();
        let keys = report.key_strings();
        assert!(keys.contains(&"scene?chapter_id=2".to_string()), "{report}");
        assert!(!keys.contains(&"scene?chapter_id=1".to_string()), "{report}");
        assert!(!keys.iter().any(|k| k == "scene:42"), "{report}");
    }

    #[tokio::test]
    async fn context_transaction_runs_the_body_and_commits_once(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        let mut runs = 0;
        let (words, report) = ctx
            .transaction(async |tx| {
                runs += 1;
                let s = Scene::repo(&mut *tx).increment_word_count(1, 7).await?;
                Scene::repo(&mut *tx).update(2, SceneUpdate::default().title("Two")).await?;
                Ok(s.word_count)
            })
            .await
            .unwrap();
        assert_eq!((runs, words), (1, 107));
        assert!(report.key_strings().contains(&"scene:1".to_string()), "{report}");
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().word_count, 107);
        assert_eq!(db.scene(2).await.unwrap().title, "Two");

        // The transaction future is `Send`: it can run on a spawned task.
        let spawned = tokio::spawn({
            let ctx = ctx.clone();
            async move {
                ctx.transaction(async |tx| {
                    Scene::repo(&mut *tx).update(3, SceneUpdate::default().title("Spawned")).await
                })
                .await
            }
        });
        assert_eq!(spawned.await.unwrap().unwrap().0.title, "Spawned");

        // A body that fails rolls back, is not retried (not a conflict), and touches nothing.
        let mut runs = 0;
        let err = ctx
            .transaction(async |tx| {
                runs += 1;
                Scene::repo(&mut *tx).increment_word_count(1, 1).await?;
                Scene::repo(&mut *tx).delete(99).await
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert_eq!(runs, 1);
        assert_eq!(db.scene(1).await.unwrap().word_count, 107);
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().word_count, 107);
    }
}
