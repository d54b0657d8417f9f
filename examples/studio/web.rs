//! The studio as a web API (axum): a few routes over the cached repositories, whose errors
//! become HTTP responses through `cached_runtime::Error`'s `IntoResponse` (the `axum` feature):
//! 404 for an unknown id, 409 for a stale version or a duplicate, 422 for a value the database
//! refuses, 500 (with a fixed message) for the rest.
//!
//! The `Context` is the router's state: it is `Clone`, and clones share one cache.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cached_runtime::prelude::*;

use crate::domain::*;

/// The routes: `GET/PUT/DELETE /scenes/{id}`, `POST /scenes`, `GET /stories/{id}/outline`.
pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/scenes", axum::routing::post(create_scene))
        .route(
            "/scenes/{id}",
            get(scene).put(edit_scene).delete(delete_scene),
        )
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

async fn scene(State(ctx): State<Context>, Path(id): Path<i64>) -> Result<Json<Arc<Scene>>> {
    let scene = Scene::repo(&ctx).get(id).await?;
    Ok(Json(found("Scene", id, scene)?))
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
