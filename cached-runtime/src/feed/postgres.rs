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
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{AssertSqlSafe, Row as _};
use tokio::sync::oneshot;

use super::{backoff, Event, Image, OfflineOnExit, Op, RowChange, Tables, Task, HEARTBEAT};
use super::{ChangeFeed, FeedSetup, Source, MIN_BACKOFF};
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

/// The function every trigger runs, in `schema` and naming everything it calls by schema
/// (it runs with the search path of whoever writes). Its arguments: the channel, then the
/// columns to carry (the id first).
fn function_sql(schema: &str) -> String {
    let at = ident(schema);
    format!(
        r#"CREATE OR REPLACE FUNCTION {at}.cached_feed_pick(j jsonb, cols text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog AS $$
  SELECT jsonb_agg(j -> c ORDER BY k) FROM unnest(cols) WITH ORDINALITY AS u(c, k)
$$;
CREATE OR REPLACE FUNCTION {at}.cached_feed_notify() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
DECLARE
  cols text[] := TG_ARGV[1:];
  pairs jsonb;
  payload text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify(TG_ARGV[0], json_build_object('v', {VERSION}, 's', TG_TABLE_SCHEMA,
      't', TG_TABLE_NAME, 'whole', true)::text);
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT jsonb_agg(jsonb_build_array(NULL::jsonb, {at}.cached_feed_pick(to_jsonb(n), cols)))
      INTO pairs FROM new_rows n;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT jsonb_agg(jsonb_build_array({at}.cached_feed_pick(to_jsonb(o), cols), NULL::jsonb))
      INTO pairs FROM old_rows o;
  ELSE
    SELECT jsonb_agg(jsonb_build_array({at}.cached_feed_pick(o.j, cols), {at}.cached_feed_pick(n.j, cols)))
      INTO pairs
      FROM (SELECT to_jsonb(r) AS j FROM old_rows r) o
      FULL JOIN (SELECT to_jsonb(r) AS j FROM new_rows r) n ON (o.j -> cols[1]) = (n.j -> cols[1]);
  END IF;
  FOR payload IN
    SELECT json_build_object('v', {VERSION}, 's', TG_TABLE_SCHEMA, 't', TG_TABLE_NAME,
      'c', cols, 'r', jsonb_agg(e ORDER BY k))::text
    FROM jsonb_array_elements(coalesce(pairs, '[]')) WITH ORDINALITY AS a(e, k)
    GROUP BY (k - 1) / {CHUNK_ROWS}
  LOOP
    IF octet_length(payload) < 7900 THEN
      PERFORM pg_notify(TG_ARGV[0], payload);
    ELSE
      PERFORM pg_notify(TG_ARGV[0], json_build_object('v', {VERSION}, 's', TG_TABLE_SCHEMA,
        't', TG_TABLE_NAME, 'whole', true)::text);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;"#
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

/// The `EXECUTE FUNCTION ...` call of a table's triggers (as `pg_get_triggerdef` prints it,
/// less the function's schema).
fn call(columns: &[&str]) -> String {
    let args: Vec<String> = std::iter::once(CHANNEL)
        .chain(columns.iter().copied())
        .map(literal)
        .collect();
    format!("cached_feed_notify({})", args.join(", "))
}

/// The statements that create (or replace) the function in `schema` and every table's
/// triggers.
fn setup_statements(schema: &str, tables: &Tables) -> Vec<String> {
    let function = ident(schema);
    let mut out = vec![function_sql(schema)];
    for ((schema, table), columns) in tables.columns() {
        for (name, event, referencing) in TRIGGERS {
            out.push(format!(
                "CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {}.{} {referencing} \
                 EXECUTE FUNCTION {function}.{}",
                ident(&schema),
                ident(&table),
                call(&columns)
            ));
        }
    }
    out
}

/// The registered entities by the table the catalog finds for them; a table the catalog does
/// not have, or a column it lacks, is an error naming it (the triggers would carry nulls).
async fn tables(store: &Store) -> Result<Tables> {
    let catalog = store.catalog().await?;
    let mut tables = Tables::default();
    let mut problems = Vec::new();
    let resolved = crate::schema::resolved(&catalog);
    for meta in crate::registry::entities() {
        let Some((_, id)) = resolved.iter().find(|(m, _)| std::ptr::eq(*m, meta)) else {
            problems.push(format!(
                "{}: table `{}` does not exist; the change feed cannot watch it",
                meta.type_name,
                catalog.looked_for(meta.table)
            ));
            continue;
        };
        tables.add(&id.schema, &id.name, meta);
    }
    for ((schema, table), columns) in tables.columns() {
        let id = crate::store::catalog::TableId {
            schema: schema.clone(),
            name: table.clone(),
        };
        let present = catalog.columns_of(&id).unwrap_or_default();
        for column in columns {
            if !present.iter().any(|c| c.name.eq_ignore_ascii_case(column)) {
                problems.push(format!(
                    "{schema}.{table}: column `{column}` does not exist"
                ));
            }
        }
    }
    match problems.is_empty() {
        true => Ok(tables),
        false => Err(Error::Schema { problems }),
    }
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
        let tables = tables(&store).await?;
        match setup {
            FeedSetup::Install => install(pool, &tables).await?,
            FeedSetup::Verify => verify(pool, &tables).await?,
        }
        let listener = listen(pool).await.map_err(Error::Database)?;
        Ok(ChangeFeed::new(Source::Postgres(Listening {
            pool: pool.clone(),
            listener,
            tables,
        })))
    }

    /// The SQL that [`FeedSetup::Install`] runs for the entities of this build, for an
    /// operator to review and run (the function, then four triggers per cached table).
    pub async fn postgres_setup_sql(pool: &PgPool) -> Result<String> {
        let tables = tables(&Store::from(pool.clone())).await?;
        let schema = current_schema(pool).await?;
        Ok(setup_statements(&schema, &tables).join(";\n\n") + ";\n")
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
    let schema = current_schema(pool).await?;
    for statement in setup_statements(&schema, tables) {
        sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
    }
    tx.commit().await.map_err(Error::Database)
}

/// Where the function goes: the first schema of the search path (`public` by default).
async fn current_schema(pool: &PgPool) -> Result<String> {
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await
        .map_err(Error::Database)?;
    schema.ok_or_else(|| Error::Schema {
        problems: vec!["the search path names no schema to create the feed's function in".into()],
    })
}

/// Checks that every cached table has the four triggers, carrying the columns this build
/// needs.
async fn verify(pool: &PgPool, tables: &Tables) -> Result<()> {
    let rows = sqlx::query(
        "SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid) \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname LIKE 'cached\\_feed\\_%'",
    )
    .fetch_all(pool)
    .await
    .map_err(Error::Database)?;
    let mut problems = Vec::new();
    for ((schema, table), columns) in tables.columns() {
        let expected = call(&columns);
        for (name, _, _) in TRIGGERS {
            let found = rows.iter().any(|row| {
                row.get::<String, _>(0).eq_ignore_ascii_case(&schema)
                    && row.get::<String, _>(1).eq_ignore_ascii_case(&table)
                    && row.get::<String, _>(2) == name
                    && row.get::<String, _>(3).ends_with(&expected)
            });
            if !found {
                problems.push(format!(
                    "{schema}.{table}: trigger `{name}` is missing or carries other columns \
                     (expected `{expected}`)"
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
    pool: PgPool,
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
        let payload = serde_json::json!({ "v": VERSION, "mark": mark }).to_string();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
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
        pool,
        listener,
        tables,
    } = listening;
    let mut listener = Some(listener);
    let mut delay = MIN_BACKOFF;
    loop {
        let mut current = match listener.take() {
            Some(listener) => listener,
            None => {
                let attempt = tokio::select! {
                    attempt = listen(&pool) => attempt,
                    _ = &mut stop => return,
                };
                match attempt {
                    Ok(listener) => {
                        if !task.resumed() {
                            return;
                        }
                        delay = MIN_BACKOFF;
                        listener
                    }
                    Err(_) => match backoff(&mut delay, &mut stop).await {
                        true => continue,
                        false => return,
                    },
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
                    if !task.handle(&tables, decode(notification.payload())) {
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
                }
            }
        }
        drop(current);
        if !task.lost() {
            return;
        }
    }
}

/// Reads one notification's payload.
pub(crate) fn decode(payload: &str) -> Event {
    let Ok(json) = serde_json::from_str::<Json>(payload) else {
        return Event::Undecodable;
    };
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
    let (Some(columns), Some(pairs)) = (columns, json.get("r").and_then(Json::as_array)) else {
        return Event::Undecodable;
    };
    let mut rows = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let image = |at: usize| -> std::result::Result<Option<Image>, ()> {
            match pair.get(at) {
                None => Err(()),
                Some(Json::Null) => Ok(None),
                Some(Json::Array(values)) if values.len() == columns.len() => Ok(Some(
                    columns
                        .iter()
                        .zip(values)
                        .filter_map(|(c, v)| Some((c.to_string(), key_value(v)?)))
                        .collect(),
                )),
                Some(_) => Err(()),
            }
        };
        let (Ok(old), Ok(new)) = (image(0), image(1)) else {
            return Event::Undecodable;
        };
        let op = match (&old, &new) {
            (Some(_), Some(_)) => Op::Update,
            (Some(_), None) => Op::Delete,
            (None, Some(_)) => Op::Insert,
            (None, None) => return Event::Undecodable,
        };
        rows.push(RowChange {
            op,
            old,
            new,
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
        let rows = decode(
            r#"{"v":1,"s":"public","t":"scenes","c":["id","status"],"r":[[null,[1,"draft"]],[[2,"a"],[2,"b"]],[[3,"x"],null]]}"#,
        );
        let Event::Rows { rows, table, .. } = rows else {
            panic!("rows expected, got {rows:?}");
        };
        assert_eq!(table, "scenes");
        assert_eq!(
            rows.iter().map(|r| r.op).collect::<Vec<_>>(),
            [Op::Insert, Op::Update, Op::Delete]
        );
        assert_eq!(
            rows[0].new.as_ref().unwrap()[1],
            ("status".to_string(), KeyValue::Text("draft".into()))
        );
        assert_eq!(decode(r#"{"v":1,"mark":7}"#), Event::Mark(7));
        assert!(matches!(
            decode(r#"{"v":1,"s":"public","t":"scenes","whole":true}"#),
            Event::Whole { .. }
        ));
        for bad in [
            "not json",
            r#"{"v":2,"mark":7}"#,
            r#"{"v":1,"s":"public","t":"scenes","c":["id"],"r":[[null,[1,2]]]}"#,
            r#"{"v":1,"s":"public","t":"scenes","c":["id"],"r":[[null,null]]}"#,
        ] {
            assert_eq!(decode(bad), Event::Undecodable, "{bad}");
        }
    }
}
