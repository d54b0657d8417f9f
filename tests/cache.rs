//! Cache behaviour: single flight, stale-fill refusal, TTL, the manual API, hooks and stats.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cached_runtime::{CachedEntity, Context, LoadView, QueryKey, Source};
use common::domain::*;
use common::{database, is_database_error, Backend};

/// A reader reads scene 1, then (slowly) fills; a commit lands in between. Returns what a read
/// started after the commit sees, and the context.
async fn slow_reader_overtaken_by_commit(
    backend: Backend,
    protect: bool,
) -> Option<(String, Context)> {
    let (ctx, _db) = common::seeded_with(backend, |b| {
        let b = b.__fill_delay(Duration::from_millis(300));
        if protect {
            b
        } else {
            b.__disable_stale_fill_protection()
        }
    })
    .await?;
    let reader = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            Scene::repo(&ctx)
                .get(1)
                .await
                .unwrap()
                .unwrap()
                .title
                .clone()
        })
    };
    common::loads_paused(&ctx, 1).await; // the reader has read the old row
    let mut tx = ctx.begin().await.unwrap();
    Scene::repo(&mut tx)
        .update(1, SceneUpdate::default().title("New"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        reader.await.unwrap(),
        "Scene 1",
        "the slow reader started before the commit"
    );
    let after = Scene::repo(&ctx)
        .get(1)
        .await
        .unwrap()
        .unwrap()
        .title
        .clone();
    Some((after, ctx))
}

/// An entity named the MongoDB way (`collection`, with a `-`), on every backend.
#[derive(CachedEntity, Clone, Debug)]
#[cache(collection = "short-notes", ttl = 1, name = "short_note")]
struct Note {
    #[cache(id)]
    id: i64,
    body: String,
}

