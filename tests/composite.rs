//! Composite and unique lookups: `#[cache(index(project_id, status))]` generates
//! `find_by_project_id_and_status` / `count_by_...`, cached per combination as
//! `task?project_id=1&status=open`; `#[cache(unique)]` and `#[cache(unique(a, b))]` generate
//! `get_by_...`. A write drops exactly the combinations its row left or entered (and every
//! spelling of them a case-insensitive collation calls equal), and after every write each
//! lookup the cache answers equals a cold read of the database.

use crate::common;

use cached_runtime::prelude::*;
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "tasks", index(project_id, status), unique(project_id, number))]
pub struct Task {
    #[cache(id)]
    pub id: i64,
    pub project_id: i64,
    pub number: i64,
    pub status: String,
    #[cache(unique)]
    pub slug: String,
    pub title: String,
}

// `status` compares case-insensitively on the SQL backends (MongoDB compares bytes).
const SQLITE: &str = "CREATE TABLE tasks (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL,
  number INTEGER NOT NULL, status TEXT COLLATE NOCASE NOT NULL, slug TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL, UNIQUE (project_id, number))";
const POSTGRES: &str = "CREATE TABLE tasks (id BIGINT PRIMARY KEY, project_id BIGINT NOT NULL,
  number BIGINT NOT NULL, status TEXT COLLATE public.ci NOT NULL, slug TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL, UNIQUE (project_id, number))";
const MYSQL: &str = "CREATE TABLE tasks (id BIGINT PRIMARY KEY, project_id BIGINT NOT NULL,
  number BIGINT NOT NULL, status VARCHAR(20) NOT NULL, slug VARCHAR(20) NOT NULL UNIQUE,
  title VARCHAR(50) NOT NULL, UNIQUE (project_id, number))";

fn task(id: i64, project_id: i64, number: i64, status: &str, slug: &str) -> Task {
    Task {
        id,
        project_id,
        number,
        status: status.into(),
        slug: slug.into(),
        title: format!("task {id}"),
    }
}

async fn setup(backend: Backend) -> Option<(Context, common::TestDb)> {
    let (ctx, db) = common::database_with(backend, 4, [SQLITE, POSTGRES, MYSQL], |b| b).await?;
    let rows = [
        task(1, 1, 1, "open", "a"),
        task(2, 1, 2, "done", "b"),
        task(3, 2, 3, "open", "c"),
    ];
    Task::repo(&ctx).insert_many(&rows).await.unwrap();
    Some((ctx, db))
}

/// Every lookup the tests probe, answered by `ctx`: ids of each combination (under two
/// spellings of `open`), their counts, and the unique lookups.
async fn answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    let ids = |rows: Vec<std::sync::Arc<Task>>| rows.iter().map(|t| t.id).collect::<Vec<_>>();
    for project in [1, 2] {
        for status in ["open", "OPEN", "done"] {
            let rows = Task::repo(ctx)
                .find_by_project_id_and_status(project, status)
                .await;
            let count = Task::repo(ctx)
                .count_by_project_id_and_status(project, status)
                .await;
            out.push(format!(
                "({project}, {status}): {:?} #{}",
                ids(rows.unwrap()),
                count.unwrap()
            ));
        }
        for number in 1..=4 {
            let row = Task::repo(ctx)
                .get_by_project_id_and_number(project, number)
                .await;
            out.push(format!(
                "({project}, #{number}): {:?}",
                row.unwrap().map(|t| t.id)
            ));
        }
    }
    for slug in ["a", "b", "c", "d", "a2"] {
        let row = Task::repo(ctx).get_by_slug(slug).await.unwrap();
        out.push(format!("slug {slug}: {:?}", row.map(|t| t.id)));
    }
    out
}

/// The answers the cache gives must be the database's (a cold context on the same store).
async fn assert_fresh(ctx: &Context, db: &common::TestDb, step: &str) {
    let cold = Context::new(db.store.clone());
    assert_eq!(answers(ctx).await, answers(&cold).await, "after {step}");
}

fn list(project: i64, status: &str) -> CacheKey {
    TaskQuery::ByProjectIdAndStatus(project, status.into()).list_key()
}

fn count(project: i64, status: &str) -> CacheKey {
    TaskQuery::ByProjectIdAndStatus(project, status.into()).count_key()
}

