//! The MySQL / MariaDB change feed: the row-based binary log, read the way a replica reads it
//! (`mysql_async`'s binlog stream), from the position `SHOW MASTER STATUS` gave when the feed
//! started, and after a loss from the position of the last event applied.
//!
//! The server must log rows with their column names: `log_bin`, `binlog_format = ROW`,
//! `binlog_row_image = FULL` and `binlog_row_metadata = FULL` ([`ChangeFeed::mysql`] checks
//! them). Every row event carries the old and the new row whole, so a change drops exactly
//! what the same write through the repository drops. A statement the log holds as text (DDL,
//! `TRUNCATE`) clears the cache: whatever it changed, dropping everything covers it.
//! `catch_up` waits until the feed has applied the log up to the position the server reported
//! when it was called.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable as _;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts, Value as MyValue};
use sqlx::{MySqlPool, Row as _};
use tokio::sync::oneshot;

use super::{reconnect, Event, Image, OfflineOnExit, Op, RowChange, Tables, Task, HEARTBEAT};
use super::{ChangeFeed, Source};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::value::KeyValue;

/// A place in the binary log: a file and an offset in it. Files are numbered in order
/// (`mariadb-bin.000007`), so positions compare as (file, offset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub file: String,
    pub offset: u64,
}

/// The server settings the feed needs, and what each must be.
const SETTINGS: [(&str, &str); 4] = [
    ("log_bin", "1"),
    ("binlog_format", "ROW"),
    ("binlog_row_image", "FULL"),
    ("binlog_row_metadata", "FULL"),
];

impl ChangeFeed {
    /// A change feed on MySQL or MariaDB: the row-based binary log, read over a replication
    /// connection to `replication_url` (a user with `REPLICATION SLAVE` and
    /// `REPLICATION CLIENT`; the pool's own URL will do when its user has them). Fails when the
    /// server does not log rows with their names (the error lists the settings to change), a
    /// cached table or column is missing, or the log cannot be read.
    pub async fn mysql(pool: &MySqlPool, replication_url: &str) -> Result<ChangeFeed> {
        let tables = Tables::of_sql(&Store::from(pool.clone())).await?;
        check_settings(pool).await?;
        let start = master_status(pool).await?;
        let opts = Opts::from_url(replication_url).map_err(|e| Error::ChangeFeed {
            message: format!("the replication URL is not valid: {e}"),
        })?;
        let server_id = replica_id();
        let stream = open(&opts, server_id, &start)
            .await
            .map_err(|e| Error::ChangeFeed {
                message: format!("cannot read the binary log at {start:?}: {e}"),
            })?;
        Ok(ChangeFeed::new(Source::MySql(Tailing {
            pool: pool.clone(),
            opts,
            server_id,
            stream,
            position: start,
            tables,
        })))
    }
}

