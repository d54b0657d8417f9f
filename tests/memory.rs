//! Memory bounded by bytes: `ContextBuilder::max_bytes` weighs each entry (its key, its
//! bookkeeping, a row's struct and the heap its fields own, a query's ids) and evicts past the
//! budget; `max_entry_bytes` keeps a value heavier than that out of the cache altogether
//! (counted as `too_large`), and a write-through of such a value drops the key rather than
//! leave the old row behind. Reads stay correct either way.

#[macro_use]
mod common;

use cached_runtime::prelude::*;
use common::domain::*;

/// Scenes 100.. (600 of them) in chapter 1.
async fn many_scenes(ctx: &Context) -> Vec<i64> {
    let ids: Vec<i64> = (100..700).collect();
    let scenes: Vec<Scene> = ids
        .iter()
        .map(|&id| common::scene(id, 1, "draft", 0))
        .collect();
    Scene::repo(ctx).insert_many(&scenes).await.unwrap();
    ctx.clear();
    ids
}

/// A view that reads ten scenes: each cached instance registers ten keys in the dependency
/// index.
#[derive(CachedView, Clone)]
#[view(key = "Scene")]
pub struct TenScenes {
    pub words: i64,
}

impl LoadView for TenScenes {
    async fn load(ctx: &mut ViewCtx<'_, Self>, id: i64) -> Result<Option<Self>> {
        let ids: Vec<i64> = (id..id + 10).collect();
        let scenes = ctx.get_many::<Scene>(&ids).await?;
        Ok(Some(TenScenes {
            words: scenes.iter().flatten().map(|s| s.word_count).sum(),
        }))
    }
}

backend_tests! {
    #[tokio::test]
    async fn max_bytes_bounds_the_dependency_index_too(backend) {
        // Each instance holds little itself but registers ten keys: the index is what grows.
        const BUDGET: u64 = 200_000;
        let (ctx, _db) = seeded!(backend, |b| b.max_bytes(BUDGET));
        let ids = many_scenes(&ctx).await;
        for &id in &ids[..500] {
            TenScenes::get(&ctx, id).await.unwrap().expect("the view");
        }
        ctx.entry_count(); // lets moka evict what is over the budget
        let (instances, keys) = ctx.__dependency_index_size();
        // What the index holds for them, at the cost benches/deps.rs measures (about 750
        // bytes per instance and 290 per key read): within the budget, not 500 instances'.
        let index_bytes = instances as u64 * 750 + keys as u64 * 290;
        assert!(instances < 100, "{instances} instances registered under a {BUDGET}-byte budget");
        assert!(index_bytes <= BUDGET, "the index holds ~{index_bytes} bytes ({instances} instances, {keys} keys)");
    }


    #[tokio::test]
    async fn max_bytes_bounds_what_the_cache_holds(backend) {
        // About 100 scene rows' worth (each weighs a few hundred bytes).
        let (ctx, db) = seeded!(backend, |b| b.max_bytes(50_000));
        let ids = many_scenes(&ctx).await;
        for &id in &ids {
            let scene = Scene::repo(&ctx).get(id).await.unwrap().expect("the scene");
            assert_eq!(scene.id, id);
        }
        let held = ctx.entry_count();
        assert!(held > 0 && held < 200, "600 rows read, {held} entries held under 50 kB");

        // The same reads without the byte bound keep every row: the bound is what evicted.
        let unbounded = Context::new(db.store.clone());
        for &id in &ids {
            Scene::repo(&unbounded).get(id).await.unwrap().expect("the scene");
        }
        assert!(unbounded.entry_count() >= 600, "{}", unbounded.entry_count());
        // And what the bounded cache still holds is what the database holds.
        for &id in ids.iter().rev().take(50) {
            db.assert_scene_fresh(&ctx, id, "a bounded cache").await;
        }
    }

    #[tokio::test]
    async fn a_value_heavier_than_max_entry_bytes_is_served_but_not_cached(backend) {
        let (ctx, db) = seeded!(backend, |b| b.max_entry_bytes(650));
        // A scene weighs ~540 bytes with a short title, ~730 with a 200-character one.
        // A short row is cached as usual.
        Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert!(ctx.is_cached(SceneKey(1)));
        assert_eq!(ctx.stats().too_large, 0);

        // Its write-through with a 200-character title (the table allows no more) is too heavy: the key is dropped, not left old.
        let long = "x".repeat(200);
        let updated = Scene::repo(&ctx).update(1, SceneUpdate::default().title(long.clone())).await;
        assert_eq!(updated.unwrap().title, long);
        assert!(!ctx.is_cached(SceneKey(1)), "a too-heavy write-through drops the key");
        // Read back: served from the database, still not cached.
        let read = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert_eq!(read.title, long);
        assert!(!ctx.is_cached(SceneKey(1)));
        assert!(ctx.stats().too_large >= 2, "{}", ctx.stats());
        db.assert_scene_fresh(&ctx, 1, "a too-heavy row").await;

        // Short again: cached again.
        Scene::repo(&ctx).update(1, SceneUpdate::default().title("short")).await.unwrap();
        Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert!(ctx.is_cached(SceneKey(1)));
        db.assert_scene_fresh(&ctx, 1, "a short row again").await;
    }
}
