//! The PostgreSQL change feed: statement-level triggers on every cached table that `NOTIFY`
//! the changed rows' id and key-forming values, delivered at commit, in commit order, to a
//! connection that `LISTEN`s.
//!
//! Why triggers and `NOTIFY` rather than logical decoding (see README, "Writes from outside"):
//! a notification is queued inside the writing transaction and delivered only if it commits,
//! after every transaction that committed before it, so a marker notified by `catch_up` is an
//! exact barrier; the transition tables carry the old and new values of every row whatever
//! the table's `REPLICA IDENTITY`; and nothing is retained for a consumer that stops (a
//! replication slot keeps WAL until it is dropped, and fills the disk of a primary whose
//! consumer died). What a lost connection misses cannot be replayed: the cache is cleared and
//! refuses fills until the feed listens again, then cleared once more.
//!
//! A notification holds at most 8000 bytes: a statement's rows go in chunks of
//! [`CHUNK_ROWS`], and a chunk that still does not fit says "the whole table" instead.

use serde_json::Value as Json;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row as _};
use tokio::sync::oneshot;

use super::{reconnect, Event, Image, OfflineOnExit, Op, RowChange, Tables, Task, HEARTBEAT};
use super::{ChangeFeed, FeedSetup, Source};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::value::KeyValue;

/// The channel the triggers notify on.
const CHANNEL: &str = "cached_feed";
/// The payload format; a payload of another version is undecodable (the cache is cleared).
const VERSION: u64 = 1;
/// Rows per notification.
const CHUNK_ROWS: usize = 32;
/// The triggers on each table: name, event, transition tables.
const TRIGGERS: [(&str, &str, &str); 4] = [
    (
        "cached_feed_ins",
        "INSERT",
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "cached_feed_upd",
        "UPDATE",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "cached_feed_del",
        "DELETE",
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    ),
    ("cached_feed_trunc", "TRUNCATE", "FOR EACH STATEMENT"),
];

/// The name of a table's trigger function (in the table's schema): readable, and unique
/// within PostgreSQL's 63-byte identifiers.
fn function_name(table: &str) -> String {
    if table.len() <= 40
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return format!("cached_feed_{table}");
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut hasher);
    let prefix: String = table
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect();
    format!("cached_feed_{prefix}_{:08x}", hasher.finish() as u32)
}

/// The body of a table's trigger function. The columns are named in the function itself
/// (static SQL, planned once per session), so only the id and the key-forming values travel:
/// `{"v":1,"s":schema,"t":table,"c":[columns],"o":[[old values]...],"n":[[new values]...]}`,
/// 32 rows of each to a notification (old and new rows of an update in the same order), or
/// `"whole": true` when a chunk does not fit in 8000 bytes, and for `TRUNCATE`.
fn function_body(columns: &[&str]) -> String {
    let names: Vec<String> = columns.iter().map(|c| literal(c)).collect();
    let values: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let (names, values) = (names.join(", "), values.join(", "));
    let chunks = |rows: &str| {
        format!(
            "(SELECT (k - 1) / {CHUNK_ROWS} AS g, json_agg(json_build_array({values}) ORDER BY k) \
             AS rows FROM (SELECT {values}, row_number() OVER () AS k FROM {rows}) x GROUP BY 1)"
        )
    };
    let notify = |fields: &str, from: String| {
        format!(
            "PERFORM pg_notify('{CHANNEL}', CASE WHEN octet_length(p) < 7900 THEN p ELSE whole END)
    FROM (SELECT json_build_object('v', {VERSION}, 's', TG_TABLE_SCHEMA, 't', TG_TABLE_NAME,
      'at', at, 'c', json_build_array({names}), {fields})::text AS p FROM {from}) chunks;"
        )
    };
    let old = chunks("old_rows");
    let new = chunks("new_rows");
    format!(
        "
DECLARE
  at float8 := extract(epoch from clock_timestamp());
  whole text := json_build_object('v', {VERSION}, 's', TG_TABLE_SCHEMA, 't', TG_TABLE_NAME,
    'at', at, 'whole', true)::text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('{CHANNEL}', whole);
  ELSIF TG_OP = 'INSERT' THEN
    {}
  ELSIF TG_OP = 'DELETE' THEN
    {}
  ELSE
    {}
  END IF;
  RETURN NULL;
END
",
        notify("'n', n.rows", format!("{new} n")),
        notify("'o', o.rows", format!("{old} o")),
        notify(
            "'o', o.rows, 'n', n.rows",
            format!("{old} o FULL JOIN {new} n USING (g)")
        ),
    )
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQL identifier.
fn ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The statements that create (or replace) each table's function and triggers.
fn setup_statements(tables: &Tables) -> Vec<String> {
    let mut out = Vec::new();
    for ((schema, table), columns) in tables.columns() {
        let function = format!("{}.{}", ident(&schema), ident(&function_name(&table)));
        out.push(format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql \
             SET search_path = pg_catalog AS $cached_feed${}$cached_feed$",
            function_body(&columns)
        ));
        for (name, event, referencing) in TRIGGERS {
            out.push(format!(
                "CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {}.{} {referencing} \
                 EXECUTE FUNCTION {function}()",
                ident(&schema),
                ident(&table),
            ));
        }
    }
    out
}