/// Refuses a server that does not log what the feed needs.
async fn check_settings(pool: &MySqlPool) -> Result<()> {
    let mut problems = Vec::new();
    for (name, wanted) in SETTINGS {
        let sql = sqlx::AssertSqlSafe(format!("SELECT CAST(@@{name} AS CHAR)"));
        let found: Option<String> = sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .map_err(Error::Database)?;
        let found = found.unwrap_or_default();
        // A boolean reads back as `1` or `ON`, depending on the server.
        let on = wanted == "1" && found.eq_ignore_ascii_case("ON");
        if !found.eq_ignore_ascii_case(wanted) && !on {
            problems.push(format!(
                "the change feed needs `{name} = {wanted}` (the server has `{found}`): set it in \
                 the server's configuration (`log_bin`, `binlog_format=ROW`, \
                 `binlog_row_image=FULL`, `binlog_row_metadata=FULL`, a `server_id`) and restart it"
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Error::Schema { problems }),
    }
}

/// Where the server is writing its binary log now.
async fn master_status(pool: &MySqlPool) -> Result<Position> {
    let row = sqlx::query("SHOW MASTER STATUS")
        .fetch_optional(pool)
        .await
        .map_err(Error::Database)?
        .ok_or_else(|| Error::ChangeFeed {
            message: "the server keeps no binary log (`log_bin` is off)".to_string(),
        })?;
    let file: String = row.try_get(0).map_err(Error::Database)?;
    let offset: u64 = row.try_get(1).map_err(Error::Database)?;
    Ok(Position { file, offset })
}

/// A server id for this reader, distinct from the server's and (by chance) other readers'.
fn replica_id() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    let id = RandomState::new().hash_one((std::process::id(), SystemTime::now())) as u32;
    id.max(2)
}

/// Opens a binlog stream at `from`; the server sends a heartbeat every second it has nothing
/// to send, so a dead connection shows.
async fn open(opts: &Opts, server_id: u32, from: &Position) -> mysql_async::Result<BinlogStream> {
    let mut conn = Conn::new(opts.clone()).await?;
    conn.query_drop("SET @master_heartbeat_period = 1000000000")
        .await?;
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(from.file.as_bytes())
        .with_pos(from.offset);
    conn.get_binlog_stream(request).await
}

/// A binlog stream, before the context starts the feed's task.
pub(crate) struct Tailing {
    pool: MySqlPool,
    opts: Opts,
    server_id: u32,
    stream: BinlogStream,
    position: Position,
    tables: Tables,
}

impl Tailing {
    pub fn marker(&self) -> Marker {
        Marker {
            pool: self.pool.clone(),
        }
    }
}

/// Reads where the log ends for `catch_up`.
pub(crate) struct Marker {
    pool: MySqlPool,
}

impl Marker {
    /// The position of the end of the log now: everything committed before is before it.
    pub async fn position(&self) -> Result<Position> {
        master_status(&self.pool).await
    }
}

/// Applies the log's events until the context is dropped; after a loss, takes the cache
/// offline and reads again from the last position applied (or, when the server no longer has
/// it, from the end of the log: the cache was cleared meanwhile).
pub(crate) async fn run(
    tailing: Tailing,
    task: Task,
    mut stop: oneshot::Receiver<()>,
    _offline_on_exit: OfflineOnExit,
) {
    let Tailing {
        pool,
        opts,
        server_id,
        stream,
        mut position,
        tables,
    } = tailing;
    let mut stream = Some(stream);
    task.at_position(&position);
    loop {
        let mut current = match stream.take() {
            Some(stream) => stream,
            None => {
                let from = position.clone();
                let (opts, pool) = (&opts, &pool);
                let reopened = reconnect(&task, &mut stop, || {
                    let from = from.clone();
                    async move {
                        match open(opts, server_id, &from).await {
                            Ok(stream) => Some((stream, from)),
                            Err(_) => {
                                let now = master_status(pool).await.ok()?;
                                let stream = open(opts, server_id, &now).await.ok()?;
                                Some((stream, now))
                            }
                        }
                    }
                })
                .await;
                match reopened {
                    Some((stream, from)) => {
                        position = from;
                        stream
                    }
                    None => return,
                }
            }
        };
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(HEARTBEAT * 5, current.next()) => next,
                _ = &mut stop => return,
            };
            let event = match next {
                Ok(Some(Ok(event))) => event,
                // A closed stream, an error, or a server that stopped sending heartbeats.
                Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
            };
            let header = event.header();
            let written = UNIX_EPOCH + Duration::from_secs(u64::from(header.timestamp()));
            let (decoded, rotated) = match event.read_data() {
                // The artificial rotate a stream starts with (`log_pos` 0) names the file the
                // feed asked for, read before the stream says whether events carry a checksum:
                // only a real rotate (the server moved to a new file) moves the position.
                Ok(Some(EventData::RotateEvent(rotate))) if header.log_pos() > 0 => (
                    None,
                    Some(Position {
                        file: rotate.name().into_owned(),
                        offset: rotate.position(),
                    }),
                ),
                Ok(Some(EventData::RowsEvent(rows))) => {
                    let decoded = match current.get_tme(rows.table_id()) {
                        Some(tme) => decode_rows(&rows, tme),
                        None => Event::Undecodable,
                    };
                    (Some(decoded), None)
                }
                Ok(Some(EventData::QueryEvent(query))) => {
                    let text = query.query();
                    (
                        (!harmless_statement(&text)).then_some(Event::Undecodable),
                        None,
                    )
                }
                Ok(Some(EventData::HeartbeatEvent)) => {
                    task.quiet();
                    (None, None)
                }
                Ok(_) => (None, None),
                Err(_) => (Some(Event::Undecodable), None),
            };
            if let Some(decoded) = decoded {
                if !task.handle(&tables, decoded, Some(written)) {
                    return;
                }
            }
            match rotated {
                Some(rotated) => position = rotated,
                // A fake rotate or a heartbeat says 0: not a place in the file.
                None if header.log_pos() > 0 => position.offset = u64::from(header.log_pos()),
                None => {}
            }
            task.at_position(&position);
        }
        drop(current);
        if !task.lost() {
            return;
        }
    }
}

