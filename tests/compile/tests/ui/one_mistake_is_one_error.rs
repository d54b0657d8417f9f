// A typo in one attribute is one error: the rest of the entity still expands, so the code that
// uses its repository, patch, key and queries reports nothing more.
use cached_runtime::prelude::*;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes", tll = 60)]
struct Scene {
    #[cache(id)]
    id: i64,
    #[cache(index)]
    status: String,
    title: String,
}

#[allow(dead_code)]
async fn uses(ctx: &Context) -> cached_runtime::Result<()> {
    let _ = Scene::repo(ctx).get(1).await?;
    let _ = Scene::repo(ctx).find_by_status("draft").await?;
    let patch = SceneUpdate::default().title("Dawn");
    Scene::repo(ctx).update(1, patch).await?;
    ctx.invalidate_key(SceneKey(1));
    ctx.invalidate_query(&SceneQuery::ByStatus("draft".into()));
    Ok(())
}

fn main() {}
