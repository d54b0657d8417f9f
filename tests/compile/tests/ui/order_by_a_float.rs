use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tracks", order_by = "rating")]
struct Track {
    #[cache(id)]
    id: i64,
    rating: f64,
}

fn main() {}