impl ChangeFeed {
    /// A change feed on PostgreSQL: triggers on every cached table notify the changed rows at
    /// commit. With [`FeedSetup::Install`] the function and the triggers are created (or
    /// replaced, so a new build's key-forming columns are carried); with
    /// [`FeedSetup::Verify`] they must exist already ([`ChangeFeed::postgres_setup_sql`] is
    /// what an operator runs). Fails when the database cannot be reached, a cached table or
    /// column is missing, or the setup is missing or stale.
    pub async fn postgres(pool: &PgPool, setup: FeedSetup) -> Result<ChangeFeed> {
        let store = Store::from(pool.clone());
        let tables = Tables::of_sql(&store).await?;
        match setup {
            FeedSetup::Install => install(pool, &tables).await?,
            FeedSetup::Verify => verify(pool, &tables).await?,
        }
        // The listening connection is the feed's own, outside the pool's limit: the
        // application's pool keeps every connection it was sized for.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .connect_lazy_with((*pool.connect_options()).clone());
        let listener = listen(&listen_pool).await.map_err(Error::Database)?;
        Ok(ChangeFeed::new(Source::Postgres(Listening {
            pool: pool.clone(),
            listen_pool,
            listener,
            tables,
        })))
    }

    /// The SQL that [`FeedSetup::Install`] runs for the entities of this build, for an
    /// operator to review and run (the function, then four triggers per cached table).
    pub async fn postgres_setup_sql(pool: &PgPool) -> Result<String> {
        let tables = Tables::of_sql(&Store::from(pool.clone())).await?;
        Ok(setup_statements(&tables).join(";\n\n") + ";\n")
    }
}

/// Creates the function and the triggers, in one transaction, serialized among instances that
/// start together.
async fn install(pool: &PgPool, tables: &Tables) -> Result<()> {
    let mut tx = pool.begin().await.map_err(Error::Database)?;
    sqlx::query("SELECT pg_advisory_xact_lock(7263311425)")
        .execute(&mut *tx)
        .await
        .map_err(Error::Database)?;
    for statement in setup_statements(tables) {
        sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
    }
    tx.commit().await.map_err(Error::Database)
}

