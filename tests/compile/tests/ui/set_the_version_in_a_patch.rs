use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    title: String,
    #[cache(version)]
    version: i64,
}

fn main() {
    // The version is the database's to move on: the patch has no setter for it.
    let _ = SceneUpdate::default().title("x").version(3);
}
