use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tasks", unique(slug))]
struct Task {
    #[cache(id)]
    id: i64,
    slug: String,
}

fn main() {}
