//! The story domain: stories are split into parts and chapters; chapters hold scenes; stories
//! have characters and settings. Every `relates_to` edge is a foreign key. Two cached views
//! span entities: a story's outline, and a part's summary (which reads scenes through the
//! part's chapters). Each is dropped by a write to anything its load read.

use cached_runtime::prelude::*;

/// A story.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "stories", ttl = 300)]
pub struct Story {
    #[cache(id)]
    pub id: i64,
    pub title: String,
    #[cache(index)]
    pub status: String,
}

/// A part of a story (Part One, Part Two, ...).
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "parts", ttl = 300, relates_to = "Story")]
pub struct Part {
    #[cache(id)]
    pub id: i64,
    pub story_id: i64,
    pub title: String,
    pub position: i64,
}

/// A chapter, in a part of a story.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(
    table = "chapters",
    ttl = 300,
    relates_to = "Story",
    relates_to = "Part"
)]
pub struct Chapter {
    #[cache(id)]
    pub id: i64,
    pub story_id: i64,
    pub part_id: i64,
    pub title: String,
    pub position: i64,
}

/// A scene: the unit writers edit.
#[derive(CachedEntity, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[cache(
    table = "scenes",
    ttl = 60,
    relates_to = "Chapter",
    relates_to = "Story"
)]
pub struct Scene {
    #[cache(id)]
    pub id: i64,
    pub chapter_id: i64,
    pub story_id: i64,
    /// Where the scene takes place, if decided.
    #[cache(references = "Setting")]
    pub location_id: Option<i64>,
    #[cache(index)]
    pub status: String,
    pub title: String,
    pub word_count: i64,
    /// Moved on by every write: two editors of one scene use `update_if_version`, and the
    /// second to save gets `Error::VersionConflict` instead of overwriting the first.
    #[cache(version)]
    pub version: i64,
}

/// A character of a story.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "characters", relates_to = "Story")]
pub struct Character {
    #[cache(id)]
    pub id: i64,
    pub story_id: i64,
    #[cache(index)]
    pub name: String,
    pub role: String,
    /// Character traits: a list field (`append_traits` / `remove_traits`), a JSON array on
    /// SQL and a BSON array on MongoDB.
    pub traits: Vec<String>,
}

/// A place where scenes happen.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "settings", relates_to = "Story")]
pub struct Setting {
    #[cache(id)]
    pub id: i64,
    pub story_id: i64,
    pub name: String,
}

/// A reviewer's note on a scene. Its id is the database's (`generated`: insert a `NewNote`),
/// and a scene's notes are read a page at a time, oldest first (`page_by_scene_id`).
#[derive(CachedEntity, Clone, Debug, PartialEq, serde::Serialize)]
#[cache(table = "notes", relates_to = "Scene")]
pub struct Note {
    #[cache(id, generated)]
    pub id: i64,
    #[cache(order_by = "id")]
    pub scene_id: i64,
    pub body: String,
}

/// A character appearing in a scene: the join entity between scenes and characters (two
/// `relates_to` edges and a unique pair), so its repository has `attach`, `detach`,
/// `characters_by_scene_id` and `scenes_by_character_id`.
#[derive(CachedEntity, Clone, Debug, PartialEq, serde::Serialize)]
#[cache(
    table = "appearances",
    relates_to = "Scene",
    relates_to = "Character",
    unique(scene_id, character_id)
)]
pub struct Appearance {
    #[cache(id, generated)]
    pub id: i64,
    pub scene_id: i64,
    pub character_id: i64,
}

/// A story's outline: its chapters in order, each with its scenes and word counts.
#[derive(CachedView, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[view(key = "Story", reads(Story, Chapter, Scene), ttl = 300)]
pub struct StoryOutline {
    pub title: String,
    pub status: String,
    pub chapters: Vec<ChapterOutline>,
    pub words: i64,
}

/// One chapter of a [`StoryOutline`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChapterOutline {
    pub id: i64,
    pub title: String,
    /// `(scene id, title, word count)`.
    pub scenes: Vec<(i64, String, i64)>,
}

