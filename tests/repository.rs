//! Every generated repository method, on SQLite, through the context and through a transaction.

use crate::common;

use cached_runtime::{CacheKey, ConstraintKind, Error, QueryKey};
use common::domain::*;
use common::scene;

#[tokio::test]
async fn relations_expose_foreign_keys() {
    use cached_runtime::RelatesTo;
    let s = scene(1, 2, "draft", 0);
    assert_eq!(<Scene as RelatesTo<Chapter>>::related_id(&s), Some(2));
    assert_eq!(<Scene as RelatesTo<Story>>::related_id(&s), Some(1));
    assert_eq!(<Scene as RelatesTo<Setting>>::related_id(&s), None);
    assert_eq!(<Scene as RelatesTo<Chapter>>::FOREIGN_KEY, "chapter_id");
}

#[tokio::test]
async fn typed_keys_print_readably() {
    assert_eq!(SceneKey(42).to_string(), "scene:42");
    assert_eq!(
        SceneQuery::ByStatus("draft".into()).to_string(),
        "scene?status=draft"
    );
    assert_eq!(SceneQuery::All.to_string(), "scene?all");
    assert_eq!(
        SceneQuery::ByChapterId(7).count_key().to_string(),
        "scene#count?chapter_id=7"
    );
    assert_eq!(
        SceneQuery::count_grouped_by_status().to_string(),
        "scene#count_by(status)"
    );
    assert_eq!(
        SceneQuery::ByLocationId(None).to_string(),
        "scene?location_id=null"
    );
    assert_eq!(CacheKey::from(StoryKey(3)).to_string(), "story:3");
}