backend_tests! {
    #[tokio::test]
    async fn a_write_drops_only_the_combinations_its_row_left_or_entered(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        assert_eq!(list(1, "open").to_string(), "task?project_id=1&status=open");
        assert_fresh(&ctx, &db, "seeding").await;

        // Task 1 moves from (1, open) to (1, done): those two combinations (lists and
        // counts) are dropped, every other one stays cached.
        Task::repo(&ctx).update(1, TaskUpdate::default().status("done")).await.unwrap();
        for (project, status) in [(1, "open"), (1, "done")] {
            assert!(!ctx.is_cached(list(project, status)), "({project}, {status})");
            assert!(!ctx.is_cached(count(project, status)), "({project}, {status}) count");
        }
        assert!(ctx.is_cached(list(2, "open")) && ctx.is_cached(count(2, "open")));
        assert!(ctx.is_cached(TaskQuery::BySlug("a".into()).list_key()), "a unique lookup of an unchanged field");
        assert_fresh(&ctx, &db, "a status change").await;

        // A field outside every lookup drops none of them.
        Task::repo(&ctx).update(3, TaskUpdate::default().title("renamed")).await.unwrap();
        assert!(ctx.is_cached(list(2, "open")) && ctx.is_cached(list(1, "done")));

        // Task 3 changes project: it leaves (2, open) and (2, #3) and enters (1, open), (1, #3).
        Task::repo(&ctx).update(3, TaskUpdate::default().project_id(1)).await.unwrap();
        assert!(!ctx.is_cached(list(2, "open")) && !ctx.is_cached(list(1, "open")));
        assert!(ctx.is_cached(list(1, "done")), "a combination task 3 never belonged to");
        assert_fresh(&ctx, &db, "a project change").await;

        // Insert and delete, in a transaction.
        let mut tx = ctx.begin().await.unwrap();
        Task::repo(&mut tx).insert(&task(4, 2, 4, "open", "d")).await.unwrap();
        Task::repo(&mut tx).delete(2).await.unwrap();
        tx.commit().await.unwrap();
        assert_fresh(&ctx, &db, "an insert and a delete").await;

        // A bulk update by a composite: every open task of project 1 is closed; the
        // combinations it left and entered are dropped, the others stay.
        answers(&ctx).await;
        let closed = Task::repo(&ctx)
            .update_many_by_project_id_and_status(1, "open", TaskUpdate::default().status("done"))
            .await
            .unwrap();
        // Task 3 is project 1's only open task by now (task 1 was closed above).
        assert_eq!(closed.iter().map(|t| t.id).collect::<Vec<_>>(), [3]);
        assert!(closed.iter().all(|t| t.status == "done"));
        assert!(!ctx.is_cached(list(1, "open")) && !ctx.is_cached(list(1, "done")));
        assert!(ctx.is_cached(list(2, "open")), "a combination no updated row was in");
        assert_fresh(&ctx, &db, "an update_many by a composite").await;
    }

    #[tokio::test]
    async fn get_by_a_unique_field_follows_its_changes(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        assert_eq!(Task::repo(&ctx).get_by_slug("a").await.unwrap().map(|t| t.id), Some(1));
        assert!(Task::repo(&ctx).get_by_slug("a2").await.unwrap().is_none(), "cached absent");

        Task::repo(&ctx).update(1, TaskUpdate::default().slug("a2")).await.unwrap();
        assert!(Task::repo(&ctx).get_by_slug("a").await.unwrap().is_none());
        let renamed = Task::repo(&ctx).get_by_slug("a2").await.unwrap().expect("the new slug");
        assert_eq!((renamed.id, renamed.slug.as_str()), (1, "a2"));
        assert_fresh(&ctx, &db, "a slug change").await;

        Task::repo(&ctx).delete(1).await.unwrap();
        assert!(Task::repo(&ctx).get_by_slug("a2").await.unwrap().is_none());
        assert_eq!(
            Task::repo(&ctx).get_by_project_id_and_number(1, 2).await.unwrap().map(|t| t.id),
            Some(2)
        );
        assert_fresh(&ctx, &db, "a delete").await;
    }
}

/// A composite key crosses the Redis broadcast: a write on instance A drops the combinations
/// it changed on instance B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_carries_composite_keys() {
    use cached_runtime::RedisBroadcast;
    let Some(url) = common::service_url("Redis", "CACHED_REDIS_URL", "redis://127.0.0.1:6379")
    else {
        return;
    };
    let channel = format!("cached-test:composite:{}", std::process::id());
    let bus_a = RedisBroadcast::connect(&url, channel.clone())
        .await
        .unwrap();
    let bus_b = RedisBroadcast::connect(&url, channel).await.unwrap();
    let (a, db) = common::database_with(Backend::Sqlite, 4, [SQLITE, POSTGRES, MYSQL], |b| {
        b.broadcast(bus_a)
    })
    .await
    .expect("SQLite always runs");
    let b = Context::builder(db.store.clone()).broadcast(bus_b).build();
    Task::repo(&a)
        .insert_many(&[task(1, 1, 1, "open", "a")])
        .await
        .unwrap();

    assert_eq!(
        Task::repo(&b)
            .find_by_project_id_and_status(1, "open")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        Task::repo(&b)
            .count_by_project_id_and_status(1, "done")
            .await
            .unwrap(),
        0
    );
    Task::repo(&a)
        .update(1, TaskUpdate::default().status("done"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while b.is_cached(list(1, "open")) || b.is_cached(count(1, "done")) {
        assert!(
            std::time::Instant::now() < deadline,
            "B still holds the old combinations"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(Task::repo(&b)
        .find_by_project_id_and_status(1, "open")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        Task::repo(&b)
            .count_by_project_id_and_status(1, "done")
            .await
            .unwrap(),
        1
    );
}
