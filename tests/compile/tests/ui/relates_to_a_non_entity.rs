use cached_runtime::CachedEntity;

#[derive(Clone)]
struct Chapter {
    id: i64,
}

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes", relates_to = "Chapter")]
struct Scene {
    #[cache(id)]
    id: i64,
    chapter_id: i64,
}

fn main() {}
