use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    title: String,
    #[cache(version)]
    revision: String,
}

fn main() {}
