//! A web handler's future must be `Send` (axum, `tokio::spawn`): the documented transaction
//! form, `ctx.transaction(async move |tx| { ... })`, compiles in one and runs. (With a plain
//! `async |tx|` capturing `title` by reference, rustc reports "implementation of `Send` is not
//! general enough" here.)

use crate::common;

use cached_runtime::{Context, Result};
use common::domain::*;
use common::Backend;

/// The shape of an axum handler: state in, owned values in, a `Send` future out; the body
/// clones what it writes, since a retry runs it again.
async fn rename(ctx: Context, id: i64, title: String) -> Result<String> {
    let (scene, _report) = ctx
        .transaction(async move |tx| {
            let scene = Scene::repo(&mut *tx)
                .update(id, SceneUpdate::default().title(title.clone()))
                .await?;
            Ok(scene.title.clone())
        })
        .await?;
    Ok(scene)
}

#[tokio::test]
async fn a_transaction_runs_in_a_spawned_handler() {
    let (ctx, _db) = common::seeded_with(Backend::Sqlite, |b| b)
        .await
        .expect("SQLite always runs");
    let handler = tokio::spawn(rename(ctx.clone(), 1, "Renamed".into()));
    assert_eq!(handler.await.unwrap().unwrap(), "Renamed");
    assert_eq!(
        Scene::repo(&ctx).get(1).await.unwrap().unwrap().title,
        "Renamed"
    );
}
