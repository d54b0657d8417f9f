//! What the derive's checks must accept, next to what `tests/ui/` shows them rejecting: each
//! shape here compiles (an ordinary test, so trybuild's cases stay compile-fail only and it
//! only type-checks its dependencies) and behaves, on an in-memory SQLite database.
//!
//! A view keyed by a child may read its parent precisely: a post page with its author's name
//! (`Post relates_to User`), the most common view there is.

use std::sync::Arc;

use cached_runtime::prelude::*;
use sqlx::sqlite::SqlitePoolOptions;

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

#[derive(CachedView, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
    title TEXT NOT NULL);
INSERT INTO users VALUES (1, 'Ann'), (2, 'Bo');
INSERT INTO posts VALUES (10, 1, 'Hello'), (20, 2, 'Again');";

fn page(title: &str, author: &str) -> Option<Arc<PostPage>> {
    Some(Arc::new(PostPage {
        title: title.into(),
        author: author.into(),
    }))
}

/// Renaming an author drops the pages of that author's posts, and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_keyed_by_a_child_follows_its_parent_and_only_its_own() {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("schema");
    let ctx = Context::new(pool);

    assert_eq!(PostPage::get(&ctx, 10).await.unwrap(), page("Hello", "Ann"));
    assert_eq!(PostPage::get(&ctx, 20).await.unwrap(), page("Again", "Bo"));

    User::repo(&ctx)
        .update(1, UserUpdate::default().name("Ann Lee".to_string()))
        .await
        .expect("rename");

    assert!(
        !ctx.is_cached(PostPageKey::new(10)),
        "Ann's post page read her row"
    );
    assert!(
        ctx.is_cached(PostPageKey::new(20)),
        "Bo's post page read nothing of Ann's"
    );
    assert_eq!(
        PostPage::get(&ctx, 10).await.unwrap(),
        page("Hello", "Ann Lee")
    );
    assert_eq!(PostPage::get(&ctx, 20).await.unwrap(), page("Again", "Bo"));
}
