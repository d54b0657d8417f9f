//! Cached views: precise invalidation by what each instance read (rows reached directly or
//! through chains of `relates_to` edges), through transactions, and with link-time
//! registration only.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use cached_runtime::{CacheKey, Context, LoadView};
use common::domain::*;
use common::{scene, Backend, TestDb};

/// The studio seed plus: part 2 of story 1 holding chapter 2; story 2 with part 3, chapter 3
/// and scene 4.
async fn world(backend: Backend) -> Option<(Context, TestDb)> {
    let (ctx, db) = common::seeded_with(backend, |b| b).await?;
    let mut tx = ctx.begin().await.unwrap();
    Part::repo(&mut tx)
        .insert(&Part {
            id: 2,
            story_id: 1,
            title: "Part Two".into(),
            position: 2,
        })
        .await
        .unwrap();
    Chapter::repo(&mut tx)
        .update(2, ChapterUpdate::default().part_id(2))
        .await
        .unwrap();
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
    let mut s4 = scene(4, 3, "draft", 400);
    s4.story_id = 2;
    Scene::repo(&mut tx).insert(&s4).await.unwrap();
    tx.commit().await.unwrap();
    ctx.clear();
    Some((ctx, db))
}

fn view_keys() -> Vec<CacheKey> {
    vec![
        StoryOutlineKey::new(1).into(),
        StoryOutlineKey::new(2).into(),
        PartSummaryKey::new(1).into(),
        PartSummaryKey::new(2).into(),
        PartSummaryKey::new(3).into(),
    ]
}

async fn warm(ctx: &Context) {
    for story in [1, 2] {
        StoryOutline::get(ctx, story).await.unwrap().unwrap();
    }
    for part in [1, 2, 3] {
        PartSummary::get(ctx, part).await.unwrap().unwrap();
    }
    for key in view_keys() {
        assert!(ctx.is_cached(key.clone()), "{key} should be warm");
    }
}

struct Case {
    name: &'static str,
    write: fn(&Context) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>,
    dropped: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "non-key update of a scene: its story's outline and its part (via chapter)",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(1, SceneUpdate::default().title("New"))
                    .await
                    .unwrap();
            })
        },
        dropped: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "increment on a scene in chapter 2 (part 2)",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx).increment_word_count(3, 5).await.unwrap();
            })
        },
        dropped: &["story_outline:1", "part_summary:2"],
    },
    Case {
        name: "scene moved between chapters of different parts: both parts",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(1, SceneUpdate::default().chapter_id(2))
                    .await
                    .unwrap();
            })
        },
        dropped: &["story_outline:1", "part_summary:1", "part_summary:2"],
    },
    Case {
        name: "scene moved between stories: both outlines and both parts",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(2, SceneUpdate::default().story_id(2).chapter_id(3))
                    .await
                    .unwrap();
            })
        },
        dropped: &[
            "story_outline:1",
            "story_outline:2",
            "part_summary:1",
            "part_summary:3",
        ],
    },
    Case {
        name: "insert of a scene",
        write: |ctx| {
            Box::pin(async move {
                let mut s = scene(9, 3, "draft", 1);
                s.story_id = 2;
                Scene::repo(ctx).insert(&s).await.unwrap();
            })
        },
        dropped: &["story_outline:2", "part_summary:3"],
    },
    Case {
        name: "delete of a scene",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx).delete(4).await.unwrap();
            })
        },
        dropped: &["story_outline:2", "part_summary:3"],
    },
    Case {
        name: "chapter moved to another part (direct edge)",
        write: |ctx| {
            Box::pin(async move {
                Chapter::repo(ctx)
                    .update(2, ChapterUpdate::default().part_id(1))
                    .await
                    .unwrap();
            })
        },
        dropped: &["story_outline:1", "part_summary:1", "part_summary:2"],
    },
    Case {
        name: "the key entity itself",
        write: |ctx| {
            Box::pin(async move {
                Story::repo(ctx)
                    .update(2, StoryUpdate::default().title("Renamed"))
                    .await
                    .unwrap();
            })
        },
        dropped: &["story_outline:2"],
    },
    Case {
        name: "an entity no view reads",
        write: |ctx| {
            Box::pin(async move {
                Character::repo(ctx)
                    .update(1, CharacterUpdate::default().role("lead"))
                    .await
                    .unwrap();
            })
        },
        dropped: &[],
    },
    Case {
        name: "reads_all: any setting write drops every part summary",
        write: |ctx| {
            Box::pin(async move {
                Setting::repo(ctx)
                    .update(1, SettingUpdate::default().name("Pier"))
                    .await
                    .unwrap();
            })
        },
        dropped: &["part_summary:1", "part_summary:2", "part_summary:3"],
    },
];

