// An entity too broken to expand (here: no id) is still one error: empty items stand in for
// the generated names, so signatures and calls that name them report nothing more.
use cached_runtime::prelude::*;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene {
    id: i64,
    title: String,
}

#[allow(dead_code)]
fn uses(ctx: &Context, _key: SceneKey, _query: Option<SceneQuery>) -> SceneUpdate {
    let _repo = Scene::repo(ctx);
    SceneUpdate::default()
}

fn main() {}