backend_tests! {
    #[tokio::test]
    async fn get_misses_then_hits_and_caches_absence(backend) {
        let (ctx, _db) = seeded!(backend);
        let first = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert_eq!(first.title, "Scene 1");
        let stats = ctx.stats();
        assert_eq!((stats.hits, stats.misses, stats.loads), (0, 1, 1));

        let again = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&first, &again),
            "a hit returns the cached Arc"
        );
        assert_eq!(ctx.stats().hits, 1);

        assert!(Scene::repo(&ctx).get(99).await.unwrap().is_none());
        assert!(ctx.is_cached(SceneKey(99)), "absence is cached");
        assert!(Scene::repo(&ctx).get(99).await.unwrap().is_none());
        let stats = ctx.stats();
        assert_eq!((stats.hits, stats.misses, stats.loads), (2, 2, 2));
    }

    #[tokio::test]
    async fn get_many_keeps_order_and_loads_misses_in_one_query(backend) {
        let (ctx, _db) = seeded!(backend);
        Scene::repo(&ctx).get(2).await.unwrap();
        let loads = ctx.stats().loads;
        let rows = Scene::repo(&ctx).get_many(&[3, 99, 2, 1]).await.unwrap();
        let ids: Vec<Option<i64>> = rows.iter().map(|r| r.as_ref().map(|s| s.id)).collect();
        assert_eq!(ids, [Some(3), None, Some(2), Some(1)]);
        assert_eq!(
            ctx.stats().loads,
            loads + 1,
            "one query for the three misses"
        );
        for id in [1, 3, 99] {
            assert!(ctx.is_cached(SceneKey(id)));
        }
    }

    #[tokio::test]
    async fn finders_counts_and_list(backend) {
        let (ctx, _db) = seeded!(backend);
        let mut scenes = Scene::repo(&ctx);
        let drafts: Vec<i64> = scenes
            .find_by_status("draft")
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(drafts, [1, 3]);
        assert_eq!(scenes.count_by_status("draft").await.unwrap(), 2);
        let in_chapter: Vec<i64> = scenes
            .find_by_chapter_id(1)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(in_chapter, [1, 2]);
        assert_eq!(scenes.count_by_chapter_id(2).await.unwrap(), 1);
        assert_eq!(scenes.find_by_story_id(1).await.unwrap().len(), 3);
        assert_eq!(scenes.count_by_story_id(1).await.unwrap(), 3);
        assert_eq!(scenes.list().await.unwrap().len(), 3);
        assert_eq!(scenes.count().await.unwrap(), 3);
        // Nullable foreign key: `IS NULL` semantics for None.
        assert_eq!(scenes.find_by_location_id(None).await.unwrap().len(), 3);
        assert_eq!(scenes.count_by_location_id(Some(1)).await.unwrap(), 0);

        assert!(ctx.is_cached(SceneQuery::ByStatus("draft".into()).list_key()));
        assert!(ctx.is_cached(SceneQuery::ByStatus("draft".into()).count_key()));
        assert!(ctx.is_cached(SceneQuery::All.list_key()));
        // Query results fill the rows they matched.
        assert!(ctx.is_cached(SceneKey(3)));

        let hits = ctx.stats().hits;
        assert_eq!(scenes.find_by_status("draft").await.unwrap().len(), 2);
        assert_eq!(scenes.count().await.unwrap(), 3);
        assert_eq!(ctx.stats().hits, hits + 2);
    }

    #[tokio::test]
    async fn insert_writes_through_and_insert_many_in_one_batch(backend) {
        let (ctx, db) = seeded!(backend);
        let stored = Scene::repo(&ctx)
            .insert(&scene(4, 2, "draft", 10))
            .await
            .unwrap();
        assert_eq!(stored.id, 4);
        assert!(ctx.is_cached(SceneKey(4)), "the inserted row is cached");
        let hits = ctx.stats().hits;
        assert_eq!(
            Scene::repo(&ctx).get(4).await.unwrap().unwrap().word_count,
            10
        );
        assert_eq!(ctx.stats().hits, hits + 1);

        let rows = Scene::repo(&ctx)
            .insert_many(&[scene(5, 1, "final", 1), scene(6, 2, "final", 2)])
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(db.scene(6).await.unwrap().status, "final");
        assert!(Scene::repo(&ctx).insert_many(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn update_with_patch_returns_and_caches_the_new_row(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        let patch = SceneUpdate::default().title("Rewritten").word_count(111);
        let updated = Scene::repo(&ctx).update(1, patch).await.unwrap();
        assert_eq!(
            (updated.title.as_str(), updated.word_count),
            ("Rewritten", 111)
        );
        assert_eq!(db.scene(1).await.unwrap(), *updated);
        let cached = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert_eq!(cached.title, "Rewritten");

        // A patch of key-forming fields (the old row is needed too): the returned and cached
        // row is still exactly the stored one, nulls included.
        for location in [Some(1), None] {
            let patch = SceneUpdate::default()
                .status("final")
                .chapter_id(2)
                .location_id(location);
            let moved = Scene::repo(&ctx).update(1, patch).await.unwrap();
            assert_eq!(moved.location_id, location);
            assert_eq!(db.scene(1).await.unwrap(), *moved);
            assert_eq!(*Scene::repo(&ctx).get(1).await.unwrap().unwrap(), *moved);
        }

        // An empty patch changes nothing and returns the row.
        let same = Scene::repo(&ctx)
            .update(1, SceneUpdate::default())
            .await
            .unwrap();
        assert_eq!(same.title, "Rewritten");
    }

    #[tokio::test]
    async fn update_and_delete_of_unknown_ids_are_typed_not_found(backend) {
        let (ctx, _db) = seeded!(backend);
        let err = Scene::repo(&ctx)
            .update(99, SceneUpdate::default().title("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::NotFound { entity: "Scene", ref id } if id == "99"),
            "{err}"
        );
        let err = Scene::repo(&ctx)
            .update(99, SceneUpdate::default().status("x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        let err = Scene::repo(&ctx).delete(99).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        let err = Scene::repo(&ctx)
            .increment_word_count(99, 1)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Scene with id 99 does not exist");
    }

    #[tokio::test]
    async fn delete_and_delete_many(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(2).await.unwrap();
        let deleted = Scene::repo(&ctx).delete(2).await.unwrap();
        assert_eq!(deleted.id, 2);
        assert!(db.scene(2).await.is_none());
        assert!(
            ctx.is_cached(SceneKey(2)),
            "a delete leaves a negative entry"
        );
        assert!(Scene::repo(&ctx).get(2).await.unwrap().is_none());

        assert_eq!(Scene::repo(&ctx).delete_many(&[1, 3, 99]).await.unwrap(), 2);
        assert_eq!(Scene::repo(&ctx).count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn increment_and_decrement_are_atomic_and_rewrite_the_row(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).find_by_chapter_id(1).await.unwrap();
        let row = Scene::repo(&ctx).increment_word_count(1, 50).await.unwrap();
        assert_eq!(row.word_count, 150);
        let row = Scene::repo(&ctx).decrement_word_count(1, 20).await.unwrap();
        assert_eq!(row.word_count, 130);
        assert_eq!(db.scene(1).await.unwrap().word_count, 130);
        assert!(
            ctx.is_cached(SceneQuery::ByChapterId(1).list_key()),
            "no query was invalidated"
        );
        let in_chapter = Scene::repo(&ctx).find_by_chapter_id(1).await.unwrap();
        assert_eq!(
            in_chapter[0].word_count, 130,
            "the query resolves the rewritten row"
        );
    }

    #[tokio::test]
    async fn constraint_violations_are_typed_and_change_nothing(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        let count = Scene::repo(&ctx).count().await.unwrap();

        let err = Scene::repo(&ctx)
            .insert(&scene(1, 1, "draft", 0))
            .await
            .unwrap_err();
        assert!(err.is_constraint(ConstraintKind::Unique), "{err}");
        if !backend.is_mongo() {
            // MongoDB has no foreign keys: there, an insert naming a missing chapter succeeds.
            let err = Scene::repo(&ctx)
                .insert(&scene(7, 42, "draft", 0))
                .await
                .unwrap_err();
            assert!(err.is_constraint(ConstraintKind::ForeignKey), "{err}");
        }
        let err = Scene::repo(&ctx)
            .update(1, SceneUpdate::default().title(""))
            .await
            .unwrap_err();
        assert!(err.is_constraint(ConstraintKind::Check), "{err}");
        let err = Character::repo(&ctx)
            .update(2, CharacterUpdate::default().name("Mara"))
            .await
            .unwrap_err();
        assert!(err.is_constraint(ConstraintKind::Unique), "{err}");

        assert_eq!(Scene::repo(&ctx).count().await.unwrap(), count);
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().title,
            "Scene 1"
        );
        assert_eq!(db.scene(1).await.unwrap().title, "Scene 1");
        assert!(db.scene(7).await.is_none());
    }

    #[tokio::test]
    async fn transaction_handles_run_every_method(backend) {
        let (ctx, _db) = seeded!(backend);
        let mut tx = ctx.begin().await.unwrap();
        let mut scenes = Scene::repo(&mut tx);
        scenes.insert(&scene(4, 1, "draft", 5)).await.unwrap();
        scenes
            .insert_many(&[scene(5, 1, "draft", 5)])
            .await
            .unwrap();
        assert_eq!(scenes.get(4).await.unwrap().unwrap().id, 4);
        assert_eq!(
            scenes
                .get_many(&[5, 4, 9])
                .await
                .unwrap()
                .iter()
                .flatten()
                .count(),
            2
        );
        assert_eq!(scenes.find_by_status("draft").await.unwrap().len(), 4);
        assert_eq!(scenes.count_by_chapter_id(1).await.unwrap(), 4);
        assert_eq!(scenes.list().await.unwrap().len(), 5);
        assert_eq!(scenes.count().await.unwrap(), 5);
        scenes
            .update(4, SceneUpdate::default().status("final"))
            .await
            .unwrap();
        scenes.increment_word_count(5, 1).await.unwrap();
        scenes.delete(4).await.unwrap();
        assert_eq!(scenes.delete_many(&[5]).await.unwrap(), 1);
        let report = tx.commit().await.unwrap();
        assert!(!report.is_empty());
        assert_eq!(Scene::repo(&ctx).count().await.unwrap(), 3);
    }
}
