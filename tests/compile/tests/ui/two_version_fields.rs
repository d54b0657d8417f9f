use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    #[cache(version)]
    version: i64,
    #[cache(version)]
    revision: i64,
}

fn main() {}
