//! Views are invalidated by what their loads read, whatever that is: rows of other keys, a
//! shop-wide count, a query the loader built from an earlier read. Manual calls drop the views
//! that read what they drop, and a view load overtaken by a commit is not stored.

use crate::common;

use std::sync::Arc;

use cached_runtime::prelude::*;
use common::domain::*;
use common::Backend;

/// A story's page that also reads what its key does not reach through any foreign key: the
/// number of final scenes in the whole database, and scene 4 (of another story).
#[derive(CachedView, Clone, Debug, PartialEq)]
#[view(key = "Story", reads(Story, Scene))]
pub struct StoryPage {
    pub title: String,
    pub finals_everywhere: i64,
    pub featured: Option<String>,
}

impl LoadView for StoryPage {
    async fn load(ctx: &mut ViewCtx<'_, Self>, story: i64) -> Result<Option<Self>> {
        let Some(story) = ctx.get::<Story>(story).await? else {
            return Ok(None);
        };
        let finals_everywhere = ctx.count(SceneQuery::ByStatus("final".into())).await?;
        let featured = ctx.get::<Scene>(4).await?.map(|s| s.title.clone());
        Ok(Some(StoryPage {
            title: story.title.clone(),
            finals_everywhere,
            featured,
        }))
    }
}

/// A manual invalidation call.
type ManualCall = fn(&Context) -> cached_runtime::CommitReport;

/// Story 2 with scene 4 (draft, chapter 3).
async fn with_scene_four(ctx: &Context) {
    let mut tx = ctx.begin().await.unwrap();
    Part::repo(&mut tx)
        .insert(&Part {
            id: 3,
            story_id: 2,
            title: "Only Part".into(),
            position: 1,
        })
        .await
        .unwrap();
    Chapter::repo(&mut tx)
        .insert(&Chapter {
            id: 3,
            story_id: 2,
            part_id: 3,
            title: "Dawn".into(),
            position: 1,
        })
        .await
        .unwrap();
    let mut s4 = common::scene(4, 3, "draft", 400);
    s4.story_id = 2;
    Scene::repo(&mut tx).insert(&s4).await.unwrap();
    tx.commit().await.unwrap();
    ctx.clear();
}

/// Asserts that the cached page equals a fresh load.
async fn assert_fresh(ctx: &Context, what: &str) {
    let cached = StoryPage::get(ctx, 1).await.unwrap();
    ctx.clear();
    let fresh = StoryPage::get(ctx, 1).await.unwrap();
    assert_eq!(cached, fresh, "{what}: the cached page is stale");
}