impl LoadView for StoryOutline {
    async fn load(ctx: &mut ViewCtx<'_, Self>, story_id: i64) -> Result<Option<Self>> {
        let Some(story) = ctx.get::<Story>(story_id).await? else {
            return Ok(None);
        };
        let mut chapters = Vec::new();
        let mut words = 0;
        let mut in_story = ctx.find(ChapterQuery::ByStoryId(story_id)).await?;
        in_story.sort_by_key(|c| c.position);
        for chapter in in_story {
            let scenes: Vec<_> = ctx
                .find(SceneQuery::ByChapterId(chapter.id))
                .await?
                .iter()
                .map(|s| (s.id, s.title.clone(), s.word_count))
                .collect();
            words += scenes.iter().map(|s| s.2).sum::<i64>();
            chapters.push(ChapterOutline {
                id: chapter.id,
                title: chapter.title.clone(),
                scenes,
            });
        }
        Ok(Some(StoryOutline {
            title: story.title.clone(),
            status: story.status.clone(),
            chapters,
            words,
        }))
    }
}

/// A part's totals. Scenes have no `part_id`: the loader reaches them through the part's
/// chapters, and a write to a scene drops the summaries whose loads read it.
#[derive(CachedView, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[view(key = "Part", reads(Part, Chapter, Scene), reads_all(Setting))]
pub struct PartSummary {
    pub title: String,
    pub chapters: usize,
    pub scenes: usize,
    pub words: i64,
    /// How many settings the whole story has (read coarsely: any setting write invalidates).
    pub settings: i64,
}

impl LoadView for PartSummary {
    async fn load(ctx: &mut ViewCtx<'_, Self>, part_id: i64) -> Result<Option<Self>> {
        let Some(part) = ctx.get::<Part>(part_id).await? else {
            return Ok(None);
        };
        let chapters = ctx.find(ChapterQuery::ByPartId(part_id)).await?;
        let (mut scenes, mut words) = (0, 0);
        for chapter in &chapters {
            for scene in ctx.find(SceneQuery::ByChapterId(chapter.id)).await? {
                scenes += 1;
                words += scene.word_count;
            }
        }
        let settings = ctx.count(SettingQuery::ByStoryId(part.story_id)).await?;
        Ok(Some(PartSummary {
            title: part.title.clone(),
            chapters: chapters.len(),
            scenes,
            words,
            settings,
        }))
    }
}

