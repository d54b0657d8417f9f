//! Schema-qualified tables (`table = "cached_app_test.boards"`) outside PostgreSQL's search
//! path and MySQL's current database: the catalog is read for every schema, so
//! `check_schema` finds them and a delete follows their cascades. PostgreSQL and MySQL only
//! (SQLite would need an attached database, MongoDB has no schemas).

#[macro_use]
mod common;

use cached_runtime::prelude::*;
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "cached_app_test.boards")]
pub struct Board {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "cached_app_test.tickets", relates_to = "Board")]
pub struct Ticket {
    #[cache(id)]
    pub id: i64,
    pub board_id: i64,
    pub title: String,
}

/// Every ticket lookup, as `ctx` answers it.
async fn answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    for id in 1..=4 {
        let row = Ticket::repo(ctx).get(id).await.unwrap();
        out.push(format!("ticket {id}: {:?}", row.map(|t| t.board_id)));
    }
    for board in 1..=2 {
        let rows = Ticket::repo(ctx).find_by_board_id(board).await.unwrap();
        let n = Ticket::repo(ctx).count_by_board_id(board).await.unwrap();
        out.push(format!("board {board}: {} #{n}", rows.len()));
    }
    out
}

async fn qualified_tables_are_found_and_their_cascades_followed(backend: Backend) {
    // One schema (database) of this fixed name per server: this is the only test that uses it.
    let ddl = match backend {
        Backend::Postgres => {
            "DROP SCHEMA IF EXISTS cached_app_test CASCADE; CREATE SCHEMA cached_app_test;"
        }
        _ => "DROP DATABASE IF EXISTS cached_app_test; CREATE DATABASE cached_app_test;",
    };
    let Some(db) = common::database(backend, 4).await else {
        return;
    };
    db.execute(ddl).await;
    db.execute(
        "CREATE TABLE cached_app_test.boards (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL);
         CREATE TABLE cached_app_test.tickets (id BIGINT PRIMARY KEY, board_id BIGINT NOT NULL,
           title VARCHAR(50) NOT NULL,
           FOREIGN KEY (board_id) REFERENCES cached_app_test.boards(id) ON DELETE CASCADE);",
    )
    .await;
    let ctx = Context::new(db.store.clone());
    let report = ctx.check_schema().await.unwrap();
    let lines = report.cascades.join("\n");
    assert!(
        lines.contains(
            "cached_app_test.tickets.board_id -> cached_app_test.boards.id: ON DELETE Cascade"
        ),
        "{report}"
    );
    for (id, name) in [(1, "one"), (2, "two")] {
        let board = Board {
            id,
            name: name.into(),
        };
        Board::repo(&ctx).insert(&board).await.unwrap();
    }
    for (id, board_id) in [(1, 1), (2, 1), (3, 2)] {
        let ticket = Ticket {
            id,
            board_id,
            title: format!("ticket {id}"),
        };
        Ticket::repo(&ctx).insert(&ticket).await.unwrap();
    }
    let cold = Context::new(db.store.clone());
    assert_eq!(
        answers(&ctx).await,
        answers(&cold).await,
        "before the delete"
    );
    Board::repo(&ctx).delete(1).await.unwrap();
    cold.clear();
    let stored = answers(&cold).await;
    assert_eq!(answers(&ctx).await, stored, "after deleting board 1");
    assert!(stored[0].ends_with("None"), "{stored:?}");
    let drop = match backend {
        Backend::Postgres => "DROP SCHEMA cached_app_test CASCADE",
        _ => "DROP DATABASE cached_app_test",
    };
    db.execute(drop).await;
}

#[tokio::test]
async fn postgres_qualified_tables_are_found_and_their_cascades_followed() {
    qualified_tables_are_found_and_their_cascades_followed(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_qualified_tables_are_found_and_their_cascades_followed() {
    qualified_tables_are_found_and_their_cascades_followed(Backend::MySql).await;
}
