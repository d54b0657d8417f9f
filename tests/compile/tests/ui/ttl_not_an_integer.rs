use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes", ttl = "60s")]
struct Scene {
    #[cache(id)]
    id: i64,
}

fn main() {}
