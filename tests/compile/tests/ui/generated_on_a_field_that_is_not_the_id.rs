use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tickets")]
struct Ticket {
    #[cache(id)]
    id: i64,
    #[cache(generated)]
    number: i64,
}

fn main() {}
