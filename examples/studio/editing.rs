//! Concurrent editing, the two classic ways: optimistic (a version field and
//! `update_if_version`) and pessimistic (`get_for_update` in a transaction).

use cached_runtime::prelude::*;

use crate::domain::*;

/// Two editors open scene 1 (both read the same version, from the cache) and save. The first
/// save wins; the second gets `Error::VersionConflict`, reads the fresh row and saves again on
/// top of it instead of overwriting the first editor's work.
pub async fn two_editors(ctx: &Context) -> Result<()> {
    let alice = Scene::repo(ctx).get(1).await?.expect("scene 1");
    let bob = Scene::repo(ctx).get(1).await?.expect("scene 1");
    println!(
        "   Alice and Bob both opened scene 1 at version {}",
        alice.version
    );

    let saved = Scene::repo(ctx)
        .update_if_version(
            1,
            alice.version,
            SceneUpdate::default().title("Mara climbs, slowly"),
        )
        .await?;
    println!(
        "   Alice saves: version {} -> {}",
        alice.version, saved.version
    );

    let bob_title = format!("{} (Bob's cut)", bob.title);
    match Scene::repo(ctx)
        .update_if_version(1, bob.version, SceneUpdate::default().title(bob_title))
        .await
    {
        Err(Error::VersionConflict {
            expected, found, ..
        }) => {
            println!(
                "   Bob saves: conflict (he read version {expected}, the database has {found})"
            );
            // Bob reads the row again (the cache already holds Alice's commit) and reapplies
            // his edit on top of hers.
            let fresh = Scene::repo(ctx).get(1).await?.expect("scene 1");
            let merged = format!("{} (Bob's cut)", fresh.title);
            let saved = Scene::repo(ctx)
                .update_if_version(1, fresh.version, SceneUpdate::default().title(merged))
                .await?;
            println!(
                "   Bob retries on version {}: {:?}, version {}",
                fresh.version, saved.title, saved.version
            );
        }
        Ok(_) => unreachable!("Bob read a version that Alice's save replaced"),
        Err(other) => return Err(other),
    }
    Ok(())
}

/// Locks a chapter (`SELECT ... FOR UPDATE`) so that no one else edits it while its scenes are
/// retitled in order; the lock ends with the transaction.
pub async fn renumber_chapter(ctx: &Context, chapter_id: i64) -> Result<()> {
    let ((title, renamed), report) = ctx
        .transaction(async move |tx| {
            let chapter = Chapter::repo(&mut *tx)
                .get_for_update(chapter_id)
                .await?
                .ok_or(Error::NotFound {
                    entity: "Chapter",
                    id: chapter_id.to_string(),
                })?;
            let scenes = Scene::repo(&mut *tx).find_by_chapter_id(chapter_id).await?;
            for (n, scene) in scenes.iter().enumerate() {
                let base = scene
                    .title
                    .split_once(". ")
                    .map_or(&*scene.title, |(_, t)| t);
                let title = format!("{}. {base}", n + 1);
                Scene::repo(&mut *tx)
                    .update(scene.id, SceneUpdate::default().title(title))
                    .await?;
            }
            Ok((chapter.title.clone(), scenes.len()))
        })
        .await?;
    println!(
        "   locked chapter {chapter_id} ({title:?}) and renumbered its {renamed} scenes; the commit \
         rewrote {} keys",
        report.keys().len()
    );
    Ok(())
}
