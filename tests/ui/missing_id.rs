use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, sqlx::FromRow)]
#[cache(table = "scenes")]
struct Scene {
    id: i64,
    title: String,
}

fn main() {}