mod elsewhere {
    //! A view defined away from everything else, with no registration code anywhere.
    use cached_runtime::prelude::*;

    use super::common::domain::*;

    #[derive(CachedView, Clone, Debug)]
    #[view(key = "Story", reads(Character))]
    pub struct Cast {
        pub names: Vec<String>,
    }

    impl LoadView for Cast {
        async fn load(ctx: &mut ViewCtx<'_, Self>, story: i64) -> Result<Option<Self>> {
            let names = ctx
                .find(CharacterQuery::ByStoryId(story))
                .await?
                .iter()
                .map(|c| c.name.clone())
                .collect();
            Ok(Some(Cast { names }))
        }
    }
}

#[tokio::test]
async fn the_graph_lists_entities_edges_and_views_and_explains_writes() {
    let graph = cached_runtime::graph();
    let entities: Vec<&str> = graph.entities.iter().map(|e| e.type_name).collect();
    assert_eq!(
        entities,
        [
            "Appearance",
            "Chapter",
            "Character",
            "Note",
            "Part",
            "Scene",
            "Setting",
            "Story"
        ]
    );
    let views: Vec<&str> = graph.views.iter().map(|v| v.type_name).collect();
    assert_eq!(
        views,
        ["Cast", "PartSummary", "SceneHeader", "StoryOutline"]
    );
    let mermaid = graph.to_mermaid();
    assert!(
        mermaid.contains("Scene -->|chapter_id| Chapter"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("PartSummary ==>|reads_all| Setting"),
        "{mermaid}"
    );
    let dot = graph.to_dot();
    assert!(
        dot.contains("\"StoryOutline\" -> \"Story\" [style=dashed, label=\"key\"];"),
        "{dot}"
    );

    let old = scene(1, 1, "draft", 10);
    let mut new = old.clone();
    new.chapter_id = 2;
    let explanation = graph.explain(Some(&old), Some(&new));
    let lines: Vec<(&str, &str)> = explanation
        .lines
        .iter()
        .map(|l| (l.key.as_str(), l.reason.as_str()))
        .collect();
    for expected in [
        ("scene?chapter_id=1", "chapter_id changes 1 -> 2"),
        ("scene#count?chapter_id=2", "chapter_id changes 1 -> 2"),
        ("scene#count_by(chapter_id)", "chapter_id changes 1 -> 2"),
        ("scene:1", "the row is rewritten in place"),
        (
            "story_outline:*",
            "each cached StoryOutline instance whose load read one of the keys above",
        ),
        (
            "part_summary:*",
            "each cached PartSummary instance whose load read one of the keys above",
        ),
        (
            "scene_header:*",
            "each cached SceneHeader instance whose load read one of the keys above",
        ),
    ] {
        assert!(
            lines.contains(&expected),
            "missing {expected:?} in\n{explanation}"
        );
    }
    assert_eq!(lines.len(), 9, "{explanation}");
}

/// A view keyed by a child that shows its parents: a scene's header with its chapter's and its
/// story's titles. `Chapter` and `Story` reach the key only against the direction of the
/// `relates_to` edges (Scene relates_to Chapter and Story), which the compile-time check
/// accepts; invalidation follows what each load read.
#[derive(cached_runtime::CachedView, Clone, Debug, PartialEq)]
#[view(key = "Scene", reads(Scene, Chapter, Story))]
pub struct SceneHeader {
    pub scene: String,
    pub chapter: String,
    pub story: String,
}

impl LoadView for SceneHeader {
    async fn load(
        ctx: &mut cached_runtime::ViewCtx<'_, Self>,
        id: i64,
    ) -> cached_runtime::Result<Option<Self>> {
        let Some(scene) = ctx.get::<Scene>(id).await? else {
            return Ok(None);
        };
        let chapter = ctx.get::<Chapter>(scene.chapter_id).await?;
        let story = ctx.get::<Story>(scene.story_id).await?;
        Ok(Some(SceneHeader {
            scene: scene.title.clone(),
            chapter: chapter.map(|c| c.title.clone()).unwrap_or_default(),
            story: story.map(|s| s.title.clone()).unwrap_or_default(),
        }))
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_view_that_reads_its_parents_is_dropped_by_them_only(backend) {
        let Some((ctx, _db)) = world(backend).await else {
            return;
        };
        let header = |ctx: Context| async move { SceneHeader::get(&ctx, 1).await.unwrap().unwrap() };
        let first = header(ctx.clone()).await;
        assert_eq!(first.chapter, "Dusk");
        let key = SceneHeaderKey::new(1);

        // Another chapter and another story: not read by scene 1's header.
        Chapter::repo(&ctx).update(3, ChapterUpdate::default().title("Noon")).await.unwrap();
        Story::repo(&ctx).update(2, StoryUpdate::default().title("Other")).await.unwrap();
        assert!(ctx.is_cached(key.clone()), "writes to rows it did not read leave it");

        // Its own chapter, then its own story.
        Chapter::repo(&ctx).update(1, ChapterUpdate::default().title("Evening")).await.unwrap();
        assert!(!ctx.is_cached(key.clone()), "its chapter changed");
        assert_eq!(header(ctx.clone()).await.chapter, "Evening");
        Story::repo(&ctx).update(1, StoryUpdate::default().title("Renamed")).await.unwrap();
        assert!(!ctx.is_cached(key.clone()), "its story changed");
        assert_eq!(header(ctx.clone()).await.story, "Renamed");
    }

    #[tokio::test]
    async fn a_view_loads_once_then_hits(backend) {
        let Some((ctx, _db)) = world(backend).await else {
            return;
        };
        let outline = StoryOutline::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!(outline.title, "The Long Night");
        assert_eq!(outline.chapters.len(), 2);
        assert_eq!(outline.chapters[0].scenes.len(), 2);
        assert_eq!(outline.words, 600);
        let loads = ctx.stats().loads;
        let again = StoryOutline::get(&ctx, 1).await.unwrap().unwrap();
        assert!(std::sync::Arc::ptr_eq(&outline, &again));
        assert_eq!(ctx.stats().loads, loads, "a view hit is one cache lookup");
        assert_eq!(StoryOutlineKey::new(1).to_string(), "story_outline:1");
        assert!(StoryOutline::get(&ctx, 99).await.unwrap().is_none());
        let part = PartSummary::get(&ctx, 2).await.unwrap().unwrap();
        assert_eq!(
            (part.chapters, part.scenes, part.words, part.settings),
            (1, 1, 300, 2)
        );
    }

    #[tokio::test]
    async fn each_write_drops_exactly_the_view_instances_it_changes(backend) {
        let mut failures = Vec::new();
        for case in CASES {
            let Some((ctx, _db)) = world(backend).await else {
            return;
        };
            warm(&ctx).await;
            (case.write)(&ctx).await;
            let expected: BTreeSet<&str> = case.dropped.iter().copied().collect();
            for key in view_keys() {
                let name = key.to_string();
                let cached = ctx.is_cached(key);
                if cached == expected.contains(name.as_str()) {
                    let what = if cached { "survived" } else { "was dropped" };
                    failures.push(format!("{}: {name} {what}", case.name));
                }
            }
            // Whatever the cache serves equals a fresh load.
            for story in [1, 2] {
                let cached = StoryOutline::get(&ctx, story).await.unwrap();
                ctx.invalidate_key(StoryOutlineKey::new(story));
                let fresh = StoryOutline::get(&ctx, story).await.unwrap();
                assert_eq!(cached, fresh, "{}: outline {story}", case.name);
            }
            for part in [1, 2, 3] {
                let cached = PartSummary::get(&ctx, part).await.unwrap();
                ctx.clear();
                let fresh = PartSummary::get(&ctx, part).await.unwrap();
                assert_eq!(cached, fresh, "{}: part {part}", case.name);
            }
        }
        assert!(
            failures.is_empty(),
            "view precision failures:\n{}",
            failures.join("\n")
        );
    }

    #[tokio::test]
    async fn commit_reports_views_and_rollback_touches_none(backend) {
        let Some((ctx, _db)) = world(backend).await else {
            return;
        };
        warm(&ctx).await;
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .increment_word_count(1, 1)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        for key in view_keys() {
            assert!(ctx.is_cached(key));
        }

        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx)
            .increment_word_count(1, 1)
            .await
            .unwrap();
        Setting::repo(&mut tx)
            .update(2, SettingUpdate::default().name("Cliff"))
            .await
            .unwrap();
        assert!(
            ctx.is_cached(StoryOutlineKey::new(1)),
            "nothing happens before commit"
        );
        let report = tx.commit().await.unwrap();
        let keys = report.key_strings();
        assert!(keys.contains(&"story_outline:1".to_string()), "{report}");
        assert!(keys.contains(&"part_summary:1".to_string()), "{report}");
        assert_eq!(report.entities(), ["PartSummary"]);
        let outline = StoryOutline::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!(outline.words, 601);
    }

    #[tokio::test]
    async fn a_transaction_that_moves_a_chain_and_writes_through_it(backend) {
        let Some((ctx, _db)) = world(backend).await else {
            return;
        };
        warm(&ctx).await;
        // In one transaction: move chapter 1 to part 2, then edit a scene of chapter 1. Both
        // parts read what changed (chapter 1 left one part's query and entered the other's).
        let mut tx = ctx.begin().await.unwrap();
        Chapter::repo(&mut tx)
            .update(1, ChapterUpdate::default().part_id(2))
            .await
            .unwrap();
        Scene::repo(&mut tx)
            .increment_word_count(1, 10)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let part2 = PartSummary::get(&ctx, 2).await.unwrap().unwrap();
        assert_eq!((part2.chapters, part2.scenes, part2.words), (2, 3, 610));
        let part1 = PartSummary::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!((part1.chapters, part1.scenes), (0, 0));
    }

    #[tokio::test]
    async fn views_register_themselves_at_link_time(backend) {
        let Some((ctx, _db)) = world(backend).await else {
            return;
        };
        let cast = elsewhere::Cast::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!(cast.names, ["Mara", "Tom"]);
        Character::repo(&ctx)
            .update(2, CharacterUpdate::default().name("Thomas"))
            .await
            .unwrap();
        assert!(!ctx.is_cached(elsewhere::CastKey::new(1)));
        let cast = elsewhere::Cast::get(&ctx, 1).await.unwrap().unwrap();
        assert_eq!(cast.names, ["Mara", "Thomas"]);
    }

    #[tokio::test]
    async fn raw_writes_invalidate_what_they_declare(backend) {
        use sqlx::AssertSqlSafe;
        let Some((ctx, _db)) = world(backend).await else {
            return;
        };
        warm(&ctx).await;
        Scene::repo(&ctx).find_by_chapter_id(1).await.unwrap();
        Scene::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).get(2).await.unwrap();
        Character::repo(&ctx).get(1).await.unwrap();

        if backend.is_mongo() {
            // No SQL on MongoDB: a raw write is refused with a typed error, and the
            // transaction can no longer commit.
            let mut tx = ctx.begin().await.unwrap();
            let err = tx
                .raw_write("UPDATE scenes SET word_count = 0")
                .touches_all::<Scene>()
                .execute()
                .await
                .unwrap_err();
            assert!(matches!(err, cached_runtime::Error::Unsupported { .. }), "{err}");
            assert!(matches!(
                tx.commit().await,
                Err(cached_runtime::Error::TransactionAborted)
            ));
            assert!(ctx.is_cached(SceneKey(1)));
            return;
        }
        let mut tx = ctx.begin().await.unwrap();
        let table = "scenes";
        // Raw SQL is the backend's own dialect: PostgreSQL numbers its placeholders.
        let param = if backend == Backend::Postgres { "$1" } else { "?" };
        let sql = format!("UPDATE {table} SET word_count = word_count * 2 WHERE id = {param}");
        let n = tx
            .raw_write(AssertSqlSafe(sql))
            .bind(1i64)
            .touches::<Scene>([1])
            .execute()
            .await
            .unwrap();
        assert_eq!(n, 1);
        let report = tx.commit().await.unwrap();
        // The row, every query of Scene, and so every view instance that read a scene query.
        let mut keys = report.key_strings();
        keys.sort();
        assert_eq!(
            keys,
            [
                "part_summary:1",
                "part_summary:2",
                "part_summary:3",
                "scene:1",
                "story_outline:1",
                "story_outline:2"
            ]
        );
        assert_eq!(report.entities(), ["Scene"]);
        assert!(!ctx.is_cached(SceneKey(1)));
        assert!(ctx.is_cached(SceneKey(2)), "untouched rows stay");
        assert!(!ctx.is_cached(cached_runtime::QueryKey::list_key(
            &SceneQuery::ByChapterId(1)
        )));
        assert!(!ctx.is_cached(StoryOutlineKey::new(1)));
        assert!(ctx.is_cached(CharacterKey(1)));
        assert_eq!(
            Scene::repo(&ctx).get(1).await.unwrap().unwrap().word_count,
            200
        );
        assert_eq!(
            StoryOutline::get(&ctx, 1).await.unwrap().unwrap().words,
            700
        );

        let mut tx = ctx.begin().await.unwrap();
        tx.raw_write("DELETE FROM characters WHERE story_id = 2")
            .touches_all::<Character>()
            .execute()
            .await
            .unwrap();
        let report = tx.commit().await.unwrap();
        assert_eq!(report.entities(), ["Character"]);
        assert!(!ctx.is_cached(CharacterKey(1)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_view_cached_while_a_commit_is_under_way_is_dropped_by_it(backend) {
        let Some((ctx, _db)) = world(backend).await else {
            return;
        };
        // A context whose commits pause before the database commit.
        let slow = Context::builder(ctx.store().clone())
            .__commit_delay(std::time::Duration::from_millis(400))
            .build();
        let applies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = applies.clone();
        slow.on_invalidate(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let writer = {
            let slow = slow.clone();
            tokio::spawn(async move {
                let mut tx = slow.begin().await.unwrap();
                Scene::repo(&mut tx).increment_word_count(1, 1000).await.unwrap();
                tx.commit().await.unwrap()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // A reader caches part 1 while the writer is committing (scene 1 not yet +1000).
        let before = PartSummary::get(&slow, 1).await.unwrap().unwrap();
        let report = writer.await.unwrap();
        assert!(
            report.key_strings().contains(&"part_summary:1".to_string()),
            "the writer's commit did not drop part 1: {report} (part 1 had {} words)",
            before.words
        );
        assert_eq!(
            applies.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one committed transaction, one apply"
        );
        let after = PartSummary::get(&slow, 1).await.unwrap().unwrap();
        assert_eq!(after.words, before.words + 1000);
    }
}
