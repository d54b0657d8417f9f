use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene(i64, String);

fn main() {}
