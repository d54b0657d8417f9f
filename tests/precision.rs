//! Invalidation precision, table-driven: for each kind of write, exactly which cached entries
//! are dropped and which survive, and that everything still cached matches the database.

use crate::common;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use cached_runtime::{CacheKey, Context, LoadView, QueryKey};
use common::domain::*;
use common::scene;

/// The entries every case starts with.
fn warm_keys() -> Vec<CacheKey> {
    let mut keys: Vec<CacheKey> = [1, 2, 3, 99].map(|id| SceneKey(id).into()).to_vec();
    for q in [
        SceneQuery::All,
        SceneQuery::ByChapterId(1),
        SceneQuery::ByChapterId(2),
        SceneQuery::ByStoryId(1),
        SceneQuery::ByStatus("draft".into()),
        SceneQuery::ByStatus("final".into()),
        SceneQuery::ByLocationId(None),
    ] {
        keys.push(q.list_key());
        keys.push(q.count_key());
    }
    keys.push(StoryOutlineKey::new(1).into());
    keys.push(PartSummaryKey::new(1).into());
    keys
}

async fn warm(ctx: &Context) {
    let mut r = Scene::repo(ctx);
    for id in [1, 2, 3, 99] {
        r.get(id).await.unwrap();
    }
    r.list().await.unwrap();
    r.count().await.unwrap();
    for c in [1, 2] {
        r.find_by_chapter_id(c).await.unwrap();
        r.count_by_chapter_id(c).await.unwrap();
    }
    r.find_by_story_id(1).await.unwrap();
    r.count_by_story_id(1).await.unwrap();
    for s in ["draft", "final"] {
        r.find_by_status(s).await.unwrap();
        r.count_by_status(s).await.unwrap();
    }
    r.find_by_location_id(None).await.unwrap();
    r.count_by_location_id(None).await.unwrap();
    // Both views read every scene of story 1 (part 1 holds both chapters).
    StoryOutline::get(ctx, 1).await.unwrap().unwrap();
    PartSummary::get(ctx, 1).await.unwrap().unwrap();
    for key in warm_keys() {
        assert!(ctx.is_cached(key.clone()), "{key} should be warm");
    }
}

type Write = for<'a> fn(&'a Context) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

struct Case {
    name: &'static str,
    write: Write,
    /// Query keys the write must drop (each with its count twin, and a single field's query
    /// with that field's grouped counts).
    dropped_queries: &'static [&'static str],
    /// Row keys the commit rewrites (new value or negative entry).
    rewritten_rows: &'static [&'static str],
    /// View instances the write reaches: the cached ones whose loads read what it changed.
    views: &'static [&'static str],
}

fn with_counts(queries: &[&str]) -> BTreeSet<String> {
    queries
        .iter()
        .flat_map(|q| {
            let (name, pred) = q.split_once('?').unwrap();
            let group = match pred.split_once('=') {
                Some((field, _)) if !pred.contains('&') => {
                    Some(format!("{name}#count_by({field})"))
                }
                _ => None,
            };
            [q.to_string(), format!("{name}#count?{pred}")]
                .into_iter()
                .chain(group)
        })
        .collect()
}

