//! Cached aggregates: `count_grouped_by_<field>()` for each key-forming field and
//! `max_<column>_by_<field>(v)` / `min_...` for each declared order, on the repository and in
//! a view. After every kind of write (insert, bulk insert, an update that moves a row between
//! groups, one that moves nothing, a move within an order, bulk update, delete, a transaction
//! and its rollback, a database cascade, a write made outside and announced), every aggregate
//! the cache serves equals a cold read, and a cold read equals the rows counted by hand. A
//! write that moves no row between groups keeps the grouped counts cached; a write in one
//! project keeps the other projects' extremes cached.

use crate::common;

use std::collections::BTreeMap;

use cached_runtime::prelude::*;
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "projects")]
pub struct Project {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

/// Tickets on a board: grouped by project, status and assignee; ordered by position within a
/// project.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "tickets", relates_to = "Project")]
pub struct Ticket {
    #[cache(id)]
    pub id: i64,
    #[cache(index, order_by = "position")]
    pub project_id: i64,
    #[cache(index)]
    pub status: String,
    #[cache(index)]
    pub assignee: Option<i64>,
    pub position: i64,
    pub title: String,
}

/// A project's dashboard: the board's tickets per status, and where the project's next
/// ticket goes.
#[derive(CachedView, Clone, Debug, PartialEq)]
#[view(key = "Project", reads(Project, Ticket))]
pub struct Dashboard {
    pub per_status: Vec<(String, i64)>,
    pub next_position: i64,
}

impl LoadView for Dashboard {
    async fn load(ctx: &mut ViewCtx<'_, Self>, project: i64) -> Result<Option<Self>> {
        if ctx.get::<Project>(project).await?.is_none() {
            return Ok(None);
        }
        let per_status = ctx
            .count_grouped(TicketQuery::count_grouped_by_status())
            .await?;
        let last = ctx
            .extreme(TicketQuery::max_position_by_project_id(project))
            .await?;
        Ok(Some(Dashboard {
            per_status,
            next_position: last.map_or(0, |p| p + 1),
        }))
    }
}

const TABLES: &str = "
CREATE TABLE projects (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL);
CREATE TABLE tickets (id BIGINT PRIMARY KEY, project_id BIGINT NOT NULL,
  status VARCHAR(20) NOT NULL, assignee BIGINT, position BIGINT NOT NULL,
  title VARCHAR(100) NOT NULL,
  FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE);";

const PROJECTS: [i64; 3] = [1, 2, 3];

fn ticket(id: i64, project_id: i64, status: &str, assignee: Option<i64>, position: i64) -> Ticket {
    Ticket {
        id,
        project_id,
        status: status.into(),
        assignee,
        position,
        title: format!("ticket {id}"),
    }
}

async fn setup(backend: Backend) -> Option<(Context, common::TestDb)> {
    let (ctx, db) = common::database_with(backend, 4, [TABLES; 3], |b| b).await?;
    let projects = PROJECTS.map(|id| Project {
        id,
        name: format!("project {id}"),
    });
    Project::repo(&ctx).insert_many(&projects).await.unwrap();
    Ticket::repo(&ctx)
        .insert_many(&[
            ticket(1, 1, "open", Some(7), 10),
            ticket(2, 1, "open", None, 20),
            ticket(3, 1, "done", Some(8), 30),
            ticket(4, 2, "open", Some(7), 5),
            ticket(5, 2, "review", None, 15),
        ])
        .await
        .unwrap();
    Some((ctx, db))
}

/// Every aggregate the test probes, as the context answers it.
async fn answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    let mut repo = Ticket::repo(ctx);
    out.push(format!(
        "{:?}",
        repo.count_grouped_by_project_id().await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        repo.count_grouped_by_status().await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        repo.count_grouped_by_assignee().await.unwrap()
    ));
    for project in PROJECTS {
        let max = repo.max_position_by_project_id(project).await.unwrap();
        let min = repo.min_position_by_project_id(project).await.unwrap();
        let board = Dashboard::get(ctx, project).await.unwrap();
        out.push(format!("{project}: {min:?}..{max:?} {board:?}"));
    }
    out
}

