use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "invites", negative_ttl = "5s")]
struct Invite {
    #[cache(id)]
    id: i64,
}

fn main() {}
