use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tracks")]
struct Track {
    #[cache(id)]
    id: i64,
    #[cache(index, order_by = "postion")]
    album_id: i64,
    position: i64,
}

fn main() {}
