//! The studio as a web API (axum): a few routes over the cached repositories, whose errors
//! become HTTP responses through `cached_runtime::Error`'s `IntoResponse` (the `axum` feature):
//! 404 for an unknown id, 409 for a stale version or a duplicate, 422 for a value the database
//! refuses, 400 for a page cursor that is not one, 500 (with a fixed message) for the rest.
//! Request bodies are the generated types themselves (`SceneUpdate`, `NewNote`: the `serde`
//! feature), and pages travel as `{"rows": [...], "next": "<cursor>"}`, the next page asked
//! with `?after=<cursor>`.
//!
//! The `Context` is the router's state: it is `Clone`, and clones share one cache.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cached_runtime::prelude::*;
use cached_runtime::{Cursor, Page, Paged};

use crate::domain::*;

/// The routes: `GET/PUT/PATCH/DELETE /scenes/{id}`, `POST /scenes`, `GET /scenes/counts`,
/// `GET /scenes/{id}/notes?after=&limit=`, `POST /notes`, `GET /stories/{id}/outline`, and a
/// scene's characters through the join entity: `GET /scenes/{id}/characters`,
/// `PUT/DELETE /scenes/{id}/characters/{character}`.
pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/scenes", axum::routing::post(create_scene))
        .route("/scenes/counts", get(scene_counts))
        .route(
            "/scenes/{id}",
            get(scene)
                .put(edit_scene)
                .patch(patch_scene)
                .delete(delete_scene),
        )
        .route("/scenes/{id}/notes", get(notes))
        .route("/scenes/{id}/characters", get(scene_characters))
        .route(
            "/scenes/{id}/characters/{character}",
            axum::routing::put(attach_character).delete(detach_character),
        )
        .route("/notes", axum::routing::post(create_note))
        .route("/stories/{id}/outline", get(outline))
        // Each write's response names the cache keys it invalidated (`Cache-Invalidate`).
        .layer(cached_runtime::headers::InvalidationHeadersLayer::new())
        .with_state(ctx)
}

/// `None` as a 404, the same way a write of an unknown id fails.
fn found<T>(entity: &'static str, id: i64, row: Option<T>) -> Result<T> {
    row.ok_or(Error::NotFound {
        entity,
        id: id.to_string(),
    })
}

/// `require`: an unknown id is a 404.
async fn scene(State(ctx): State<Context>, Path(id): Path<i64>) -> Result<Json<Arc<Scene>>> {
    Ok(Json(Scene::repo(&ctx).require(id).await?))
}

/// The number of scenes in each status (`{"draft": 2, "final": 1}`): one cached entry, dropped
/// only when a scene changes status, is added or is deleted.
async fn scene_counts(
    State(ctx): State<Context>,
) -> Result<Json<std::collections::BTreeMap<String, i64>>> {
    let groups = Scene::repo(&ctx).count_grouped_by_status().await?;
    Ok(Json(groups.into_iter().collect()))
}

/// A partial edit, the generated patch as the body: the fields present change (`null`
/// clears `location_id`), the others stay; an unknown field (the version too) is refused.
async fn patch_scene(
    State(ctx): State<Context>,
    Path(id): Path<i64>,
    Json(patch): Json<SceneUpdate>,
) -> Result<Json<Arc<Scene>>> {
    Ok(Json(Scene::repo(&ctx).update(id, patch).await?))
}

/// `?after=<cursor>&limit=<n>`.
#[derive(serde::Deserialize)]
pub struct PageParams {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

/// A scene's notes, a page at a time, oldest first. A cursor that is not one, or another
/// scene's, is a 400.
async fn notes(
    State(ctx): State<Context>,
    Path(id): Path<i64>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paged<Note>>> {
    let after = params.after.map(|a| a.parse::<Cursor>()).transpose()?;
    let page = Page::new(after, params.limit.unwrap_or(20).min(100));
    Ok(Json(Note::repo(&ctx).page_by_scene_id(id, page).await?))
}

/// The names of the characters appearing in a scene, through the join entity: one cached
/// entry, dropped when one is attached or detached or one of them is renamed.
async fn scene_characters(
    State(ctx): State<Context>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<String>>> {
    let characters = Appearance::repo(&ctx).characters_by_scene_id(id).await?;
    Ok(Json(characters.iter().map(|c| c.name.clone()).collect()))
}

/// Idempotent: the appearance there is, or a new one (an unknown scene or character is the
/// database's foreign-key refusal, a 422).
async fn attach_character(
    State(ctx): State<Context>,
    Path((scene_id, character_id)): Path<(i64, i64)>,
) -> Result<Json<Arc<Appearance>>> {
    let row = NewAppearance {
        scene_id,
        character_id,
    };
    Ok(Json(Appearance::repo(&ctx).attach(&row).await?))
}

/// 204, or 404 if the character did not appear in the scene.
async fn detach_character(
    State(ctx): State<Context>,
    Path((scene_id, character_id)): Path<(i64, i64)>,
) -> Result<StatusCode> {
    match Appearance::repo(&ctx)
        .detach(scene_id, character_id)
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Error::NotFound {
            entity: "Appearance",
            id: format!("{scene_id}/{character_id}"),
        }),
    }
}

/// A note, the generated insert shape as the body; the database makes its id.
async fn create_note(
    State(ctx): State<Context>,
    Json(note): Json<NewNote>,
) -> Result<(StatusCode, Json<Arc<Note>>)> {
    let stored = Note::repo(&ctx).insert(&note).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// An edit from a client that read the scene at `version`.
#[derive(serde::Deserialize)]
pub struct SceneEdit {
    pub title: String,
    pub version: i64,
}

/// Saves only if nobody saved since the client read the scene: a stale version is a 409.
async fn edit_scene(
    State(ctx): State<Context>,
    Path(id): Path<i64>,
    Json(edit): Json<SceneEdit>,
) -> Result<Json<Arc<Scene>>> {
    let patch = SceneUpdate::default().title(edit.title);
    let saved = Scene::repo(&ctx)
        .update_if_version(id, edit.version, patch)
        .await?;
    Ok(Json(saved))
}

async fn create_scene(
    State(ctx): State<Context>,
    Json(scene): Json<Scene>,
) -> Result<(StatusCode, Json<Arc<Scene>>)> {
    let stored = Scene::repo(&ctx).insert(&scene).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

async fn delete_scene(State(ctx): State<Context>, Path(id): Path<i64>) -> Result<StatusCode> {
    Scene::repo(&ctx).delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn outline(
    State(ctx): State<Context>,
    Path(id): Path<i64>,
) -> Result<Json<Arc<StoryOutline>>> {
    let outline = StoryOutline::get(&ctx, id).await?;
    Ok(Json(found("Story", id, outline)?))
}
