use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "chapters")]
struct Chapter {
    #[cache(id)]
    id: i64,
}

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes", relates_to = "Chapter", relates_to = "Chapter")]
struct Scene {
    #[cache(id)]
    id: i64,
    chapter_id: i64,
}

fn main() {}