/// Checks that every cached table has its function, with the body this build would install
/// (so it carries the columns this build needs), and the four triggers calling it.
async fn verify(pool: &PgPool, tables: &Tables) -> Result<()> {
    let triggers = sqlx::query(
        "SELECT n.nspname, c.relname, t.tgname, p.proname, p.prosrc \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE t.tgname LIKE 'cached\\_feed\\_%'",
    )
    .fetch_all(pool)
    .await
    .map_err(Error::Database)?;
    let mut problems = Vec::new();
    for ((schema, table), columns) in tables.columns() {
        let (function, body) = (function_name(&table), function_body(&columns));
        for (name, _, _) in TRIGGERS {
            let found = triggers.iter().any(|row| {
                row.get::<String, _>(0).eq_ignore_ascii_case(&schema)
                    && row.get::<String, _>(1).eq_ignore_ascii_case(&table)
                    && row.get::<String, _>(2) == name
                    && row.get::<String, _>(3) == function
                    && row.get::<String, _>(4) == body
            });
            if !found {
                problems.push(format!(
                    "{schema}.{table}: trigger `{name}` is missing, or its function `{function}` \
                     is not the one this build installs (it carries other columns)"
                ));
            }
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => {
            problems.push(
                "run the SQL of `ChangeFeed::postgres_setup_sql`, or use `FeedSetup::Install`"
                    .to_string(),
            );
            Err(Error::Schema { problems })
        }
    }
}

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// A listening connection, before the context starts the feed's task.
pub(crate) struct Listening {
    /// The application's pool (markers are notified through it).
    pool: PgPool,
    /// A pool of one connection, the feed's own: the listener, and its replacements.
    listen_pool: PgPool,
    listener: PgListener,
    tables: Tables,
}

impl Listening {
    pub fn marker(&self) -> Marker {
        Marker {
            pool: self.pool.clone(),
        }
    }
}

/// Notifies `catch_up`'s markers.
pub(crate) struct Marker {
    pool: PgPool,
}

impl Marker {
    /// Commits a marker notification (one statement, so it commits at once).
    pub async fn emit(&self, mark: u64) -> Result<()> {
        // With the time it was sent, like the triggers' payloads: a feed that was behind and
        // sees its marker on time has caught up.
        sqlx::query(
            "SELECT pg_notify($1, json_build_object('v', $2::int, 'mark', $3::bigint, \
             'at', extract(epoch from clock_timestamp()))::text)",
        )
        .bind(CHANNEL)
        .bind(VERSION as i32)
        .bind(mark as i64)
        .execute(&self.pool)
        .await
        .map_err(Error::Database)?;
        Ok(())
    }
}

/// Applies notifications until the context is dropped; after a lost connection, takes the
/// cache offline and listens again on a new one.
pub(crate) async fn run(
    listening: Listening,
    task: Task,
    mut stop: oneshot::Receiver<()>,
    _offline_on_exit: OfflineOnExit,
) {
    let Listening {
        listen_pool,
        listener,
        tables,
        ..
    } = listening;
    let mut listener = Some(listener);
    loop {
        let mut current = match listener.take() {
            Some(listener) => listener,
            None => {
                match reconnect(&task, &mut stop, || async {
                    listen(&listen_pool).await.ok()
                })
                .await
                {
                    Some(listener) => listener,
                    None => return,
                }
            }
        };
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(HEARTBEAT, current.try_recv()) => next,
                _ = &mut stop => return,
            };
            match next {
                Ok(Ok(Some(notification))) => {
                    let (event, written) = decode(notification.payload());
                    if !task.handle(&tables, event, written) {
                        return;
                    }
                }
                // Closed or failed: what was notified meanwhile is lost.
                Ok(Ok(None)) | Ok(Err(_)) => break,
                // Quiet: a connection that does not answer a query in time counts as lost.
                Err(_) => {
                    let ping = sqlx::query("SELECT 1").execute(&mut current);
                    if !matches!(tokio::time::timeout(HEARTBEAT, ping).await, Ok(Ok(_))) {
                        break;
                    }
                    task.quiet();
                }
            }
        }
        drop(current);
        if !task.lost() {
            return;
        }
    }
}

/// Reads one notification's payload, and when its statement ran by the database's clock
/// (`at`, seconds since the epoch).
pub(crate) fn decode(payload: &str) -> (Event, Option<std::time::SystemTime>) {
    let Ok(json) = serde_json::from_str::<Json>(payload) else {
        return (Event::Undecodable, None);
    };
    let at = json
        .get("at")
        .and_then(Json::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(s));
    (decode_json(&json), at)
}

