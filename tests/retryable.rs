//! Waits that give up are retryable conflicts, not opaque database errors: a lock wait
//! timeout (PostgreSQL 55P03, MySQL/MariaDB 1205) and a busy SQLite database. And a value that
//! cannot be used is a typed error before anything runs.

use crate::common;

use std::str::FromStr;
use std::time::Duration;

use cached_runtime::{Context, Error};
use common::domain::*;
use common::Backend;
use sqlx::Executor;

/// Holds scene 1's row lock in one transaction while a second context, whose connections give
/// up waiting quickly, updates it: the second write must fail with `Error::Conflict`.
async fn second_writer_gives_up(holder: &Context, impatient: &Context) {
    let mut tx = holder.begin().await.unwrap();
    Scene::repo(&mut tx)
        .increment_word_count(1, 1)
        .await
        .unwrap();
    let mut other = match impatient.begin().await {
        Ok(other) => other,
        // SQLite: the write lock is taken by BEGIN IMMEDIATE itself.
        Err(err) => {
            assert!(matches!(err, Error::Conflict { .. }), "{err}");
            assert!(err.is_retryable());
            tx.rollback().await.unwrap();
            return;
        }
    };
    let err = Scene::repo(&mut other)
        .increment_word_count(1, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.is_retryable());
    drop(other);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_busy_sqlite_database_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("busy.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_millis(100));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA_SQLITE).execute(&pool).await.unwrap();
    let ctx = Context::new(pool.clone());
    common::seed(&ctx).await;
    second_writer_gives_up(&ctx, &Context::new(pool)).await;
}

#[tokio::test]
async fn a_postgres_lock_timeout_is_a_conflict() {
    let Some(db) = common::database(Backend::Postgres, 2).await else {
        return;
    };
    let ctx = Context::new(db.store.clone());
    common::seed(&ctx).await;
    let (url, schema) = db.server().unwrap();
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .unwrap()
        .options([("search_path", schema), ("lock_timeout", "100ms")]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    second_writer_gives_up(&ctx, &Context::new(pool)).await;
}

#[tokio::test]
async fn a_mysql_lock_wait_timeout_is_a_conflict() {
    let Some(db) = common::database(Backend::MySql, 2).await else {
        return;
    };
    let ctx = Context::new(db.store.clone());
    common::seed(&ctx).await;
    let (url, database) = db.server().unwrap();
    let options = sqlx::mysql::MySqlConnectOptions::from_str(url)
        .unwrap()
        .database(database);
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION innodb_lock_wait_timeout = 1")
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .unwrap();
    second_writer_gives_up(&ctx, &Context::new(pool)).await;
}

backend_tests! {
    #[tokio::test]
    async fn decrementing_by_i64_min_is_refused_with_a_typed_error(backend) {
        let (ctx, _db) = seeded!(backend);
        let before = Scene::repo(&ctx).get(1).await.unwrap().unwrap().word_count;
        let err = Scene::repo(&ctx)
            .decrement_word_count(1, i64::MIN)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::OutOfRange { column: "word_count", .. }), "{err}");
        ctx.clear();
        assert_eq!(Scene::repo(&ctx).get(1).await.unwrap().unwrap().word_count, before);
        let row = Scene::repo(&ctx).decrement_word_count(1, i64::MAX).await.unwrap();
        assert_eq!(row.word_count, before - i64::MAX);
    }
}