/// An entity with a field that is not persisted.
#[derive(CachedEntity, Clone, Debug)]
#[cache(table = "drafts")]
struct Draft {
    #[cache(id)]
    id: i64,
    body: String,
    /// Scratch state of one process: never stored, never cached.
    #[cache(skip)]
    scratch: String,
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_on_one_key_run_one_load(backend) {
        let (ctx, _db) = seeded!(backend, |b| b.__fill_delay(Duration::from_millis(150)));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let ctx = ctx.clone();
                tokio::spawn(async move { Scene::repo(&ctx).get(1).await.unwrap().unwrap().id })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 1);
        }
        let stats = ctx.stats();
        assert_eq!(stats.loads, 1, "{stats:?}");
        assert_eq!(stats.single_flight_joins, 15, "{stats:?}");
        assert_eq!(stats.misses, 16);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fill_overtaken_by_a_commit_is_refused(backend) {
        let Some((after, ctx)) = slow_reader_overtaken_by_commit(backend, true).await else {
            return;
        };
        assert_eq!(after, "New");
        assert_eq!(ctx.stats().stale_fills_rejected, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_guard_the_same_race_serves_stale_data(backend) {
        let Some((after, ctx)) = slow_reader_overtaken_by_commit(backend, false).await else {
            return;
        };
        assert_eq!(
            after, "Scene 1",
            "proof that the scenario above really races"
        );
        assert_eq!(ctx.stats().stale_fills_rejected, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_after_a_commit_does_not_join_an_older_load(backend) {
        let (ctx, _db) = seeded!(backend, |b| b.__fill_delay(Duration::from_millis(300)));
        let slow = {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                Scene::repo(&ctx)
                    .get(1)
                    .await
                    .unwrap()
                    .unwrap()
                    .title
                    .clone()
            })
        };
        common::loads_paused(&ctx, 1).await;
        Scene::repo(&ctx)
            .update(1, SceneUpdate::default().title("New"))
            .await
            .unwrap();
        ctx.invalidate::<Scene>(1); // make the next read miss while the slow load is in flight
        let fresh = Scene::repo(&ctx).get(1).await.unwrap().unwrap();
        assert_eq!(fresh.title, "New");
        assert_eq!(slow.await.unwrap(), "Scene 1");
        assert_eq!(ctx.stats().single_flight_joins, 0);
    }

    #[tokio::test]
    async fn entries_expire_after_the_entity_ttl(backend) {
        let Some(db) = database(backend, 4).await else {
            return;
        };
        match backend {
            Backend::Mongo => {}
            Backend::MySql => {
                db.execute("CREATE TABLE `short-notes` (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
                    .await
            }
            _ => {
                db.execute(r#"CREATE TABLE "short-notes" (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"#)
                    .await
            }
        }
        let ctx = Context::new(db.store.clone());
        Note::repo(&ctx)
            .insert(&Note {
                id: 1,
                body: "x".into(),
            })
            .await
            .unwrap();
        assert!(ctx.is_cached(NoteKey(1)));
        assert_eq!(Note::meta().ttl, Some(Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(!ctx.is_cached(NoteKey(1)), "expired after its 1 s TTL");
        assert_eq!(Note::repo(&ctx).get(1).await.unwrap().unwrap().body, "x");
    }

    #[tokio::test]
    async fn fields_that_are_not_persisted_are_not_cached_either(backend) {
        let Some(db) = database(backend, 4).await else {
            return;
        };
        if !backend.is_mongo() {
            db.execute("CREATE TABLE drafts (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
                .await;
        }
        let ctx = Context::new(db.store.clone());
        let draft = Draft {
            id: 1,
            body: "kept".into(),
            scratch: "local only".into(),
        };
        let stored = Draft::repo(&ctx).insert(&draft).await.unwrap();
        assert_eq!((stored.body.as_str(), stored.scratch.as_str()), ("kept", ""));
        let cached = Draft::repo(&ctx).get(1).await.unwrap().unwrap();
        assert_eq!(cached.scratch, "", "the cache holds the row as stored");
        let fresh = Context::new(db.store.clone());
        assert_eq!(Draft::repo(&fresh).get(1).await.unwrap().unwrap().scratch, "");
    }

    #[tokio::test]
    async fn manual_invalidation_refresh_preload_and_clear(backend) {
        let (ctx, db) = seeded!(backend);
        assert_eq!(ctx.preload::<Scene>([1, 2, 3, 99]).await.unwrap(), 3);
        for id in [1, 2, 3, 99] {
            assert!(ctx.is_cached(SceneKey(id)));
        }
        let report = ctx.invalidate::<Scene>(2);
        assert_eq!(report.key_strings(), ["scene:2"]);
        assert!(!ctx.is_cached(SceneKey(2)));

        ctx.invalidate_key(SceneKey(3));
        assert!(!ctx.is_cached(SceneKey(3)));

        Scene::repo(&ctx).find_by_status("draft").await.unwrap();
        let report = ctx.invalidate_query(&SceneQuery::ByStatus("draft".into()));
        assert_eq!(
            report.key_strings(),
            [
                "scene?status=draft",
                "scene#count?status=draft",
                "scene#count_by(status)"
            ]
        );
        assert!(!ctx.is_cached(SceneQuery::ByStatus("draft".into()).list_key()));

        // A change made behind the cache's back, then `refresh`.
        db.set_scene_title(1, "Outside").await;
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().title,
            "Scene 1"
        );
        let refreshed = ctx.refresh::<Scene>(1).await.unwrap().unwrap();
        assert_eq!(refreshed.title, "Outside");
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().title,
            "Outside"
        );

        ctx.clear();
        assert!(!ctx.is_cached(SceneKey(1)));
    }

    #[tokio::test]
    async fn invalidating_an_entity_type_drops_all_its_entries_and_only_them(backend) {
        let (ctx, _db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).list().await.unwrap();
        Character::repo(&ctx).get(1).await.unwrap();
        ctx.invalidate_entity::<Scene>();
        assert!(!ctx.is_cached(SceneKey(1)));
        assert!(!ctx.is_cached(SceneQuery::All.list_key()));
        assert!(ctx.is_cached(CharacterKey(1)));
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().id, 1);
        assert!(
            ctx.is_cached(SceneKey(1)),
            "entries filled afterwards are readable"
        );
    }

    #[tokio::test]
    async fn hooks_see_every_applied_invalidation(backend) {
        let (ctx, _db) = seeded!(backend);
        type Seen = Vec<(Source, Vec<String>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let sink = seen.clone();
        ctx.on_invalidate(move |inv| {
            let keys = inv.keys.iter().map(ToString::to_string).collect();
            sink.lock().unwrap().push((inv.source, keys));
        });
        // Two views that read scene 1: the commit's report names them too.
        StoryOutline::get(&ctx, 1).await.unwrap().unwrap();
        PartSummary::get(&ctx, 1).await.unwrap().unwrap();
        Scene::repo(&ctx).increment_word_count(1, 1).await.unwrap();
        ctx.invalidate::<Scene>(2);
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .increment_word_count(3, 1)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                (
                    Source::Commit,
                    vec!["scene:1", "part_summary:1", "story_outline:1"]
                        .into_iter()
                        .map(String::from)
                        .collect()
                ),
                (Source::Manual, vec!["scene:2".to_string()]),
            ]
        );
    }

    #[tokio::test]
    async fn stats_count_hits_misses_fills_and_invalidations(backend) {
        let (ctx, _db) = seeded!(backend);
        let seeded = ctx.stats().invalidations["Scene"];
        let mut scenes = Scene::repo(&ctx);
        scenes.get(1).await.unwrap();
        scenes.get(1).await.unwrap();
        scenes.find_by_chapter_id(1).await.unwrap();
        scenes
            .update(1, SceneUpdate::default().status("final"))
            .await
            .unwrap();
        let stats = ctx.stats();
        assert_eq!((stats.hits, stats.misses, stats.loads), (1, 2, 2));
        assert_eq!(stats.fills, 4, "row 1, then the query and its rows 1 and 2");
        assert_eq!(
            stats.invalidations["Scene"] - seeded,
            6,
            "status draft/final, their counts, the status groups, scene:1"
        );
        let table = stats.to_string();
        assert!(
            table.contains("hits") && table.contains("invalidations: Scene"),
            "{table}"
        );
    }

    #[tokio::test]
    async fn a_closed_database_gives_typed_errors_and_keeps_the_cache_consistent(backend) {
        let (ctx, db) = seeded!(backend);
        Scene::repo(&ctx).get(1).await.unwrap();
        db.close().await;
        // Cached rows are still served; everything else reports the database error.
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().id, 1);
        let err = Scene::repo(&ctx).get(2).await.unwrap_err();
        assert!(is_database_error(&err), "{err}");
        let err = Scene::repo(&ctx)
            .update(1, SceneUpdate::default().title("x"))
            .await
            .unwrap_err();
        assert!(is_database_error(&err), "{err}");
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().title,
            "Scene 1"
        );
        assert!(!ctx.is_cached(SceneKey(2)));
    }
}

