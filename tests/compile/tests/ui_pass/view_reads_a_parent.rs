//! A view keyed by a child may read its parent precisely: a post page with its author's name
//! (`Post relates_to User`), the most common view there is.

use cached_runtime::prelude::*;

#[derive(CachedEntity, Clone)]
#[cache(table = "users")]
pub struct User {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

#[derive(CachedEntity, Clone)]
#[cache(table = "posts", relates_to = "User")]
pub struct Post {
    #[cache(id)]
    pub id: i64,
    pub user_id: i64,
    pub title: String,
}

#[derive(CachedView, Clone, serde::Serialize, serde::Deserialize)]
#[view(key = "Post", reads(Post, User))]
pub struct PostPage {
    pub title: String,
    pub author: String,
}

impl LoadView for PostPage {
    async fn load(ctx: &mut ViewCtx<'_, Self>, id: i64) -> Result<Option<Self>> {
        let Some(post) = ctx.get::<Post>(id).await? else {
            return Ok(None);
        };
        let author = ctx.get::<User>(post.user_id).await?;
        Ok(Some(PostPage {
            title: post.title.clone(),
            author: author.map(|u| u.name.clone()).unwrap_or_default(),
        }))
    }
}

fn main() {}