fn decode_json(json: &Json) -> Event {
    if json.get("v").and_then(Json::as_u64) != Some(VERSION) {
        return Event::Undecodable;
    }
    if let Some(mark) = json.get("mark") {
        return mark.as_u64().map_or(Event::Undecodable, Event::Mark);
    }
    let (Some(schema), Some(table)) = (
        json.get("s").and_then(Json::as_str),
        json.get("t").and_then(Json::as_str),
    ) else {
        return Event::Undecodable;
    };
    let (schema, table) = (schema.to_string(), table.to_string());
    if json.get("whole").and_then(Json::as_bool) == Some(true) {
        return Event::Whole { schema, table };
    }
    let columns: Option<Vec<&str>> = json
        .get("c")
        .and_then(Json::as_array)
        .map(|c| c.iter().map(Json::as_str).collect())
        .unwrap_or(None);
    let Some(columns) = columns.filter(|c| !c.is_empty()) else {
        return Event::Undecodable;
    };
    // Each side: absent or null (no such rows), or rows of one value per column.
    let side = |name: &str| -> Option<Vec<&Vec<Json>>> {
        match json.get(name) {
            None | Some(Json::Null) => Some(Vec::new()),
            Some(Json::Array(rows)) => rows
                .iter()
                .map(|row| row.as_array().filter(|r| r.len() == columns.len()))
                .collect(),
            Some(_) => None,
        }
    };
    let (Some(old), Some(new)) = (side("o"), side("n")) else {
        return Event::Undecodable;
    };
    let image = |values: &Vec<Json>| -> Image {
        columns
            .iter()
            .zip(values)
            .filter_map(|(c, v)| Some((c.to_string(), key_value(v)?)))
            .collect()
    };
    // An update's old and new rows come in the same order; pair them by id (the first
    // column), so that a row whose id changed is a delete and an insert.
    let mut new: Vec<Option<&Vec<Json>>> = new.into_iter().map(Some).collect();
    let mut rows = Vec::with_capacity(old.len().max(new.len()));
    for (i, before) in old.iter().enumerate() {
        let same = |after: &Option<&Vec<Json>>| after.is_some_and(|a| a.first() == before.first());
        let paired = match new.get(i).is_some_and(same) {
            true => Some(i),
            false => new.iter().position(same),
        };
        let after = paired.and_then(|at| new[at].take());
        rows.push(RowChange {
            op: if after.is_some() {
                Op::Update
            } else {
                Op::Delete
            },
            old: Some(image(before)),
            new: after.map(image),
            assigned: None,
        });
    }
    for after in new.into_iter().flatten() {
        rows.push(RowChange {
            op: Op::Insert,
            old: None,
            new: Some(image(after)),
            assigned: None,
        });
    }
    Event::Rows {
        schema,
        table,
        rows,
    }
}

/// A JSON scalar as a key value; `None` for what no key holds (numbers with a fraction,
/// arrays, objects): the column then counts as not carried.
fn key_value(json: &Json) -> Option<KeyValue> {
    match json {
        Json::Null => Some(KeyValue::Null),
        Json::Bool(b) => Some(KeyValue::Bool(*b)),
        Json::Number(n) => n.as_i64().map(KeyValue::Int),
        Json::String(s) => Some(KeyValue::Text(s.as_str().into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rows_marks_and_refuses_the_rest() {
        let (rows, _) = decode(
            r#"{"v":1,"s":"public","t":"scenes","c":["id","status"],"o":[[2,"a"],[3,"x"],[4,"y"]],"n":[[2,"b"],[5,"y"],[1,"draft"]]}"#,
        );
        let Event::Rows { rows, table, .. } = rows else {
            panic!("rows expected, got {rows:?}");
        };
        assert_eq!(table, "scenes");
        assert_eq!(
            rows.iter().map(|r| r.op).collect::<Vec<_>>(),
            [Op::Update, Op::Delete, Op::Delete, Op::Insert, Op::Insert]
        );
        assert_eq!(
            rows[0].new.as_ref().unwrap()[1],
            ("status".to_string(), KeyValue::Text("b".into()))
        );
        assert_eq!(decode(r#"{"v":1,"mark":7}"#).0, Event::Mark(7));
        assert!(matches!(
            decode(r#"{"v":1,"s":"public","t":"scenes","whole":true,"at":1.5}"#).0,
            Event::Whole { .. }
        ));
        let (_, at) = decode(r#"{"v":1,"s":"public","t":"scenes","whole":true,"at":1.5}"#);
        assert_eq!(
            at,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1500))
        );
        for bad in [
            "not json",
            r#"{"v":2,"mark":7}"#,
            r#"{"v":1,"s":"public","t":"scenes","c":["id"],"n":[[1,2]]}"#,
            r#"{"v":1,"s":"public","t":"scenes","c":[],"n":[]}"#,
            r#"{"v":1,"s":"public","t":"scenes","c":["id"],"o":7}"#,
        ] {
            assert_eq!(decode(bad).0, Event::Undecodable, "{bad}");
        }
    }
}