/// TTLs read the context's own clock: a `ManualClock` moves only when the test advances it,
/// so expiry is checked to the second without sleeping, for rows and views alike.
#[tokio::test]
async fn a_manual_clock_expires_rows_and_views_exactly_at_their_ttl() {
    let clock = cached_runtime::ManualClock::new();
    let (ctx, _db) = common::seeded_with(Backend::Sqlite, |b| b.clock(clock.clone()))
        .await
        .expect("SQLite always runs");
    Scene::repo(&ctx).get(1).await.unwrap();
    StoryOutline::get(&ctx, 1).await.unwrap();
    assert_eq!(Scene::meta().ttl, Some(Duration::from_secs(60)));

    clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(100)).await; // no thread moves this clock
    assert!(ctx.is_cached(SceneKey(1)), "59 s into a 60 s TTL");
    assert!(
        ctx.is_cached(StoryOutlineKey::new(1)),
        "59 s into a 300 s TTL"
    );

    clock.advance(Duration::from_secs(2));
    assert!(!ctx.is_cached(SceneKey(1)), "61 s into a 60 s TTL");
    assert!(
        ctx.is_cached(StoryOutlineKey::new(1)),
        "61 s into a 300 s TTL"
    );
    let misses = ctx.stats().misses;
    Scene::repo(&ctx).get(1).await.unwrap();
    assert_eq!(
        ctx.stats().misses,
        misses + 1,
        "an expired row is read again"
    );
    assert!(ctx.is_cached(SceneKey(1)), "and cached for another 60 s");

    clock.advance(Duration::from_secs(240));
    assert!(
        !ctx.is_cached(StoryOutlineKey::new(1)),
        "301 s into a 300 s TTL"
    );
}
