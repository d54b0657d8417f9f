use cached_runtime::CachedEntity;

#[derive(Clone, Debug, sqlx::Type, serde::Deserialize)]
#[sqlx(type_name = "TEXT")]
enum Mood {
    Calm,
    Tense,
}

#[derive(CachedEntity, Clone, sqlx::FromRow, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    mood: Mood,
}

fn main() {}