const CASES: &[Case] = &[
    Case {
        name: "insert",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .insert(&scene(4, 2, "draft", 1))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &[
            "scene?all",
            "scene?chapter_id=2",
            "scene?story_id=1",
            "scene?status=draft",
            "scene?location_id=null",
        ],
        rewritten_rows: &["scene:4"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "update of a non-indexed field",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(1, SceneUpdate::default().title("New title"))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &[],
        rewritten_rows: &["scene:1"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "update of an indexed field",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(1, SceneUpdate::default().status("final"))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &["scene?status=draft", "scene?status=final"],
        rewritten_rows: &["scene:1"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "update of an indexed field to its current value",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(1, SceneUpdate::default().status("draft"))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &[],
        rewritten_rows: &["scene:1"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "update of a foreign key",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(1, SceneUpdate::default().chapter_id(2))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &["scene?chapter_id=1", "scene?chapter_id=2"],
        rewritten_rows: &["scene:1"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "update of a nullable foreign key",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .update(3, SceneUpdate::default().location_id(Some(2)))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &["scene?location_id=null", "scene?location_id=2"],
        rewritten_rows: &["scene:3"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "delete",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx).delete(2).await.unwrap();
            })
        },
        dropped_queries: &[
            "scene?all",
            "scene?chapter_id=1",
            "scene?story_id=1",
            "scene?status=final",
            "scene?location_id=null",
        ],
        rewritten_rows: &["scene:2"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "increment",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx).increment_word_count(3, 7).await.unwrap();
            })
        },
        dropped_queries: &[],
        rewritten_rows: &["scene:3"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "batch insert",
        write: |ctx| {
            Box::pin(async move {
                Scene::repo(ctx)
                    .insert_many(&[scene(4, 1, "final", 1), scene(5, 1, "review", 1)])
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &[
            "scene?all",
            "scene?chapter_id=1",
            "scene?story_id=1",
            "scene?status=final",
            "scene?status=review",
            "scene?location_id=null",
        ],
        rewritten_rows: &["scene:4", "scene:5"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "batch delete",
        write: |ctx| {
            Box::pin(async move {
                assert_eq!(Scene::repo(ctx).delete_many(&[2, 3]).await.unwrap(), 2);
            })
        },
        dropped_queries: &[
            "scene?all",
            "scene?chapter_id=1",
            "scene?chapter_id=2",
            "scene?story_id=1",
            "scene?status=final",
            "scene?status=draft",
            "scene?location_id=null",
        ],
        rewritten_rows: &["scene:2", "scene:3"],
        views: &["story_outline:1", "part_summary:1"],
    },
    Case {
        name: "write to a parent row that a view read",
        write: |ctx| {
            Box::pin(async move {
                Story::repo(ctx)
                    .update(1, StoryUpdate::default().title("Renamed"))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &[],
        rewritten_rows: &["story:1"],
        // The outline read story 1; the part summary read the part, its chapters and scenes.
        views: &["story_outline:1"],
    },
    Case {
        name: "write to a parent row no view read",
        write: |ctx| {
            Box::pin(async move {
                Story::repo(ctx)
                    .update(2, StoryUpdate::default().title("Renamed"))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &[],
        rewritten_rows: &["story:2"],
        views: &[],
    },
    Case {
        name: "write to another entity",
        write: |ctx| {
            Box::pin(async move {
                Character::repo(ctx)
                    .update(1, CharacterUpdate::default().role("lead"))
                    .await
                    .unwrap();
            })
        },
        dropped_queries: &[],
        rewritten_rows: &["character:1"],
        views: &[],
    },
];

backend_tests! {
#[tokio::test]
async fn each_write_drops_exactly_the_entries_it_changes(backend) {
    let mut failures = Vec::new();
    for case in CASES {
        let (ctx, db) = seeded!(backend);
        warm(&ctx).await;
        let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = reports.clone();
        ctx.on_invalidate(move |inv| {
            sink.lock()
                .unwrap()
                .extend(inv.keys.iter().map(ToString::to_string));
        });

        (case.write)(&ctx).await;

        let reported: BTreeSet<String> = reports.lock().unwrap().iter().cloned().collect();
        let expected_queries = with_counts(case.dropped_queries);
        let mut expected = expected_queries.clone();
        expected.extend(case.rewritten_rows.iter().map(|r| r.to_string()));
        expected.extend(case.views.iter().map(|r| r.to_string()));
        if reported != expected {
            failures.push(format!(
                "{}: invalidated {:?}, expected {:?}",
                case.name, reported, expected
            ));
        }
        for key in warm_keys() {
            let name = key.to_string();
            let cached = ctx.is_cached(key);
            let dropped = expected_queries.contains(&name) || case.views.contains(&name.as_str());
            if dropped && cached {
                failures.push(format!(
                    "{}: {name} survived but should be dropped",
                    case.name
                ));
            }
            if !expected.contains(&name) && !cached {
                failures.push(format!(
                    "{}: {name} was dropped but should survive",
                    case.name
                ));
            }
        }
        // Whatever is cached now agrees with the database.
        for id in [1, 2, 3, 4, 5, 99] {
            db.assert_scene_fresh(&ctx, id, case.name).await;
        }
        let mut direct = ctx.begin().await.unwrap();
        for status in ["draft", "final", "review"] {
            let fresh: Vec<i64> = Scene::repo(&mut direct)
                .find_by_status(status)
                .await
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect();
            let cached: Vec<i64> = Scene::repo(&ctx)
                .find_by_status(status)
                .await
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect();
            assert_eq!(cached, fresh, "{}: status={status}", case.name);
        }
        for chapter in [1, 2] {
            let fresh = Scene::repo(&mut direct)
                .count_by_chapter_id(chapter)
                .await
                .unwrap();
            let cached = Scene::repo(&ctx)
                .count_by_chapter_id(chapter)
                .await
                .unwrap();
            assert_eq!(cached, fresh, "{}: count chapter={chapter}", case.name);
        }
        direct.rollback().await.unwrap();
    }
    assert!(
        failures.is_empty(),
        "precision failures:\n{}",
        failures.join("\n")
    );
    println!(
        "invalidation precision: {} write kinds checked",
        CASES.len()
    );
}
}
