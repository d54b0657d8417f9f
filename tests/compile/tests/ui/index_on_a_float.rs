use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    #[cache(index)]
    rating: f64,
}

fn main() {}
