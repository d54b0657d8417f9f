mod domain;
use cached_runtime::prelude::*;
use domain::*;

#[tokio::main]
async fn main() -> Result<()> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect("sqlite::memory:")
        .await
        .map_err(Error::Database)?;
    sqlx::raw_sql(SCHEMA)
        .execute(&pool)
        .await
        .map_err(Error::Database)?;
    let ctx = Context::new(pool);
    Story::repo(&ctx)
        .insert(&Story {
            id: 1,
            title: "t".into(),
            status: "draft".into(),
        })
        .await?;
    let s = Story::repo(&ctx).get(1).await?;
    println!("{s:?}");
    Ok(())
}
