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
/// `GET /scenes/{id}/notes?after=&limit=`, `POST /notes`, `GET /stories/{id}/outline`.
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
        .route("/notes", axum::routing::post(create_note))
        .route("/stories/{id}/outline", get(outline))
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
