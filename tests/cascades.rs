//! Database-side effects are part of the graph: a delete through the repository that the
//! database cascades (`ON DELETE CASCADE`, two levels deep) or turns into `SET NULL` drops the
//! child rows, their queries and the views that read them, in the same commit. The cascades are
//! read from the live catalog; `check_schema` lists them and refuses an undeclared trigger.
//!
//! The negative control ignores the catalog's cascades (test-only) and must serve stale data.

#[macro_use]
mod common;

use cached_runtime::prelude::*;
use cached_runtime::ContextBuilder;
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "authors")]
pub struct Author {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "posts", relates_to = "Author")]
pub struct Post {
    #[cache(id)]
    pub id: i64,
    pub author_id: i64,
    pub title: String,
}

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "comments", relates_to = "Post")]
pub struct Comment {
    #[cache(id)]
    pub id: i64,
    pub post_id: i64,
    pub body: String,
}

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "drafts")]
pub struct Draft {
    #[cache(id)]
    pub id: i64,
    #[cache(references = "Author")]
    pub author_id: Option<i64>,
    pub body: String,
}

/// A reply in a thread; threads are not cached (no entity), and cascade from their author.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "replies")]
pub struct Reply {
    #[cache(id)]
    pub id: i64,
    #[cache(index)]
    pub thread_id: i64,
    pub body: String,
}

/// Every comment in the database, counted: reaches no author through a foreign key.
#[derive(CachedView, Clone, Debug, PartialEq)]
#[view(key = "Author", reads(Author, Post, Comment))]
pub struct AuthorPage {
    pub posts: Vec<String>,
    pub comments_everywhere: i64,
}

impl LoadView for AuthorPage {
    async fn load(ctx: &mut ViewCtx<'_, Self>, id: i64) -> Result<Option<Self>> {
        if ctx.get::<Author>(id).await?.is_none() {
            return Ok(None);
        }
        let posts = ctx.find(PostQuery::ByAuthorId(id)).await?;
        Ok(Some(AuthorPage {
            posts: posts.iter().map(|p| p.title.clone()).collect(),
            comments_everywhere: ctx.count(CommentQuery::All).await?,
        }))
    }
}

const TABLES: &str = "
CREATE TABLE authors (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL);
CREATE TABLE posts (id BIGINT PRIMARY KEY, author_id BIGINT NOT NULL, title VARCHAR(100) NOT NULL,
  FOREIGN KEY (author_id) REFERENCES authors(id) ON DELETE CASCADE);
CREATE TABLE comments (id BIGINT PRIMARY KEY, post_id BIGINT NOT NULL, body VARCHAR(100) NOT NULL,
  FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE);
CREATE TABLE drafts (id BIGINT PRIMARY KEY, author_id BIGINT, body VARCHAR(100) NOT NULL,
  FOREIGN KEY (author_id) REFERENCES authors(id) ON DELETE SET NULL);
CREATE TABLE threads (id BIGINT PRIMARY KEY, author_id BIGINT NOT NULL,
  FOREIGN KEY (author_id) REFERENCES authors(id) ON DELETE CASCADE);
CREATE TABLE replies (id BIGINT PRIMARY KEY, thread_id BIGINT NOT NULL, body VARCHAR(100) NOT NULL,
  FOREIGN KEY (thread_id) REFERENCES threads(id) ON DELETE CASCADE);";

