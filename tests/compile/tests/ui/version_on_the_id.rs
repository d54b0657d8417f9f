use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id, version)]
    id: i64,
    title: String,
}

fn main() {}
