//! The story domain: stories are split into parts and chapters; chapters hold scenes; stories
//! have characters and settings. Every `relates_to` edge is a foreign key.

use cached_runtime::CachedEntity;

/// A story.
#[derive(CachedEntity, Clone, Debug, PartialEq, sqlx::FromRow)]
#[cache(table = "stories", ttl = 300)]
pub struct Story {
    #[cache(id)]
    pub id: i64,
    pub title: String,
    #[cache(index)]
    pub status: String,
}

/// A part of a story (Part One, Part Two, ...).
#[derive(CachedEntity, Clone, Debug, PartialEq, sqlx::FromRow)]
#[cache(table = "parts", ttl = 300, relates_to = "Story")]
pub struct Part {
    #[cache(id)]
    pub id: i64,
    pub story_id: i64,
    pub title: String,
    pub position: i64,
}

/// A chapter, in a part of a story.
#[derive(CachedEntity, Clone, Debug, PartialEq, sqlx::FromRow)]
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
#[derive(CachedEntity, Clone, Debug, PartialEq, sqlx::FromRow)]
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
}

/// A character of a story.
#[derive(CachedEntity, Clone, Debug, PartialEq, sqlx::FromRow)]
#[cache(table = "characters", relates_to = "Story")]
pub struct Character {
    #[cache(id)]
    pub id: i64,
    pub story_id: i64,
    #[cache(index)]
    pub name: String,
    pub role: String,
}

/// A place where scenes happen.
#[derive(CachedEntity, Clone, Debug, PartialEq, sqlx::FromRow)]
#[cache(table = "settings", relates_to = "Story")]
pub struct Setting {
    #[cache(id)]
    pub id: i64,
    pub story_id: i64,
    pub name: String,
}

/// The schema, as SQLite DDL.
pub const SCHEMA: &str = r#"
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
    status TEXT NOT NULL, title TEXT NOT NULL CHECK (length(title) > 0),
    word_count INTEGER NOT NULL DEFAULT 0);
CREATE INDEX scenes_chapter ON scenes(chapter_id);
CREATE INDEX scenes_status ON scenes(status);
CREATE TABLE characters (
    id INTEGER PRIMARY KEY, story_id INTEGER NOT NULL REFERENCES stories(id),
    name TEXT NOT NULL UNIQUE, role TEXT NOT NULL);
"#;
