use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id, skip)]
    id: i64,
}

fn main() {}