backend_tests! {
    #[tokio::test]
    async fn a_write_to_anything_a_load_read_drops_the_instance(backend) {
        let (ctx, _db) = seeded!(backend);
        with_scene_four(&ctx).await;
        let page = StoryPage::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!(page.finals_everywhere, 1);
        assert_eq!(page.featured.as_deref(), Some("Scene 4"));
        let key: CacheKey = StoryPageKey::new(1).into();

        // A scene the page did not read, changed in a way no query it read sees: kept.
        Scene::repo(&ctx)
            .update(1, SceneUpdate::default().title("Quiet"))
            .await
            .unwrap();
        assert!(ctx.is_cached(key.clone()), "an unrelated write dropped the page");

        // Scene 4 belongs to story 2: no foreign key leads from it to story 1.
        Scene::repo(&ctx)
            .update(4, SceneUpdate::default().title("Sunrise"))
            .await
            .unwrap();
        assert!(!ctx.is_cached(key.clone()), "the row the page read changed");
        assert_eq!(
            StoryPage::get(&ctx, 1).await.unwrap().unwrap().featured.as_deref(),
            Some("Sunrise")
        );

        // The shop-wide count: scene 3 becomes final.
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .update(3, SceneUpdate::default().status("final"))
            .await
            .unwrap();
        let report = tx.commit().await.unwrap();
        assert!(report.contains(&key), "the report names the page: {report}");
        assert_eq!(StoryPage::get(&ctx, 1).await.unwrap().unwrap().finals_everywhere, 2);

        // Deleting the scene it features; then inserting it again.
        Scene::repo(&ctx).delete(4).await.unwrap();
        assert_eq!(StoryPage::get(&ctx, 1).await.unwrap().unwrap().featured, None);
        let mut s4 = common::scene(4, 3, "final", 1);
        s4.story_id = 2;
        Scene::repo(&ctx).insert(&s4).await.unwrap();
        let page = StoryPage::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!((page.featured.as_deref(), page.finals_everywhere), (Some("Scene 4"), 3));
        assert_fresh(&ctx, "after the re-insert").await;
    }

    #[tokio::test]
    async fn manual_calls_drop_the_views_that_read_what_they_drop(backend) {
        let (ctx, _db) = seeded!(backend);
        with_scene_four(&ctx).await;
        let key: CacheKey = StoryPageKey::new(1).into();
        let calls: [(&str, ManualCall); 4] = [
            ("invalidate", |ctx| ctx.invalidate::<Scene>(4)),
            ("invalidate_key", |ctx| ctx.invalidate_key(SceneKey(4))),
            ("invalidate_query", |ctx| {
                ctx.invalidate_query(&SceneQuery::ByStatus("final".into()))
            }),
            ("invalidate_entity", |ctx| ctx.invalidate_entity::<Scene>()),
        ];
        for (name, call) in calls {
            StoryPage::get(&ctx, 1).await.unwrap().unwrap();
            assert!(ctx.is_cached(key.clone()));
            let report = call(&ctx);
            assert!(!ctx.is_cached(key.clone()), "{name} left the page cached");
            assert!(report.contains(&key), "{name}'s report does not name the page: {report}");
        }
        // Unrelated manual calls keep it. (`invalidate::<Scene>(2)` would not: after a write
        // outside the cache, scene 2 may have entered any query the page read.)
        StoryPage::get(&ctx, 1).await.unwrap().unwrap();
        ctx.invalidate_key(SceneKey(2));
        ctx.invalidate_query(&SceneQuery::ByStatus("draft".into()));
        ctx.invalidate_entity::<Character>();
        assert!(ctx.is_cached(key.clone()));

        // refresh after a change behind the cache's back: the page follows.
        _db.set_scene_title(4, "Changed outside").await;
        ctx.refresh::<Scene>(4).await.unwrap();
        assert!(!ctx.is_cached(key.clone()));
        assert_eq!(
            StoryPage::get(&ctx, 1).await.unwrap().unwrap().featured.as_deref(),
            Some("Changed outside")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_view_load_overtaken_by_a_commit_is_not_stored(backend) {
        let (ctx, _db) = seeded!(backend, |b| b.__fill_delay(std::time::Duration::from_millis(300)));
        with_scene_four(&ctx).await;
        // Warm what the page reads (the warming loads pause too), so that the page's own load
        // is the only one that pauses next.
        Story::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).get(4).await.unwrap();
        Scene::repo(&ctx).count_by_status("final").await.unwrap();
        let paused = ctx.__paused_loads();
        let reader = {
            let ctx = ctx.clone();
            tokio::spawn(async move { StoryPage::get(&ctx, 1).await.unwrap().unwrap() })
        };
        common::loads_paused(&ctx, paused + 1).await;
        // The page has read scene 4; a commit changes it before the page is stored.
        Scene::repo(&ctx)
            .update(4, SceneUpdate::default().title("Overtaken"))
            .await
            .unwrap();
        let old: Arc<StoryPage> = reader.await.unwrap();
        assert_eq!(old.featured.as_deref(), Some("Scene 4"), "the reader read before the commit");
        assert!(
            !ctx.is_cached(StoryPageKey::new(1)),
            "a page read before the commit was stored after it"
        );
        assert!(ctx.stats().stale_fills_rejected >= 1);
        let page = StoryPage::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!(page.featured.as_deref(), Some("Overtaken"));
    }
}

#[tokio::test]
async fn the_dependency_index_forgets_evicted_and_dropped_instances() {
    let Some((ctx, _db)) = common::seeded_with(Backend::Sqlite, |b| b.max_entries(64)).await else {
        return;
    };
    with_scene_four(&ctx).await;
    StoryPage::get(&ctx, 1).await.unwrap();
    assert_eq!(ctx.__dependency_index_size().0, 1);
    ctx.invalidate::<Scene>(4);
    assert_eq!(ctx.__dependency_index_size(), (0, 0), "dropped: released");
    // Far more rows than the cache holds: the page is evicted at some point, and with it
    // what it registered.
    StoryPage::get(&ctx, 1).await.unwrap();
    for id in 100..400 {
        Scene::repo(&ctx).get(id).await.unwrap();
    }
    ctx.__settle(); // lets moka run its evictions, and releases what they leave registered
    let (views, keys) = ctx.__dependency_index_size();
    assert!(
        views == usize::from(ctx.is_cached(StoryPageKey::new(1))),
        "{views} registered instances, {keys} keys"
    );
}
