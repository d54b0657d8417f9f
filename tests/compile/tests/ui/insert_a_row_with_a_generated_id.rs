//! With a generated id, `insert` takes the row without its id (`NewTicket`), not a `Ticket`.
use cached_runtime::{CachedEntity, Context};

#[derive(CachedEntity, Clone)]
#[cache(table = "tickets")]
struct Ticket {
    #[cache(id, generated)]
    id: i64,
    title: String,
}

async fn file(ctx: &Context) {
    let row = Ticket { id: 7, title: "fan".into() };
    let _ = Ticket::repo(ctx).insert(&row).await;
}

fn main() {}