/// Two authors with posts, comments and drafts, on a fresh SQL database.
async fn setup(
    backend: Backend,
    configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> Option<(Context, common::TestDb)> {
    let db = common::database(backend, 4).await?;
    db.execute(TABLES).await;
    let ctx = configure(Context::builder(db.store.clone())).build();
    let mut tx = ctx.begin().await.unwrap();
    for id in [1, 2] {
        Author::repo(&mut tx)
            .insert(&Author {
                id,
                name: format!("author {id}"),
            })
            .await
            .unwrap();
        for p in 0..2 {
            let post = 10 * id + p;
            Post::repo(&mut tx)
                .insert(&Post {
                    id: post,
                    author_id: id,
                    title: format!("post {post}"),
                })
                .await
                .unwrap();
            Comment::repo(&mut tx)
                .insert(&Comment {
                    id: post * 10,
                    post_id: post,
                    body: "nice".into(),
                })
                .await
                .unwrap();
        }
        Draft::repo(&mut tx)
            .insert(&Draft {
                id,
                author_id: Some(id),
                body: "wip".into(),
            })
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    Some((ctx, db))
}

/// Reads everything through `ctx`, and returns what differs from a cold read of the database.
async fn stale(ctx: &Context, cold: &Context) -> Vec<String> {
    cold.clear();
    let mut out = Vec::new();
    // `$c` names the context in `$read`: bound to the cached one, then to the cold one.
    macro_rules! same {
        ($what:expr, $c:ident => $read:expr) => {{
            let cached = {
                let $c = ctx;
                $read
            };
            let stored = {
                let $c = cold;
                $read
            };
            if cached != stored {
                out.push(format!("{}: cached {cached:?}, stored {stored:?}", $what));
            }
        }};
    }
    for id in [10, 11, 20] {
        same!(format!("post {id}"), c => Post::repo(c).get(id).await.unwrap());
    }
    for id in [100, 110, 200] {
        same!(format!("comment {id}"), c => Comment::repo(c).get(id).await.unwrap());
    }
    for id in [1, 2] {
        same!(format!("draft {id}"), c => Draft::repo(c).get(id).await.unwrap());
        same!(format!("posts of {id}"), c => Post::repo(c).find_by_author_id(id).await.unwrap());
        same!(format!("page of {id}"), c => AuthorPage::get(c, id).await.unwrap());
    }
    same!("comments of post 10", c => Comment::repo(c).find_by_post_id(10).await.unwrap());
    same!("comment count", c => Comment::repo(c).count().await.unwrap());
    same!("drafts of nobody", c => Draft::repo(c).find_by_author_id(None).await.unwrap());
    same!("drafts of 1", c => Draft::repo(c).count_by_author_id(Some(1)).await.unwrap());
    out
}

/// Warms everything, deletes author 1 through the repository, compares.
async fn delete_author(ctx: &Context, cold: &Context) -> (Vec<String>, CommitReport) {
    assert!(stale(ctx, cold).await.is_empty(), "stale before the delete");
    let mut tx = ctx.begin().await.unwrap();
    Author::repo(&mut tx).delete(1).await.unwrap();
    let report = tx.commit().await.unwrap();
    (stale(ctx, cold).await, report)
}

backend_tests! {
    #[tokio::test]
    async fn a_cascading_delete_drops_the_children_their_queries_and_views(backend) {
        if backend.is_mongo() {
            return; // no foreign keys
        }
        let Some((ctx, db)) = setup(backend, |b| b).await else {
            return;
        };
        let cold = Context::new(db.store.clone());
        let (stale, report) = delete_author(&ctx, &cold).await;
        assert!(stale.is_empty(), "stale after the delete:\n{}", stale.join("\n"));
        for key in ["post:10", "post:11", "comment:100", "comment:110", "draft:1", "author_page:2"] {
            assert!(report.key_strings().contains(&key.to_string()), "{key} not in {report}");
        }
        assert!(!report.key_strings().contains(&"post:20".to_string()), "{report}");
    }

    #[tokio::test]
    async fn a_cascade_drops_exactly_what_its_rows_were_in(backend) {
        if backend.is_mongo() {
            return; // no foreign keys
        }
        let Some((ctx, db)) = setup(backend, |b| b).await else {
            return;
        };
        // Author 2's queries: no deleted or nulled row was in them, so they stay cached (and
        // fresh); author 1's, and those its rows enter (drafts of nobody), are dropped.
        let kept = [
            PostQuery::ByAuthorId(2).list_key(),
            PostQuery::ByAuthorId(2).count_key(),
            CommentQuery::ByPostId(20).list_key(),
            DraftQuery::ByAuthorId(Some(2)).list_key(),
            DraftQuery::ByAuthorId(Some(2)).count_key(),
        ];
        let dropped = [
            PostQuery::ByAuthorId(1).list_key(),
            CommentQuery::ByPostId(10).list_key(),
            DraftQuery::ByAuthorId(Some(1)).count_key(),
            DraftQuery::ByAuthorId(None).list_key(),
            CommentQuery::All.count_key(),
        ];
        // Warm each of them, delete author 1 (two posts and their comments cascade, its draft
        // is set to NULL), and look.
        Post::repo(&ctx).find_by_author_id(1).await.unwrap();
        Post::repo(&ctx).find_by_author_id(2).await.unwrap();
        Post::repo(&ctx).count_by_author_id(2).await.unwrap();
        Comment::repo(&ctx).find_by_post_id(10).await.unwrap();
        Comment::repo(&ctx).find_by_post_id(20).await.unwrap();
        Comment::repo(&ctx).count().await.unwrap();
        Draft::repo(&ctx).find_by_author_id(Some(2)).await.unwrap();
        Draft::repo(&ctx).count_by_author_id(Some(1)).await.unwrap();
        Draft::repo(&ctx).count_by_author_id(Some(2)).await.unwrap();
        Draft::repo(&ctx).find_by_author_id(None).await.unwrap();
        Author::repo(&ctx).delete(1).await.unwrap();
        for key in &kept {
            assert!(ctx.is_cached(key.clone()), "{key} was dropped");
        }
        for key in &dropped {
            assert!(!ctx.is_cached(key.clone()), "{key} stayed");
        }
        let cold = Context::new(db.store.clone());
        let stale = stale(&ctx, &cold).await;
        assert!(stale.is_empty(), "stale:\n{}", stale.join("\n"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_inserted_while_its_parent_is_deleted_is_dropped_with_it(backend) {
        if backend.is_mongo() {
            return; // no foreign keys
        }
        let Some((ctx, db)) = setup(backend, |b| b).await else {
            return;
        };
        let cold = Context::new(db.store.clone());
        assert!(stale(&ctx, &cold).await.is_empty(), "stale before the race");
        // Another transaction inserts comment 999 under post 10 and holds its commit while
        // post 10 is deleted: the delete must wait for it, and then remove (and drop) 999.
        let mut inserter = ctx.begin().await.unwrap();
        let child = Comment { id: 999, post_id: 10, body: "late".into() };
        Comment::repo(&mut inserter).insert(&child).await.unwrap();
        let deleter = {
            let ctx = ctx.clone();
            tokio::spawn(async move { Post::repo(&ctx).delete(10).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // The insert commits: 999 is written through to the cache.
        inserter.commit().await.unwrap();
        let deleted = tokio::time::timeout(std::time::Duration::from_secs(30), deleter)
            .await
            .expect("the delete ends once the insert committed")
            .unwrap()
            .unwrap();
        assert_eq!(deleted.id, 10);
        let cached = Comment::repo(&ctx).get(999).await.unwrap();
        let stored = Comment::repo(&cold).get(999).await.unwrap();
        assert_eq!(cached, stored, "comment 999: cached vs stored");
        assert!(stored.is_none(), "the cascade removed comment 999");
        let stale = stale(&ctx, &cold).await;
        assert!(stale.is_empty(), "stale after the race:\n{}", stale.join("\n"));
    }

    #[tokio::test]
    async fn a_cascade_through_a_table_that_is_not_an_entity_is_followed(backend) {
        if backend.is_mongo() {
            return; // no foreign keys
        }
        let Some((ctx, db)) = setup(backend, |b| b).await else {
            return;
        };
        // authors -> threads (not cached) -> replies.
        db.execute("INSERT INTO threads (id, author_id) VALUES (1, 1), (2, 2)").await;
        let replies = [(1, 1, "first"), (2, 1, "second"), (3, 2, "other author")];
        for (id, thread_id, body) in replies {
            Reply::repo(&ctx).insert(&Reply { id, thread_id, body: body.into() }).await.unwrap();
        }
        let report = ctx.check_schema().await.unwrap();
        let lines = report.cascades.join("\n");
        assert!(lines.contains("replies.thread_id -> threads.id: ON DELETE Cascade"), "{report}");
        let cold = Context::new(db.store.clone());
        let read = |c: &Context| {
            let c = c.clone();
            async move {
                let mut out = Vec::new();
                for id in 1..=3 {
                    out.push(format!("{:?}", Reply::repo(&c).get(id).await.unwrap()));
                }
                for thread in 1..=2 {
                    let n = Reply::repo(&c).count_by_thread_id(thread).await.unwrap();
                    let rows = Reply::repo(&c).find_by_thread_id(thread).await.unwrap();
                    out.push(format!("thread {thread}: {} #{n}", rows.len()));
                }
                out
            }
        };
        assert_eq!(read(&ctx).await, read(&cold).await, "before the delete");
        Author::repo(&ctx).delete(1).await.unwrap();
        cold.clear();
        let stored = read(&cold).await;
        assert_eq!(read(&ctx).await, stored, "after deleting author 1");
        assert!(stored[0] == "None" && stored[2] != "None", "{stored:?}");
    }

    #[tokio::test]
    async fn check_schema_lists_the_cascades_and_refuses_an_undeclared_trigger(backend) {
        if backend.is_mongo() {
            return;
        }
        let Some((ctx, db)) = setup(backend, |b| b).await else {
            return;
        };
        let report = ctx.check_schema().await.unwrap();
        let lines = report.cascades.join("\n");
        assert!(lines.contains("posts.author_id -> authors.id: ON DELETE Cascade"), "{report}");
        assert!(lines.contains("drafts.author_id -> authors.id: ON DELETE SetNull"), "{report}");
        let trigger = match backend {
            Backend::Postgres => "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS \
                $$ BEGIN NEW.title := upper(NEW.title); RETURN NEW; END $$; \
                CREATE TRIGGER shout BEFORE INSERT ON posts FOR EACH ROW EXECUTE FUNCTION touch();",
            Backend::MySql => "CREATE TRIGGER shout BEFORE INSERT ON posts FOR EACH ROW \
                SET NEW.title = UPPER(NEW.title)",
            _ => "CREATE TRIGGER shout AFTER INSERT ON posts BEGIN \
                UPDATE posts SET title = upper(title) WHERE id = NEW.id; END;",
        };
        db.execute(trigger).await;
        let err = ctx.check_schema().await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("trigger `shout` on `posts`"), "{text}");
        assert!(matches!(err, Error::Schema { ref problems } if problems.len() == 1), "{text}");
        let declared = Context::builder(db.store.clone()).harmless_trigger("shout").build();
        declared.check_schema().await.unwrap();
    }
}

#[tokio::test]
async fn check_schema_names_a_missing_table_and_column() {
    let db = common::database(Backend::Sqlite, 2).await.unwrap();
    db.execute("CREATE TABLE authors (id INTEGER PRIMARY KEY)")
        .await;
    let err = Context::new(db.store.clone())
        .check_schema()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Author: column `authors.name` does not exist"),
        "{text}"
    );
    assert!(
        text.contains("Post: table `posts` does not exist"),
        "{text}"
    );
}

/// Negative control: a context that ignores the catalog's cascades serves deleted children.
#[tokio::test]
async fn ignoring_the_cascades_leaves_deleted_children_cached() {
    let mut found = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        let Some((ctx, db)) = setup(backend, |b| b.__ignore_cascades()).await else {
            continue;
        };
        let cold = Context::new(db.store.clone());
        let (stale, _) = delete_author(&ctx, &cold).await;
        eprintln!(
            "{backend:?}: {} stale answer(s) ignoring cascades",
            stale.len()
        );
        found.push((backend, stale.len()));
    }
    assert!(found.iter().all(|(_, n)| *n > 0), "{found:?}");
}
