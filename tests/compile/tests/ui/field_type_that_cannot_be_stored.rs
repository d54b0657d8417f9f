use cached_runtime::CachedEntity;

// The application's own type: cached-runtime stores what implements `ToValue` + `FromValue`.
#[derive(Clone, Debug, serde::Deserialize)]
enum Mood {
    Calm,
    Tense,
}

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    mood: Mood,
}

fn main() {}
