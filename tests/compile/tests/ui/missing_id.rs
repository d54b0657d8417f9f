use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    id: i64,
    title: String,
}

fn main() {}
