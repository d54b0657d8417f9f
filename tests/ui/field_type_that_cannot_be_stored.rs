use cached_runtime::CachedEntity;

#[derive(Clone, Debug, sqlx::Type)]
#[sqlx(type_name = "TEXT")]
enum Mood {
    Calm,
    Tense,
}

#[derive(CachedEntity, Clone, sqlx::FromRow)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    mood: Mood,
}

fn main() {}