/// Whether a statement the row log carries as text changes no row: a transaction's bounds,
/// savepoints (rows rolled back to one were never logged, or are logged and only drop keys),
/// and the comments MariaDB sends in place of events a plain replica does not read
/// (`# Dummy event replacing ...`). Anything else (DDL, `TRUNCATE`, a statement logged as
/// text) is undecodable and clears the cache.
fn harmless_statement(text: &str) -> bool {
    const HARMLESS: [&str; 7] = [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "XA ",
        "SAVEPOINT ",
        "RELEASE SAVEPOINT ",
        "#",
    ];
    let text = text.trim_start();
    // `get` rather than indexing: a statement may start with any character, and slicing
    // inside one would panic and stop the feed.
    HARMLESS.iter().any(|word| {
        text.get(..word.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(word))
    })
}

/// One rows event: its table and each row's before and after image.
fn decode_rows(rows: &RowsEventData<'_>, tme: &TableMapEvent<'_>) -> Event {
    let op = match rows {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Insert,
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
        _ => Op::Update,
    };
    let mut changes = Vec::new();
    for row in rows.rows(tme) {
        let Ok((before, after)) = row else {
            return Event::Undecodable;
        };
        changes.push(RowChange {
            op,
            old: before.as_ref().map(image),
            new: after.as_ref().map(image),
            assigned: None,
        });
    }
    Event::Rows {
        schema: tme.database_name().into_owned(),
        table: tme.table_name().into_owned(),
        rows: changes,
    }
}

/// A row image by column name (a column the log does not name, `@3`, is left out: the feed
/// then drops more, never less).
fn image(row: &BinlogRow) -> Image {
    row.columns_ref()
        .iter()
        .enumerate()
        .filter_map(|(i, column)| {
            let value = key_value(row.as_ref(i)?)?;
            Some((column.name_str().into_owned(), value))
        })
        .collect()
}

/// A logged value as a key value; `None` for what no key holds.
fn key_value(value: &BinlogValue<'_>) -> Option<KeyValue> {
    match value {
        BinlogValue::Value(MyValue::NULL) => Some(KeyValue::Null),
        BinlogValue::Value(MyValue::Int(i)) => Some(KeyValue::Int(*i)),
        BinlogValue::Value(MyValue::UInt(u)) => i64::try_from(*u).ok().map(KeyValue::Int),
        BinlogValue::Value(MyValue::Bytes(bytes)) => std::str::from_utf8(bytes)
            .ok()
            .map(|text| KeyValue::Text(text.into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::harmless_statement;

    #[test]
    fn transaction_bounds_and_savepoints_change_no_row() {
        for text in [
            "BEGIN",
            "  commit",
            "ROLLBACK TO SAVEPOINT `sp`",
            "SAVEPOINT sqlx_savepoint_1",
            "RELEASE SAVEPOINT sqlx_savepoint_1",
            "XA START 'x'",
            "# Dummy event replacing event type 160",
        ] {
            assert!(harmless_statement(text), "{text}");
        }
    }

    #[test]
    fn anything_else_is_not_harmless_whatever_its_first_characters() {
        for text in [
            "TRUNCATE scenes",
            "ALTER TABLE scenes ADD COLUMN x INT",
            "/*\u{e9}*/ CREATE TABLE t (id INT)",
            "\u{e9}",
            "\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}",
            "SAVEPOINTS",
            "",
        ] {
            assert!(!harmless_statement(text), "{text}");
        }
    }
}
