use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tracks", order_by = "released desc")]
struct Track {
    #[cache(id)]
    id: i64,
    released: Option<i64>,
}

fn main() {}
