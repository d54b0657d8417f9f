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


#[derive(CachedView, Clone)]
#[view(key = "Story", reads(Story, Character), reads_all(Character))]
pub struct Outline {
    pub names: usize,
}

fn main() {}
