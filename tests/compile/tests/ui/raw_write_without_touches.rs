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


async fn reset(ctx: &Context) -> Result<u64> {
    let mut tx = ctx.begin().await?;
    let n = tx
        .raw_write("UPDATE characters SET name = upper(name)")
        .execute()
        .await?;
    tx.commit().await?;
    Ok(n)
}

fn main() {
    let _ = reset;
}
