//! The consistency auditor (`ctx.audit(sample)`): on a cache that is right it finds no
//! mismatch; after a write behind the cache's back (a raw `UPDATE`, no invalidation) it names
//! the stale row, query and count with both values; once the write is announced it finds
//! nothing again; under concurrent writers through the cache it never reports a commit in
//! flight as a mismatch; and it finds the row a slow load stored after a commit when the
//! stale-fill guard is off (test-only), and nothing with the guard on. On every backend.

use crate::common;

use common::domain::*;

/// Rows (one absent), queries and counts cached.
async fn warm(ctx: &cached_runtime::Context) {
    let mut scenes = Scene::repo(ctx);
    for id in [1, 2, 3, 99] {
        scenes.get(id).await.unwrap();
    }
    scenes.find_by_status("draft").await.unwrap();
    scenes.find_by_chapter_id(1).await.unwrap();
    scenes.count_by_status("draft").await.unwrap();
    scenes.count().await.unwrap();
}

backend_tests! {
    #[tokio::test]
    async fn the_auditor_finds_exactly_what_a_write_behind_the_cache_left_stale(backend) {
        let (ctx, db) = seeded!(backend);
        warm(&ctx).await;
        let report = ctx.audit(1_000).await.unwrap();
        assert!(report.mismatches.is_empty(), "{report}");
        assert!(report.checked >= 8, "rows, the absent row, queries and counts: {report}");
        assert_eq!(report.consistency(), 1.0);

        // Scene 1 goes from draft to final behind the cache's back.
        if backend.is_mongo() {
            use mongodb::bson::{doc, Document};
            let set = doc! { "$set": { "status": "final", "title": "Behind" } };
            let scenes = db.mongo().collection::<Document>("scenes");
            scenes.update_one(doc! { "_id": 1_i64 }, set).await.unwrap();
        } else {
            db.execute("UPDATE scenes SET status = 'final', title = 'Behind' WHERE id = 1").await;
        }
        let report = ctx.audit(1_000).await.unwrap();
        let mut stale: Vec<&str> = report.mismatches.iter().map(|m| m.key.as_str()).collect();
        stale.sort();
        assert_eq!(
            stale,
            ["scene#count?status=draft", "scene:1", "scene?status=draft"],
            "{report}"
        );
        let row = report.mismatches.iter().find(|m| m.key == "scene:1").unwrap();
        assert!(row.cached.contains("Scene 1") && row.database.contains("Behind"), "{report}");
        assert!(report.consistency() < 1.0);
        // The auditor only reads: the stale entries are still there.
        assert!(ctx.is_cached(SceneKey(1)));

        ctx.invalidate::<Scene>(1);
        warm(&ctx).await;
        let report = ctx.audit(1_000).await.unwrap();
        assert!(report.mismatches.is_empty(), "{report}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_in_flight_are_never_mismatches(backend) {
        let (ctx, _db) = seeded!(backend);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (ctx, stop) = (ctx.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0_i64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let status = if n % 2 == 0 { "final" } else { "draft" };
                    let id = n % 3 + 1;
                    Scene::repo(&ctx).update(id, SceneUpdate::default().status(status)).await.unwrap();
                    n += 1;
                }
                n
            })
        };
        let (mut checked, mut mismatches) = (0, Vec::new());
        for _ in 0..10 {
            warm(&ctx).await;
            let report = ctx.audit(1_000).await.unwrap();
            checked += report.checked;
            mismatches.extend(report.mismatches);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let writes = writer.await.unwrap();
        assert!(mismatches.is_empty(), "{mismatches:?}");
        assert!(checked > 0 && writes > 0, "{checked} checked during {writes} writes");
    }

    // A load reads scene 1, a commit changes it, then the load fills: with the guard off the
    // old row stays cached, and the auditor finds it; with the guard on the fill is refused,
    // and the auditor finds nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_auditor_finds_a_stale_fill_only_when_the_guard_is_off(backend) {
        for guard in [true, false] {
            let slow = |b: cached_runtime::ContextBuilder| {
                let b = b.__fill_delay(std::time::Duration::from_millis(300));
                if guard { b } else { b.__disable_stale_fill_protection() }
            };
            let (ctx, _db) = seeded!(backend, slow);
            let reader = {
                let ctx = ctx.clone();
                tokio::spawn(async move { Scene::repo(&ctx).get(1).await.unwrap() })
            };
            common::loads_paused(&ctx, 1).await;
            Scene::repo(&ctx).update(1, SceneUpdate::default().title("Committed")).await.unwrap();
            reader.await.unwrap();
            let report = ctx.audit(1_000).await.unwrap();
            let stale: Vec<&str> = report.mismatches.iter().map(|m| m.key.as_str()).collect();
            if guard {
                assert!(stale.is_empty(), "guard on: {report}");
                assert!(ctx.stats().stale_fills_rejected >= 1);
            } else {
                assert_eq!(stale, ["scene:1"], "guard off: {report}");
            }
        }
    }
    // The background auditor: passes on a schedule, counted in the stats; nothing found on a
    // right cache, the row written behind its back found within a few passes; stopped with
    // its handle.
    #[tokio::test]
    async fn the_background_auditor_counts_what_it_checks_and_finds(backend) {
        let (ctx, db) = seeded!(backend);
        warm(&ctx).await;
        let auditor = ctx.start_auditor(100, std::time::Duration::from_millis(20));
        common::within("a clean pass", std::time::Duration::from_secs(10), || {
            auditor.last_report().is_some_and(|r| r.checked > 0)
        })
        .await;
        let stats = ctx.stats();
        assert!(stats.audit_checked >= 8, "{stats}");
        assert_eq!(stats.audit_mismatches, 0, "{:?}", auditor.last_report());
        assert_eq!(stats.consistency(), 1.0);

        db.set_scene_title(2, "Behind the auditor").await;
        common::within("the stale row found", std::time::Duration::from_secs(10), || {
            ctx.stats().audit_mismatches > 0
        })
        .await;
        let report = auditor.last_report().unwrap();
        assert!(report.mismatches.iter().all(|m| m.key == "scene:2"), "{report}");
        assert!(ctx.stats().consistency() < 1.0);

        drop(auditor);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let checked = ctx.stats().audit_checked;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(ctx.stats().audit_checked, checked, "a dropped auditor stops");
    }
}
