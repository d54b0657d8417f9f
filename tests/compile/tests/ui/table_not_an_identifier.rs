use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes; DROP TABLE users")]
struct Scene {
    #[cache(id)]
    id: i64,
}

fn main() {}
