use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes", collection = "scene_docs")]
struct Scene {
    #[cache(id)]
    id: i64,
}

fn main() {}
