use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "quotes", stale_while_revalidate = 30)]
struct Quote {
    #[cache(id)]
    id: i64,
    price: i64,
}

fn main() {}
