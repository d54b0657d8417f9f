//! Soundness at the edges: the writes and reads that reach past the common paths, each checked
//! against a cold read of the database after every step, on every backend.
//!
//! - Increments and decrements of a field that forms keys only through a composite lookup, a
//!   unique pair or an order (`order_by`) change those lookups and pages.
//! - Rows asked for by text ids under a case-insensitive collation (`get_many`, `preload`,
//!   `get_many_for_update`) are matched to the asked ids by the database's equality.
//! - `update_many_by_<field>` updates every row the database calls equal to the value asked.
//! - Two entities over one table (a narrow read model beside the full entity) each hear the
//!   other's writes.
//! - `invalidate::<E>(id)` after a write outside the cache leaves no query, count or page stale.
//! - Spellings the collations call equal beyond case (`x²`/`x2`, `㎏`/`kg`, `ǧog`/`gog`, kana,
//!   ligatures, ignorable characters): a write under one drops what is cached under the other.

use crate::common;

use std::sync::Arc;

use cached_runtime::prelude::*;
use cached_runtime::{Handle, Page, Paged, RawStore};
use common::{Backend, TestDb};

/// Fields that form keys only through a composite lookup (`lane`, `slot`), a unique pair
/// (`board`, `seq`) or the order of `page()` (`priority`).
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(
    table = "jobs",
    index(lane, slot),
    unique(board, seq),
    order_by = "priority"
)]
pub struct Job {
    #[cache(id)]
    pub id: i64,
    pub lane: i64,
    pub slot: i64,
    pub board: i64,
    pub seq: i64,
    pub priority: i64,
    pub note: String,
}

/// A text id that the SQL backends compare case-insensitively.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "labels", name = "edge_label")]
pub struct Label {
    #[cache(id)]
    pub code: String,
    pub name: String,
}

/// A case-insensitive lookup field.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "members", name = "edge_member")]
pub struct Member {
    #[cache(id)]
    pub id: i64,
    #[cache(index)]
    pub email: String,
    pub level: i64,
}

/// The full entity over `articles`, with pages ordered by title.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "articles", order_by = "title")]
pub struct Article {
    #[cache(id)]
    pub id: i64,
    #[cache(index)]
    pub author: i64,
    pub title: String,
    pub body: String,
}

/// A narrow read model over the same table.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "articles")]
pub struct ArticleTitle {
    #[cache(id)]
    pub id: i64,
    #[cache(index)]
    pub title: String,
}

const SQLITE: &str = "
CREATE TABLE jobs (id INTEGER PRIMARY KEY, lane INTEGER NOT NULL, slot INTEGER NOT NULL,
  board INTEGER NOT NULL, seq INTEGER NOT NULL, priority INTEGER NOT NULL, note TEXT NOT NULL);
CREATE TABLE labels (code TEXT COLLATE NOCASE PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE NOT NULL,
  level INTEGER NOT NULL);
CREATE TABLE articles (id INTEGER PRIMARY KEY, author INTEGER NOT NULL, title TEXT NOT NULL,
  body TEXT NOT NULL);";
const POSTGRES: &str = "
CREATE TABLE jobs (id BIGINT PRIMARY KEY, lane BIGINT NOT NULL, slot BIGINT NOT NULL,
  board BIGINT NOT NULL, seq BIGINT NOT NULL, priority BIGINT NOT NULL, note TEXT NOT NULL);
