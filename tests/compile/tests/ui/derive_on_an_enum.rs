use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "statuses")]
enum Status {
    Draft,
    Final,
}

fn main() {}
