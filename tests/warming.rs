//! Warming after invalidation (`ContextBuilder::warm`, `warm_view`), on every backend: an
//! entry read often is back in the cache shortly after a commit drops it, holding what a cold
//! read of the database returns, so the next reader hits; an entry read once, and the entries
//! of an entity not warmed, stay out; and a reload overtaken by a second commit is refused,
//! never storing the first commit's value.

use crate::common;
use common::domain::*;

use std::time::Duration;

use cached_runtime::{Context, LoadView, QueryKey};

/// The ids of `find_by_status(status)` read cold.
async fn cold_ids(ctx: &Context, status: &str) -> Vec<i64> {
    let cold = Context::new(ctx.store().clone());
    let rows = Scene::repo(&cold).find_by_status(status).await.unwrap();
    rows.iter().map(|s| s.id).collect()
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hot_entries_come_back_fresh_after_a_commit_and_cold_ones_do_not(backend) {
        let (ctx, db) = seeded!(backend, |b| b.warm::<Scene>().warm_view::<StoryOutline>());
        let mut scenes = Scene::repo(&ctx);
        let drafts = SceneQuery::ByStatus("draft".into());
        for _ in 0..4 {
            scenes.get(1).await.unwrap();
            scenes.find_by_status("draft").await.unwrap();
            StoryOutline::get(&ctx, 1).await.unwrap();
            Chapter::repo(&ctx).count().await.unwrap();
        }
        scenes.find_by_status("final").await.unwrap(); // read once: not hot
        let finals = SceneQuery::ByStatus("final".into());

        // One commit drops the query entries of both statuses, the chapter count, and the
        // outline (it read scene 1 and the chapters); scene 1's row is rewritten in place.
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .update(1, SceneUpdate::default().title("Warm title").status("final"))
            .await
            .unwrap();
        let added = Chapter { id: 3, story_id: 1, part_id: 1, title: "Added".into(), position: 3 };
        Chapter::repo(&mut tx).insert(&added).await.unwrap();
        let report = tx.commit().await.unwrap();
        for key in [drafts.list_key(), finals.list_key(), StoryOutlineKey::new(1).into(), ChapterQuery::All.count_key()] {
            assert!(report.contains(&key), "{key} in {report}");
        }
        common::within("the hot entries reloaded", Duration::from_secs(10), || {
            ctx.is_cached(drafts.list_key()) && ctx.is_cached(StoryOutlineKey::new(1))
        })
        .await;
        assert_eq!(ctx.stats().warmed, 2, "{}", ctx.stats());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!ctx.is_cached(finals.list_key()), "read once: left to the next reader");
        assert!(!ctx.is_cached(ChapterQuery::All.count_key()), "Chapter is not warmed");

        // What came back is what the database holds, and the next read is a hit.
        let before = ctx.stats();
        db.assert_scene_fresh(&ctx, 1, "the warmed row").await;
        assert_eq!(scenes.get(1).await.unwrap().unwrap().title, "Warm title");
        let ids: Vec<i64> = scenes.find_by_status("draft").await.unwrap().iter().map(|s| s.id).collect();
        assert_eq!(ids, cold_ids(&ctx, "draft").await);
        let outline = StoryOutline::get(&ctx, 1).await.unwrap().unwrap();
        let cold = Context::new(ctx.store().clone());
        assert_eq!(outline, StoryOutline::get(&cold, 1).await.unwrap().unwrap());
        let after = ctx.stats();
        assert_eq!(after.misses, before.misses, "every warmed entry was a hit: {after}");
    }

    // A reload that a second commit overtakes is refused: the cache ends with the second
    // commit's row (or nothing), never the first's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_overtaken_by_a_commit_is_refused(backend) {
        let slow = |b: cached_runtime::ContextBuilder| {
            b.warm::<Scene>().__fill_delay(Duration::from_millis(300))
        };
        let (ctx, _db) = seeded!(backend, slow);
        for _ in 0..3 {
            // A miss, then two hits: hot.
            Scene::repo(&ctx).find_by_status("draft").await.unwrap();
        }
        let refused = ctx.stats().stale_fills_rejected;
        let paused = ctx.__paused_loads();
        let mut scenes = Scene::repo(&ctx);
        scenes.update(1, SceneUpdate::default().status("final")).await.unwrap();
        // The reload has read the drafts without scene 1 and waits 300 ms to fill; a second
        // commit takes scene 3 out of the drafts meanwhile.
        common::loads_paused(&ctx, paused + 1).await;
        scenes.update(3, SceneUpdate::default().status("final")).await.unwrap();
        common::within("the reload refused", Duration::from_secs(10), || {
            ctx.stats().stale_fills_rejected > refused
        })
        .await;
        assert_eq!(ctx.stats().warmed, 0, "the refused reload is not counted");
        assert!(!ctx.is_cached(SceneQuery::ByStatus("draft".into()).list_key()));
        let ids: Vec<i64> = scenes.find_by_status("draft").await.unwrap().iter().map(|s| s.id).collect();
        assert_eq!(ids, cold_ids(&ctx, "draft").await);
        assert!(ids.is_empty(), "{ids:?}");
    }
}