CREATE TABLE labels (code TEXT COLLATE public.ci PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE members (id BIGINT PRIMARY KEY, email TEXT COLLATE public.ci NOT NULL,
  level BIGINT NOT NULL);
CREATE TABLE articles (id BIGINT PRIMARY KEY, author BIGINT NOT NULL, title TEXT NOT NULL,
  body TEXT NOT NULL);";
const MYSQL: &str = "
CREATE TABLE jobs (id BIGINT PRIMARY KEY, lane BIGINT NOT NULL, slot BIGINT NOT NULL,
  board BIGINT NOT NULL, seq BIGINT NOT NULL, priority BIGINT NOT NULL, note TEXT NOT NULL);
CREATE TABLE labels (code VARCHAR(20) PRIMARY KEY, name VARCHAR(50) NOT NULL);
CREATE TABLE members (id BIGINT PRIMARY KEY, email VARCHAR(50) NOT NULL, level BIGINT NOT NULL);
CREATE TABLE articles (id BIGINT PRIMARY KEY, author BIGINT NOT NULL,
  title VARCHAR(50) NOT NULL, body VARCHAR(50) NOT NULL);";

async fn setup(backend: Backend) -> Option<(Context, TestDb)> {
    common::database_with(backend, 4, [SQLITE, POSTGRES, MYSQL], |b| b).await
}

/// A context that has cached nothing, on the same database: its answers are the database's.
fn cold(db: &TestDb) -> Context {
    Context::new(db.store.clone())
}

fn ids<T>(rows: &[Arc<T>], id: impl Fn(&T) -> String) -> String {
    rows.iter().map(|r| id(r)).collect::<Vec<_>>().join(",")
}

/// Every page of an order, two rows at a time, each row shown by `show`.
async fn walk<E, F, Fut>(mut page_of: F, show: impl Fn(&E) -> String) -> String
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = cached_runtime::Result<Paged<E>>>,
{
    let mut page = Page::first(2);
    let mut order = Vec::new();
    loop {
        let paged = page_of(page).await.unwrap();
        order.extend(paged.rows.iter().map(|row| show(row)));
        match paged.next {
            Some(cursor) => page = Page::after(cursor, 2),
            None => break,
        }
    }
    order.join(" ")
}

/// Asserts that `$answers` (every lookup, as a context answers it) is the same through `$ctx`
/// and through a cold context on the same database.
macro_rules! assert_fresh {
    ($answers:ident, $ctx:expr, $db:expr, $step:expr) => {
        assert_eq!(
            $answers($ctx).await,
            $answers(&cold($db)).await,
            "after {}",
            $step
        )
    };
}

// ---------------------------------------------------------------------------------------
// Jobs: increments of fields that are key-forming only through a composite, a unique, an order
// ---------------------------------------------------------------------------------------

fn job(id: i64, lane: i64, slot: i64, board: i64, seq: i64, priority: i64) -> Job {
    Job {
        id,
        lane,
        slot,
        board,
        seq,
        priority,
        note: format!("job {id}"),
    }
}

/// Every job lookup: each composite combination (ids and count), each unique pair, and the
/// whole table a page of two at a time.
async fn job_answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    for lane in 0..=3 {
        for slot in 0..=3 {
            let rows = Job::repo(ctx)
                .find_by_lane_and_slot(lane, slot)
                .await
                .unwrap();
            let n = Job::repo(ctx)
                .count_by_lane_and_slot(lane, slot)
                .await
                .unwrap();
            out.push(format!(
                "lane {lane} slot {slot}: [{}] #{n}",
                ids(&rows, |j| j.id.to_string())
            ));
        }
    }
    for board in 0..=3 {
        for seq in 0..=3 {
            let row = Job::repo(ctx)
                .get_by_board_and_seq(board, seq)
                .await
                .unwrap();
            out.push(format!("board {board} seq {seq}: {:?}", row.map(|j| j.id)));
        }
    }
    let order = walk(
        move |page| async move { Job::repo(ctx).page(page).await },
        |j: &Job| format!("{}@{}", j.id, j.priority),
    )
    .await;
    out.push(format!("by priority: {order}"));
    out
}

// ---------------------------------------------------------------------------------------
// Labels: text ids matched by the database's equality
// ---------------------------------------------------------------------------------------

const ASKED: [&str; 6] = ["red", "RED", "Blue", "blue", "JADE", "none"];

/// Every label asked for one id at a time: a cold `get` is `WHERE code = ?`, the database's
/// own equality.
async fn labels_one_by_one(ctx: &Context) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for code in ASKED {
        let row = Label::repo(ctx).get(code.to_string()).await.unwrap();
        out.push(row.map(|l| format!("{}={}", l.code, l.name)));
    }
    out
}

fn shown(rows: Vec<Option<Arc<Label>>>) -> Vec<Option<String>> {
    rows.into_iter()
        .map(|r| r.map(|l| format!("{}={}", l.code, l.name)))
        .collect()
}

