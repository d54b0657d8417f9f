use cached_runtime::CachedEntity;

#[derive(Clone, Debug, PartialEq, sqlx::Type, serde::Deserialize)]
enum Mood {
    Calm,
}

#[derive(CachedEntity, Clone, sqlx::FromRow, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    #[sqlx(json)]
    moods: Vec<Mood>,
}

fn main() {}
