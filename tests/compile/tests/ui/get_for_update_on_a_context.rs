use cached_runtime::{CachedEntity, Context};

#[derive(CachedEntity, Clone)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    title: String,
}

async fn lock(ctx: &Context) {
    // A lock lives as long as its transaction: a context has none.
    let _ = Scene::repo(ctx).get_for_update(1).await;
}

fn main() {
    let _ = lock;
}