/// The schema as SQLite DDL.
pub const SCHEMA_SQLITE: &str = r#"
CREATE TABLE stories (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE parts (
    id INTEGER PRIMARY KEY, story_id INTEGER NOT NULL REFERENCES stories(id),
    title TEXT NOT NULL, position INTEGER NOT NULL);
CREATE TABLE chapters (
    id INTEGER PRIMARY KEY, story_id INTEGER NOT NULL REFERENCES stories(id),
    part_id INTEGER NOT NULL REFERENCES parts(id), title TEXT NOT NULL, position INTEGER NOT NULL);
CREATE TABLE settings (
    id INTEGER PRIMARY KEY, story_id INTEGER NOT NULL REFERENCES stories(id), name TEXT NOT NULL);
CREATE TABLE scenes (
    id INTEGER PRIMARY KEY, chapter_id INTEGER NOT NULL REFERENCES chapters(id),
    story_id INTEGER NOT NULL REFERENCES stories(id), location_id INTEGER REFERENCES settings(id),
    status TEXT NOT NULL,
    title TEXT NOT NULL CHECK (length(title) > 0 AND length(title) <= 200),
    word_count INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 1);
CREATE INDEX scenes_chapter ON scenes(chapter_id);
CREATE INDEX scenes_status ON scenes(status);
CREATE TABLE characters (
    id INTEGER PRIMARY KEY, story_id INTEGER NOT NULL REFERENCES stories(id),
    name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, traits TEXT NOT NULL DEFAULT '[]');
CREATE TABLE notes (
    id INTEGER PRIMARY KEY, scene_id INTEGER NOT NULL REFERENCES scenes(id), body TEXT NOT NULL);
CREATE TABLE appearances (
    id INTEGER PRIMARY KEY, scene_id INTEGER NOT NULL REFERENCES scenes(id),
    character_id INTEGER NOT NULL REFERENCES characters(id), UNIQUE (scene_id, character_id));
"#;

/// The schema as PostgreSQL DDL.
pub const SCHEMA_POSTGRES: &str = r#"
CREATE TABLE stories (
    id BIGINT PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE parts (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL REFERENCES stories(id),
    title TEXT NOT NULL, position BIGINT NOT NULL);
CREATE TABLE chapters (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL REFERENCES stories(id),
    part_id BIGINT NOT NULL REFERENCES parts(id), title TEXT NOT NULL, position BIGINT NOT NULL);
CREATE TABLE settings (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL REFERENCES stories(id), name TEXT NOT NULL);
CREATE TABLE scenes (
    id BIGINT PRIMARY KEY, chapter_id BIGINT NOT NULL REFERENCES chapters(id),
    story_id BIGINT NOT NULL REFERENCES stories(id), location_id BIGINT REFERENCES settings(id),
    status TEXT NOT NULL,
    title VARCHAR(200) NOT NULL CHECK (length(title) > 0),
    word_count BIGINT NOT NULL DEFAULT 0, version BIGINT NOT NULL DEFAULT 1);
CREATE INDEX scenes_chapter ON scenes(chapter_id);
CREATE INDEX scenes_status ON scenes(status);
CREATE TABLE characters (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL REFERENCES stories(id),
    name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, traits JSONB NOT NULL DEFAULT '[]');
CREATE TABLE notes (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    scene_id BIGINT NOT NULL REFERENCES scenes(id), body TEXT NOT NULL);
CREATE TABLE appearances (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    scene_id BIGINT NOT NULL REFERENCES scenes(id),
    character_id BIGINT NOT NULL REFERENCES characters(id), UNIQUE (scene_id, character_id));
"#;

/// The schema as MySQL / MariaDB DDL (InnoDB, strict mode).
pub const SCHEMA_MYSQL: &str = r#"
CREATE TABLE stories (
    id BIGINT PRIMARY KEY, title VARCHAR(200) NOT NULL, status VARCHAR(50) NOT NULL);
CREATE TABLE parts (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL, title VARCHAR(200) NOT NULL,
    position BIGINT NOT NULL, FOREIGN KEY (story_id) REFERENCES stories(id));
CREATE TABLE chapters (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL, part_id BIGINT NOT NULL,
    title VARCHAR(200) NOT NULL, position BIGINT NOT NULL,
    FOREIGN KEY (story_id) REFERENCES stories(id), FOREIGN KEY (part_id) REFERENCES parts(id));
CREATE TABLE settings (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL, name VARCHAR(200) NOT NULL,
    FOREIGN KEY (story_id) REFERENCES stories(id));
CREATE TABLE scenes (
    id BIGINT PRIMARY KEY, chapter_id BIGINT NOT NULL, story_id BIGINT NOT NULL,
    location_id BIGINT NULL, status VARCHAR(50) NOT NULL,
    title VARCHAR(200) NOT NULL CHECK (CHAR_LENGTH(title) > 0),
    word_count BIGINT NOT NULL DEFAULT 0, version BIGINT NOT NULL DEFAULT 1,
    INDEX scenes_chapter (chapter_id), INDEX scenes_status (status),
    FOREIGN KEY (chapter_id) REFERENCES chapters(id), FOREIGN KEY (story_id) REFERENCES stories(id),
    FOREIGN KEY (location_id) REFERENCES settings(id));
CREATE TABLE characters (
    id BIGINT PRIMARY KEY, story_id BIGINT NOT NULL, name VARCHAR(100) NOT NULL UNIQUE,
    role VARCHAR(100) NOT NULL, traits JSON NOT NULL, FOREIGN KEY (story_id) REFERENCES stories(id));
CREATE TABLE notes (
    id BIGINT AUTO_INCREMENT PRIMARY KEY, scene_id BIGINT NOT NULL, body TEXT NOT NULL,
    FOREIGN KEY (scene_id) REFERENCES scenes(id));
CREATE TABLE appearances (
    id BIGINT AUTO_INCREMENT PRIMARY KEY, scene_id BIGINT NOT NULL, character_id BIGINT NOT NULL,
    UNIQUE (scene_id, character_id), FOREIGN KEY (scene_id) REFERENCES scenes(id),
    FOREIGN KEY (character_id) REFERENCES characters(id));
"#;