fn asked() -> Vec<String> {
    ASKED.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Members: a bulk update by a case-insensitive field
// ---------------------------------------------------------------------------------------

async fn member_answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    for email in ["bob@x.com", "BOB@X.COM", "Bob@x.com", "ann@x.com"] {
        let rows = Member::repo(ctx).find_by_email(email).await.unwrap();
        let n = Member::repo(ctx).count_by_email(email).await.unwrap();
        let shown = ids(&rows, |m| format!("{}:{}", m.id, m.level));
        out.push(format!("{email}: [{shown}] #{n}"));
    }
    for id in 1..=3 {
        let row = Member::repo(ctx).get(id).await.unwrap();
        out.push(format!(
            "{id}: {:?}",
            row.map(|m| (m.email.clone(), m.level))
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Articles: two entities over one table, and writes outside the cache
// ---------------------------------------------------------------------------------------

fn article(id: i64, author: i64, title: &str) -> Article {
    Article {
        id,
        author,
        title: title.into(),
        body: format!("body {id}"),
    }
}

async fn article_answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    for author in 1..=3 {
        let rows = Article::repo(ctx).find_by_author(author).await.unwrap();
        let n = Article::repo(ctx).count_by_author(author).await.unwrap();
        out.push(format!(
            "author {author}: [{}] #{n}",
            ids(&rows, |a| a.id.to_string())
        ));
    }
    for id in 1..=4 {
        let full = Article::repo(ctx).get(id).await.unwrap();
        let narrow = ArticleTitle::repo(ctx).get(id).await.unwrap();
        out.push(format!(
            "{id}: {:?} / {:?}",
            full.map(|a| (a.author, a.title.clone())),
            narrow.map(|t| t.title.clone())
        ));
    }
    for title in ["alpha", "beta", "gamma", "omega"] {
        let rows = ArticleTitle::repo(ctx).find_by_title(title).await.unwrap();
        out.push(format!(
            "title {title}: [{}]",
            ids(&rows, |t| t.id.to_string())
        ));
    }
    out.push(format!(
        "all titles: #{}",
        ArticleTitle::repo(ctx).count().await.unwrap()
    ));
    let order = walk(
        move |page| async move { Article::repo(ctx).page(page).await },
        |a: &Article| format!("{}:{}", a.id, a.title),
    )
    .await;
    out.push(format!("by title: {order}"));
    out
}

/// Articles 1 and 2 by author 1, 3 by author 2; every lookup cached and checked.
async fn seed_articles(ctx: &Context, db: &TestDb) {
    let rows = [
        article(1, 1, "alpha"),
        article(2, 1, "beta"),
        article(3, 2, "gamma"),
    ];
    Article::repo(ctx).insert_many(&rows).await.unwrap();
    assert_fresh!(article_answers, ctx, db, "seeding");
}

/// Sets an article's author and title straight in the database, behind the cache's back.
async fn write_outside(db: &TestDb, id: i64, author: i64, title: &str) {
    if let RawStore::Mongo(mongo) = db.store.raw_unchecked() {
        use mongodb::bson::doc;
        mongo
            .collection::<mongodb::bson::Document>("articles")
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "author": author, "title": title } },
            )
            .await
            .expect("direct update");
        return;
    }
    db.execute(&format!(
        "UPDATE articles SET author = {author}, title = '{title}' WHERE id = {id}"
    ))
    .await;
}

/// Each spelling of each pair, looked up by email (ids and count) and as a label id.
async fn spelling_answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    for (a, b) in common::EQUAL_BEYOND_CASE {
        for email in [a, b] {
            let rows = Member::repo(ctx).find_by_email(email).await.unwrap();
            let n = Member::repo(ctx).count_by_email(email).await.unwrap();
            let label = Label::repo(ctx).get(email.to_string()).await.unwrap();
            out.push(format!(
                "{email}: [{}] #{n} label {:?}",
                ids(&rows, |m| m.id.to_string()),
                label.map(|l| l.name.clone())
            ));
        }
    }
    out
}

