//! Text keys follow the database's idea of equality: on MariaDB's default collation
//! (`utf8mb4_general_ci`), SQLite `COLLATE NOCASE` and a case-insensitive PostgreSQL ICU
//! collation, a query or an id
//! cached under one spelling is dropped by a write to any spelling the database calls equal.
//! Every step compares what the cache answers with what a cold context reads from the
//! database. The same scenario on case-sensitive MongoDB only costs extra drops.
//!
//! The negative control switches folding off (test-only) and must find stale answers.

use crate::common;

use cached_runtime::prelude::*;
use cached_runtime::ContextBuilder;
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "members")]
pub struct Member {
    #[cache(id)]
    pub id: i64,
    #[cache(index)]
    pub email: String,
    pub name: String,
}

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "labels")]
pub struct Label {
    #[cache(id)]
    pub code: String,
    pub title: String,
}

/// A page per member that counts the members under one mixed-case address.
#[derive(CachedView, Clone, Debug, PartialEq)]
#[view(key = "Member", reads(Member))]
pub struct Inbox {
    pub bobs: i64,
}

impl LoadView for Inbox {
    async fn load(ctx: &mut ViewCtx<'_, Self>, _id: i64) -> Result<Option<Self>> {
        let bobs = ctx.count(MemberQuery::ByEmail("BOB@X.COM".into())).await?;
        Ok(Some(Inbox { bobs }))
    }
}

const SQLITE: &str = "
CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL);
CREATE TABLE labels (code TEXT PRIMARY KEY COLLATE NOCASE, title TEXT NOT NULL);";
// A case-insensitive ICU collation (sqlx decodes `citext` only into its own `PgCiText`, which
// is not a key type yet; equality through a nondeterministic collation is the same idea).
const POSTGRES: &str = "
CREATE TABLE members (id BIGINT PRIMARY KEY, email TEXT COLLATE public.ci NOT NULL, name TEXT NOT NULL);
CREATE TABLE labels (code TEXT COLLATE public.ci PRIMARY KEY, title TEXT NOT NULL);";
// The database's default collation: utf8mb4_general_ci on a stock MariaDB.
const MYSQL: &str = "
CREATE TABLE members (id BIGINT PRIMARY KEY, email VARCHAR(100) NOT NULL, name TEXT NOT NULL);
CREATE TABLE labels (code VARCHAR(100) PRIMARY KEY, title TEXT NOT NULL);";

/// A fresh database with the two tables, and a context built by `configure`.
async fn setup(
    backend: Backend,
    configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> Option<(Context, common::TestDb)> {
    common::database_with(backend, 4, [SQLITE, POSTGRES, MYSQL], configure).await
}

/// What the cache answers, next to what the database answers, for every read the scenario
/// makes; returns the differences.
async fn compare(ctx: &Context, cold: &Context, step: &str, out: &mut Vec<String>) {
    cold.clear();
    for email in ["Bob@X.com", "BOB@x.com", "bob@x.com", "Carol@X.com"] {
        let cached: Vec<i64> = Member::repo(ctx)
            .find_by_email(email)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        let stored: Vec<i64> = Member::repo(cold)
            .find_by_email(email)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        if cached != stored {
            out.push(format!(
                "{step}: find_by_email({email:?}) cached {cached:?}, stored {stored:?}"
            ));
        }
        let cached = Member::repo(ctx).count_by_email(email).await.unwrap();
        let stored = Member::repo(cold).count_by_email(email).await.unwrap();
        if cached != stored {
            out.push(format!(
                "{step}: count_by_email({email:?}) cached {cached}, stored {stored}"
            ));
        }
    }
    for code in ["ABC", "abc", "Abc"] {
        let cached = Label::repo(ctx)
            .get(code)
            .await
            .unwrap()
            .map(|l| l.title.clone());
        let stored = Label::repo(cold)
            .get(code)
            .await
            .unwrap()
            .map(|l| l.title.clone());
        if cached != stored {
            out.push(format!(
                "{step}: get({code:?}) cached {cached:?}, stored {stored:?}"
            ));
        }
    }
    let cached = Inbox::get(ctx, 1).await.unwrap();
    let stored = Inbox::get(cold, 1).await.unwrap();
    if cached != stored {
        out.push(format!(
            "{step}: Inbox(1) cached {cached:?}, stored {stored:?}"
        ));
    }
}

fn member(id: i64, email: &str) -> Member {
    Member {
        id,
        email: email.into(),
        name: format!("member {id}"),
    }
}

/// Writes under one spelling, reads under others; returns every stale answer.
async fn scenario(ctx: &Context, cold: &Context) -> Vec<String> {
    let mut stale = Vec::new();
    Member::repo(ctx)
        .insert(&member(1, "bob@x.com"))
        .await
        .unwrap();
    Label::repo(ctx)
        .insert(&Label {
            code: "abc".into(),
            title: "first".into(),
        })
        .await
        .unwrap();
    compare(ctx, cold, "seeded", &mut stale).await;

    Member::repo(ctx)
        .update(1, MemberUpdate::default().email("carol@x.com"))
        .await
        .unwrap();
    compare(ctx, cold, "member 1 moved to carol", &mut stale).await;

    Member::repo(ctx)
        .insert(&member(2, "BOB@X.COM"))
        .await
        .unwrap();
    compare(ctx, cold, "member 2 inserted as BOB@X.COM", &mut stale).await;

    Member::repo(ctx)
        .update(2, MemberUpdate::default().name("renamed"))
        .await
        .unwrap();
    Member::repo(ctx)
        .update(1, MemberUpdate::default().email("Bob@X.com"))
        .await
        .unwrap();
    compare(ctx, cold, "member 1 back as Bob@X.com", &mut stale).await;

    Label::repo(ctx)
        .update("abc".to_string(), LabelUpdate::default().title("second"))
        .await
        .unwrap();
    compare(ctx, cold, "label abc retitled", &mut stale).await;

    Member::repo(ctx).delete(2).await.unwrap();
    Label::repo(ctx).delete("abc".to_string()).await.unwrap();
    compare(ctx, cold, "member 2 and label abc deleted", &mut stale).await;
    stale
}

backend_tests! {
    #[tokio::test]
    async fn a_write_drops_every_spelling_the_database_calls_equal(backend) {
        let Some((ctx, db)) = setup(backend, |b| b).await else {
            return;
        };
        let cold = Context::new(db.store.clone());
        let stale = scenario(&ctx, &cold).await;
        assert!(stale.is_empty(), "stale answers:\n{}", stale.join("\n"));
    }
}

/// Negative control: without folding, the case-insensitive databases serve stale answers.
#[tokio::test]
async fn without_folding_mixed_case_entries_go_stale() {
    let mut found = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        let Some((ctx, db)) = setup(backend, |b| b.__disable_text_folding()).await else {
            continue;
        };
        let cold = Context::new(db.store.clone());
        let stale = scenario(&ctx, &cold).await;
        eprintln!(
            "{backend:?}: {} stale answer(s) without folding",
            stale.len()
        );
        found.push((backend, stale.len()));
    }
    assert!(
        found.iter().all(|(_, n)| *n > 0),
        "without folding, every case-insensitive backend should serve stale answers: {found:?}"
    );
}
