use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    title: String,
}

async fn bypass(pool: sqlx::SqlitePool) {
    // Writes must go through a cache context or transaction, never straight to the pool.
    let _ = Scene::repo(&pool)
        .insert(&Scene { id: 1, title: "x".into() })
        .await;
}

fn main() {
    let _ = bypass;
}
