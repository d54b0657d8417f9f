use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tasks")]
struct Task {
    #[cache(id, unique)]
    id: i64,
    slug: String,
}

fn main() {}
