use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    #[cache(index, version)]
    version: i64,
}

fn main() {}
