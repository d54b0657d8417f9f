//! Shared test fixtures: the studio domain on a fresh file-backed SQLite database.
#![allow(dead_code)]

#[path = "../../examples/studio/domain.rs"]
pub mod domain;

use std::time::Duration;

use cached_runtime::{Context, ContextBuilder};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

use domain::*;

/// A database in a temporary directory (deleted when dropped).
pub struct TestDb {
    pub pool: SqlitePool,
    _dir: tempfile::TempDir,
}

/// A fresh file-backed SQLite database (WAL, foreign keys on) with the studio schema.
pub async fn database() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("test.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .expect("open sqlite");
    sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("schema");
    TestDb { pool, _dir: dir }
}

/// A context with default settings on a fresh seeded database.
pub async fn seeded() -> (Context, TestDb) {
    seeded_with(|b| b).await
}

/// A context configured by `configure`, on a fresh seeded database.
pub async fn seeded_with(
    configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> (Context, TestDb) {
    let db = database().await;
    let ctx = configure(Context::builder(db.pool.clone())).build();
    seed(&ctx).await;
    ctx.clear();
    (ctx, db)
}

pub fn scene(id: i64, chapter_id: i64, status: &str, words: i64) -> Scene {
    Scene {
        id,
        chapter_id,
        story_id: 1,
        location_id: None,
        status: status.into(),
        title: format!("Scene {id}"),
        word_count: words,
    }
}

/// Story 1 with part 1, chapters 1 and 2, settings 1 and 2, characters 1 and 2, and scenes
/// 1 (chapter 1, draft), 2 (chapter 1, final), 3 (chapter 2, draft).
pub async fn seed(ctx: &Context) {
    let mut tx = ctx.begin().await.expect("begin");
    Story::repo(&mut tx)
        .insert(&Story {
            id: 1,
            title: "The Long Night".into(),
            status: "draft".into(),
        })
        .await
        .expect("story");
    Story::repo(&mut tx)
        .insert(&Story {
            id: 2,
            title: "Morning".into(),
            status: "published".into(),
        })
        .await
        .expect("story 2");
    Part::repo(&mut tx)
        .insert(&Part {
            id: 1,
            story_id: 1,
            title: "Part One".into(),
            position: 1,
        })
        .await
        .expect("part");
    Chapter::repo(&mut tx)
        .insert_many(&[
            Chapter {
                id: 1,
                story_id: 1,
                part_id: 1,
                title: "Dusk".into(),
                position: 1,
            },
            Chapter {
                id: 2,
                story_id: 1,
                part_id: 1,
                title: "Midnight".into(),
                position: 2,
            },
        ])
        .await
        .expect("chapters");
    Setting::repo(&mut tx)
        .insert_many(&[
            Setting {
                id: 1,
                story_id: 1,
                name: "Harbour".into(),
            },
            Setting {
                id: 2,
                story_id: 1,
                name: "Lighthouse".into(),
            },
        ])
        .await
        .expect("settings");
    Character::repo(&mut tx)
        .insert_many(&[
            Character {
                id: 1,
                story_id: 1,
                name: "Mara".into(),
                role: "keeper".into(),
            },
            Character {
                id: 2,
                story_id: 1,
                name: "Tom".into(),
                role: "sailor".into(),
            },
        ])
        .await
        .expect("characters");
    Scene::repo(&mut tx)
        .insert_many(&[
            scene(1, 1, "draft", 100),
            scene(2, 1, "final", 200),
            scene(3, 2, "draft", 300),
        ])
        .await
        .expect("scenes");
    tx.commit().await.expect("commit seed");
}

/// Reads a scene straight from the database, bypassing the cache.
pub async fn db_scene(pool: &SqlitePool, id: i64) -> Option<Scene> {
    sqlx::query_as::<_, Scene>(
        "SELECT id, chapter_id, story_id, location_id, status, title, word_count FROM scenes WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .expect("direct read")
}