/// The same aggregates counted by hand from every row (independent of `GROUP BY`, `MAX`).
async fn by_hand(ctx: &Context) -> Vec<String> {
    let rows = Ticket::repo(ctx).list().await.unwrap();
    let group = |key: &dyn Fn(&Ticket) -> String| {
        let mut groups = BTreeMap::new();
        for row in &rows {
            *groups.entry(key(row)).or_insert(0_i64) += 1;
        }
        groups.into_iter().collect::<Vec<_>>()
    };
    let mut out = vec![
        group(&|t| t.project_id.to_string()),
        group(&|t| t.status.clone()),
        group(&|t| format!("{:?}", t.assignee)),
    ]
    .into_iter()
    .map(|g| format!("{g:?}"))
    .collect::<Vec<_>>();
    for project in PROJECTS {
        let positions = rows.iter().filter(|t| t.project_id == project);
        let positions: Vec<i64> = positions.map(|t| t.position).collect();
        let (min, max) = (positions.iter().min(), positions.iter().max());
        out.push(format!("{project}: {min:?}..{max:?}"));
    }
    out
}

/// The cache's grouped counts, keyed the way [`by_hand`] keys them and sorted likewise.
async fn grouped_as_by_hand(ctx: &Context) -> Vec<String> {
    let mut repo = Ticket::repo(ctx);
    let sorted = |g: Vec<(String, i64)>| {
        format!(
            "{:?}",
            g.into_iter()
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect::<Vec<_>>()
        )
    };
    let projects = repo.count_grouped_by_project_id().await.unwrap();
    let statuses = repo.count_grouped_by_status().await.unwrap();
    let assignees = repo.count_grouped_by_assignee().await.unwrap();
    let mut out = vec![
        sorted(
            projects
                .into_iter()
                .map(|(p, n)| (p.to_string(), n))
                .collect(),
        ),
        sorted(statuses),
        sorted(
            assignees
                .into_iter()
                .map(|(a, n)| (format!("{a:?}"), n))
                .collect(),
        ),
    ];
    for project in PROJECTS {
        let max = repo.max_position_by_project_id(project).await.unwrap();
        let min = repo.min_position_by_project_id(project).await.unwrap();
        out.push(format!("{project}: {:?}..{:?}", min.as_ref(), max.as_ref()));
    }
    out
}

async fn assert_fresh(ctx: &Context, db: &common::TestDb, step: &str) {
    let cold = Context::new(db.store.clone());
    assert_eq!(answers(ctx).await, answers(&cold).await, "after {step}");
    assert_eq!(
        grouped_as_by_hand(ctx).await,
        by_hand(&cold).await,
        "after {step}"
    );
}

fn statuses_cached(ctx: &Context) -> bool {
    ctx.is_cached(TicketQuery::count_grouped_by_status().key())
}

fn max_cached(ctx: &Context, project: i64) -> bool {
    ctx.is_cached(TicketQuery::max_position_by_project_id(project).key())
}

