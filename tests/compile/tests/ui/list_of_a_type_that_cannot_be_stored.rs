use cached_runtime::CachedEntity;

// A list is stored when its element type is (`ToValue` + `FromValue`).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
enum Mood {
    Calm,
}

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "scenes")]
struct Scene {
    #[cache(id)]
    id: i64,
    moods: Vec<Mood>,
}

fn main() {}