backend_tests! {
    #[tokio::test]
    async fn a_write_under_one_spelling_drops_what_is_cached_under_any_equal_one(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        let check = |step: String| {
            let (ctx, db) = (ctx.clone(), &db);
            async move {
                let stored = spelling_answers(&cold(db)).await;
                assert_eq!(spelling_answers(&ctx).await, stored, "after {step}");
            }
        };
        check("nothing".into()).await;
        for (i, (plain, other)) in common::EQUAL_BEYOND_CASE.iter().enumerate() {
            let id = i as i64 + 1;
            // Every spelling is cached (absent) before each write.
            spelling_answers(&ctx).await;
            let member = Member { id, email: other.to_string(), level: 0 };
            Member::repo(&ctx).insert(&member).await.unwrap();
            Label::repo(&ctx)
                .insert(&Label { code: other.to_string(), name: format!("label {id}") })
                .await
                .unwrap();
            check(format!("inserting {other:?}")).await;
            Member::repo(&ctx).update(id, MemberUpdate::default().email(*plain)).await.unwrap();
            check(format!("moving {other:?} to {plain:?}")).await;
            Member::repo(&ctx).update(id, MemberUpdate::default().email("zz")).await.unwrap();
            Label::repo(&ctx).delete(other.to_string()).await.unwrap();
            check(format!("moving {plain:?} away, deleting label {other:?}")).await;
            Label::repo(&ctx)
                .insert(&Label { code: plain.to_string(), name: format!("plain {id}") })
                .await
                .unwrap();
            check(format!("inserting label {plain:?}")).await;
        }
    }


    #[tokio::test]
    async fn increments_move_rows_between_composites_uniques_and_pages(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        Job::repo(&ctx)
            .insert_many(&[
                job(1, 0, 0, 0, 0, 10),
                job(2, 0, 1, 0, 1, 20),
                job(3, 1, 0, 1, 0, 30),
                job(4, 1, 1, 1, 1, 40),
            ])
            .await
            .unwrap();
        // Every lookup and page is cached before each write, so that a stale one would show.
        assert_fresh!(job_answers, &ctx, &db, "seeding");
        Job::repo(&ctx).increment_slot(1, 2).await.unwrap();
        assert_fresh!(job_answers, &ctx, &db, "increment_slot (composite only)");
        Job::repo(&ctx).increment_lane(2, 1).await.unwrap();
        assert_fresh!(job_answers, &ctx, &db, "increment_lane (composite only)");
        Job::repo(&ctx).decrement_seq(4, 1).await.unwrap();
        assert_fresh!(job_answers, &ctx, &db, "decrement_seq (unique pair only)");
        Job::repo(&ctx).increment_board(3, 2).await.unwrap();
        assert_fresh!(job_answers, &ctx, &db, "increment_board (unique pair only)");
        Job::repo(&ctx).decrement_priority(4, 35).await.unwrap();
        assert_fresh!(job_answers, &ctx, &db, "decrement_priority (order only)");
        Job::repo(&ctx).increment_priority(1, 100).await.unwrap();
        assert_fresh!(job_answers, &ctx, &db, "increment_priority (order only)");

        // The same inside a transaction, several at once.
        let mut tx = ctx.begin().await.unwrap();
        Job::repo(&mut tx).decrement_lane(3, 1).await.unwrap();
        Job::repo(&mut tx).increment_seq(2, 2).await.unwrap();
        Job::repo(&mut tx).decrement_priority(2, 19).await.unwrap();
        tx.commit().await.unwrap();
        assert_fresh!(job_answers, &ctx, &db, "a transaction of increments");
    }

    #[tokio::test]
    async fn every_counter_the_metadata_lists_keeps_every_lookup_fresh(backend) {
        // Not a hand list: each integer field the derive gave `increment_`/`decrement_`
        // (`EntityMeta::counters`), moved up and down through the operation those methods
        // call, on rows of an entity whose counters form keys in every way there is (a
        // composite, a unique pair, an order) and of one whose counter is an index.
        let Some((ctx, db)) = setup(backend).await else { return };
        Job::repo(&ctx)
            .insert_many(&[job(1, 0, 0, 0, 0, 10), job(2, 1, 1, 1, 1, 20), job(3, 2, 0, 2, 0, 30)])
            .await
            .unwrap();
        seed_articles(&ctx, &db).await;
        let counters = |meta: &cached_runtime::EntityMeta| meta.counters.to_vec();
        assert_eq!(counters(Job::meta()), ["lane", "slot", "board", "seq", "priority"]);
        assert_fresh!(job_answers, &ctx, &db, "seeding");
        for column in counters(Job::meta()) {
            for (id, delta) in [(1, 1), (3, -1), (2, 2)] {
                let mut on: &Context = &ctx;
                cached_runtime::__private::add::<Job>(on.__handle(), id, column, delta)
                    .await
                    .unwrap();
                assert_fresh!(job_answers, &ctx, &db, format!("{column} {delta:+} on job {id}"));
            }
        }
        for column in counters(Article::meta()) {
            for (id, delta) in [(1, 1), (3, -1)] {
                let mut on: &Context = &ctx;
                cached_runtime::__private::add::<Article>(on.__handle(), id, column, delta)
                    .await
                    .unwrap();
                assert_fresh!(article_answers, &ctx, &db, format!("{column} {delta:+} on article {id}"));
            }
        }
    }

    #[tokio::test]
    async fn text_ids_are_matched_by_the_databases_equality(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        Label::repo(&ctx)
            .insert_many(&[
                Label { code: "red".into(), name: "Red".into() },
                Label { code: "blue".into(), name: "Blue".into() },
                Label { code: "jade".into(), name: "Jade".into() },
            ])
            .await
            .unwrap();
        let truth = labels_one_by_one(&cold(&db)).await;
        if !backend.is_mongo() {
            // The SQL backends compare these ids case-insensitively: every spelling but
            // `none` names a row.
            assert_eq!(truth.iter().filter(|r| r.is_some()).count(), 5, "{truth:?}");
        }

        ctx.clear();
        let many = shown(Label::repo(&ctx).get_many(&asked()).await.unwrap());
        assert_eq!(many, truth, "get_many");
        assert_eq!(labels_one_by_one(&ctx).await, truth, "get after get_many filled");

        ctx.clear();
        let found = ctx.preload::<Label>(asked()).await.unwrap();
        assert_eq!(found, truth.iter().filter(|r| r.is_some()).count(), "preload's count");
        assert_eq!(labels_one_by_one(&ctx).await, truth, "get after preload filled");

        let mut tx = ctx.begin().await.unwrap();
        let locked = shown(Label::repo(&mut tx).get_many_for_update(&asked()).await.unwrap());
        assert_eq!(locked, truth, "get_many_for_update");
        let read = shown(Label::repo(&mut tx).get_many(&asked()).await.unwrap());
        assert_eq!(read, truth, "get_many in a transaction");
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn update_many_by_updates_every_row_the_database_calls_equal(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        Member::repo(&ctx)
            .insert_many(&[
                Member { id: 1, email: "bob@x.com".into(), level: 1 },
                Member { id: 2, email: "ann@x.com".into(), level: 1 },
                Member { id: 3, email: "Bob@X.com".into(), level: 1 },
            ])
            .await
            .unwrap();
        assert_eq!(member_answers(&ctx).await, member_answers(&cold(&db)).await, "seeding");
        let asked = "BOB@X.COM";
        let matching = Member::repo(&cold(&db)).find_by_email(asked).await.unwrap().len();
        let updated = Member::repo(&ctx)
            .update_many_by_email(asked, MemberUpdate::default().level(5))
            .await
            .unwrap();
        assert_eq!(updated.len(), matching, "the rows find_by_email({asked}) returns");
        if !backend.is_mongo() {
            assert_eq!(matching, 2, "a case-insensitive collation matches both spellings");
        }
        assert_eq!(member_answers(&ctx).await, member_answers(&cold(&db)).await, "update_many_by");

        // Moving the matched rows to another address, as a transaction.
        let mut tx = ctx.begin().await.unwrap();
        Member::repo(&mut tx)
            .update_many_by_email("bob@X.COM", MemberUpdate::default().email("ann@x.com"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(member_answers(&ctx).await, member_answers(&cold(&db)).await, "a move");
    }

    #[tokio::test]
    async fn entities_over_one_table_hear_each_others_writes(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        seed_articles(&ctx, &db).await;
        Article::repo(&ctx).update(1, ArticleUpdate::default().title("omega")).await.unwrap();
        assert_fresh!(article_answers, &ctx, &db, "a title written through the full entity");
        ArticleTitle::repo(&ctx)
            .update(2, ArticleTitleUpdate::default().title("alpha"))
            .await
            .unwrap();
        assert_fresh!(article_answers, &ctx, &db, "a title written through the read model");
        Article::repo(&ctx).insert(&article(4, 3, "beta")).await.unwrap();
        assert_fresh!(article_answers, &ctx, &db, "an insert through the full entity");
        ArticleTitle::repo(&ctx).delete(3).await.unwrap();
        assert_fresh!(article_answers, &ctx, &db, "a delete through the read model");
        Article::repo(&ctx).delete(4).await.unwrap();
        assert_fresh!(article_answers, &ctx, &db, "a delete through the full entity");
    }

    #[tokio::test]
    async fn invalidate_after_a_write_outside_the_cache_leaves_nothing_stale(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        seed_articles(&ctx, &db).await;

        // Article 1 changes author and moves to the end of the title order, outside the cache.
        write_outside(&db, 1, 2, "omega").await;
        let report = ctx.invalidate::<Article>(1);
        assert!(report.key_strings().contains(&"article:1".to_string()), "{report}");
        assert_fresh!(article_answers, &ctx, &db, "an outside write and invalidate(1)");

        // A row the cache had never read, changed outside: its queries were cached all the same.
        write_outside(&db, 3, 3, "alpha").await;
        ctx.invalidate::<Article>(3);
        assert_fresh!(article_answers, &ctx, &db, "an outside write to a row never read alone");

        // Through the read model's id: the full entity hears it too.
        write_outside(&db, 2, 3, "beta").await;
        ctx.invalidate::<ArticleTitle>(2);
        assert_fresh!(article_answers, &ctx, &db, "invalidate through the read model");
    }
}
