use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tags")]
struct Tag {
    #[cache(id, generated)]
    slug: String,
    title: String,
}

fn main() {}
