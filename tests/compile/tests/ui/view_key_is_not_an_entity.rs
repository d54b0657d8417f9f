use cached_runtime::prelude::*;

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "stories")]
pub struct Story {
    #[cache(id)]
    pub id: i64,
}

#[derive(CachedEntity, Clone, serde::Deserialize)]
#[cache(table = "characters")]
pub struct Character {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}


pub struct Draft {
    pub id: i64,
}

#[derive(CachedView, Clone)]
#[view(key = "Draft", reads(Story))]
pub struct Outline {
    pub names: usize,
}

fn main() {}
