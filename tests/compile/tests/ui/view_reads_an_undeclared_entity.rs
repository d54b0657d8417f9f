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
#[view(key = "Story")]
pub struct Outline {
    pub names: usize,
}

impl LoadView for Outline {
    async fn load(ctx: &mut ViewCtx<'_, Self>, story: i64) -> Result<Option<Self>> {
        let _ = ctx.get::<Story>(story).await?;
        let names = ctx.list::<Character>().await?.len();
        Ok(Some(Outline { names }))
    }
}

fn main() {}