// Every kind of write, each followed by a comparison of every aggregate with a cold read and
// with the rows counted by hand, and by checks that only what the write changed was dropped.
backend_tests! {
    #[tokio::test]
    async fn aggregates_equal_a_cold_read_after_every_kind_of_write(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        assert_fresh(&ctx, &db, "seeding").await;
        let repo = || Ticket::repo(&ctx);

        // A title change moves no row between groups and no row within an order.
        repo().update(1, TicketUpdate::default().title("renamed")).await.unwrap();
        assert!(statuses_cached(&ctx), "a title change keeps the grouped counts");
        assert!(ctx.is_cached(TicketQuery::count_grouped_by_project_id().key()));
        assert!(max_cached(&ctx, 1) && max_cached(&ctx, 2));
        assert!(ctx.is_cached(DashboardKey::new(1)), "nothing the dashboard read changed");
        assert_fresh(&ctx, &db, "a title change").await;

        // A status change moves a row between status groups: the status counts and every
        // dashboard (they read them) are dropped; the project counts and extremes stay.
        repo().update(2, TicketUpdate::default().status("done")).await.unwrap();
        assert!(!statuses_cached(&ctx));
        assert!(!ctx.is_cached(DashboardKey::new(2)), "every dashboard reads the status counts");
        assert!(ctx.is_cached(TicketQuery::count_grouped_by_project_id().key()));
        assert!(max_cached(&ctx, 1));
        assert_fresh(&ctx, &db, "a status change").await;

        // A position change in project 1 drops project 1's extremes only.
        repo().update(3, TicketUpdate::default().position(99)).await.unwrap();
        assert!(!max_cached(&ctx, 1));
        assert!(max_cached(&ctx, 2), "project 2's last position did not change");
        assert!(statuses_cached(&ctx));
        assert_fresh(&ctx, &db, "a position change").await;

        // Append at the end: the next position comes from the cached maximum.
        let next = repo().max_position_by_project_id(2).await.unwrap().unwrap() + 1;
        repo().insert(&ticket(6, 2, "open", Some(9), next)).await.unwrap();
        assert!(!max_cached(&ctx, 2) && max_cached(&ctx, 1));
        assert_fresh(&ctx, &db, "an insert at the end").await;

        // A new project's first tickets, in one statement; its maximum was cached as none.
        assert_eq!(repo().max_position_by_project_id(3).await.unwrap(), None);
        repo()
            .insert_many(&[ticket(7, 3, "open", None, 1), ticket(8, 3, "triage", Some(7), 2)])
            .await
            .unwrap();
        assert_fresh(&ctx, &db, "a bulk insert").await;

        // A ticket moves to another project: both projects' extremes and the project counts.
        repo().update(4, TicketUpdate::default().project_id(3)).await.unwrap();
        assert!(!max_cached(&ctx, 2) && !max_cached(&ctx, 3));
        assert_fresh(&ctx, &db, "a move between projects").await;

        // A nullable group: unassigned, then assigned.
        repo().update(5, TicketUpdate::default().assignee(Some(8))).await.unwrap();
        repo().update(1, TicketUpdate::default().assignee(None)).await.unwrap();
        assert_fresh(&ctx, &db, "assignee changes").await;

        // A bulk update moves every open ticket to review.
        repo().update_many_by_status("open", TicketUpdate::default().status("review")).await.unwrap();
        assert_fresh(&ctx, &db, "a bulk update").await;

        // Deletes, one and several.
        repo().delete(6).await.unwrap();
        repo().delete_many(&[7, 100]).await.unwrap();
        assert_fresh(&ctx, &db, "deletes").await;

        // A transaction sees its own writes in the aggregates; its rollback changes nothing.
        let mut tx = ctx.begin().await.unwrap();
        Ticket::repo(&mut tx).insert(&ticket(9, 1, "wip", None, 200)).await.unwrap();
        let inside = Ticket::repo(&mut tx).count_grouped_by_status().await.unwrap();
        assert!(inside.iter().any(|(s, n)| s == "wip" && *n == 1), "{inside:?}");
        assert_eq!(Ticket::repo(&mut tx).max_position_by_project_id(1).await.unwrap(), Some(200));
        tx.rollback().await.unwrap();
        assert!(statuses_cached(&ctx), "a rollback drops nothing");
        assert_fresh(&ctx, &db, "a rolled back transaction").await;

        // The same in a transaction that commits.
        let mut tx = ctx.begin().await.unwrap();
        Ticket::repo(&mut tx).insert(&ticket(9, 1, "wip", None, 200)).await.unwrap();
        Ticket::repo(&mut tx).update(3, TicketUpdate::default().status("wip")).await.unwrap();
        tx.commit().await.unwrap();
        assert_fresh(&ctx, &db, "a committed transaction").await;

        // A write made outside the cache, then announced.
        if backend.is_mongo() {
            use mongodb::bson::{doc, Document};
            let set = doc! { "$set": { "status": "outside", "position": 500_i64 } };
            let tickets = db.mongo().collection::<Document>("tickets");
            tickets.update_one(doc! { "_id": 5_i64 }, set).await.unwrap();
        } else {
            db.execute("UPDATE tickets SET status = 'outside', position = 500 WHERE id = 5").await;
        }
        ctx.invalidate::<Ticket>(5);
        assert_fresh(&ctx, &db, "an outside write announced").await;

        // Deleting a project cascades to its tickets in the database (MongoDB has no
        // foreign keys: its tickets stay).
        Project::repo(&ctx).delete(1).await.unwrap();
        assert_fresh(&ctx, &db, "a cascading delete").await;
    }

    #[tokio::test]
    async fn a_grouped_count_hit_reads_nothing_and_is_one_entry(backend) {
        let Some((ctx, _db)) = setup(backend).await else { return };
        let first = Ticket::repo(&ctx).count_grouped_by_status().await.unwrap();
        let loads = ctx.stats().loads;
        for _ in 0..5 {
            assert_eq!(Ticket::repo(&ctx).count_grouped_by_status().await.unwrap(), first);
            assert_eq!(Ticket::repo(&ctx).max_position_by_project_id(1).await.unwrap(), Some(30));
        }
        assert_eq!(ctx.stats().loads, loads + 1, "one load for the extreme, none for the hits");
        assert_eq!(
            TicketQuery::count_grouped_by_status().key().to_string(),
            "ticket#count_by(status)"
        );
        assert_eq!(
            TicketQuery::max_position_by_project_id(3).key().to_string(),
            "ticket?project_id=3#max(position)"
        );
    }
}
