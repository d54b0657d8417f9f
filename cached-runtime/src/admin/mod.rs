//! The admin router (the `axum` feature): what the cache holds and does, over HTTP, and a
//! debug page for a browser. Mount it under a path and behind the authentication of your
//! own application:
//!
//! ```no_run
//! # async fn demo(ctx: cached_runtime::Context) {
//! use cached_runtime::admin::Admin;
//!
//! let admin = Admin::new(&ctx)
//!     // Writes (`POST`) are refused unless this says yes: here, a shared secret header.
//!     .authorize(|request| {
//!         request.headers.get("x-admin-token").is_some_and(|t| t == "s3cret")
//!     })
//!     .router();
//! let app: axum::Router = axum::Router::new().nest("/admin", admin);
//! # }
//! ```
//!
//! | route | answers |
//! |---|---|
//! | `GET /` | the debug page: live stats, the graph, the last invalidations, a key lookup |
//! | `GET /stats` | [`Stats`](crate::Stats) as JSON, with the entry count |
//! | `GET /graph?format=svg\|mermaid\|dot\|html` | the invalidation graph |
//! | `GET /explain?entity=Scene&id=42&set.status=published` | what that write would invalidate (`op=insert`/`delete` too) |
//! | `GET /lookup?key=scene:42` | whether the key is cached, since when, until when, and what it holds |
//! | `GET /invalidations` | the last invalidations applied, newest first, with their source |
//! | `GET /audit?sample=100` | a [`Context::audit`](crate::Context::audit) of that many entries |
//! | `POST /invalidate` | drops `{"key": "scene:42"}`, `{"entity": "Scene", "id": "42"}`, `{"query": "scene?status=draft"}` or `{"entity": "Scene"}` |
//! | `POST /reset-metrics` | [`Context::reset_stats`](crate::Context::reset_stats) |
//!
//! The router refuses every `POST` with 403 unless [`Admin::authorize`] was given a check
//! and the check passes. The `GET` routes answer anyone who reaches the router: put your
//! authentication in front of all of it (a `tower` layer on the nested router) when the
//! keys and values the cache holds are not for everyone.

mod keys;
mod page;
mod recent;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value as Json_};

use crate::cache::EntryData;
use crate::context::Context;
use crate::key::CacheKey;
use crate::report::CommitReport;
use crate::value::KeyValue;
use recent::RecentLog;

/// The most entries one `GET /audit` may sample.
const MAX_AUDIT_SAMPLE: usize = 1000;

type Check = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Builds the admin router of a context ([`admin::router`](router) for the defaults).
#[must_use = "call `.router()` to get the router"]
pub struct Admin {
    ctx: Context,
    authorize: Option<Check>,
    keep: usize,
}

/// The state every route shares.
struct Shared {
    ctx: Context,
    authorize: Option<Check>,
    recent: Arc<RecentLog>,
}

impl Admin {
    /// The admin router of `ctx`: read-only until [`Admin::authorize`] is given a check.
    pub fn new(ctx: &Context) -> Self {
        Admin {
            ctx: ctx.clone(),
            authorize: None,
            keep: 100,
        }
    }

    /// Lets through the writes (`POST /invalidate`, `POST /reset-metrics`) of the requests
    /// `check` accepts (it sees the method, URI and headers); every other write is answered
    /// 403.
    pub fn authorize(mut self, check: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.authorize = Some(Arc::new(check));
        self
    }

    /// How many of the last invalidations `GET /invalidations` and the debug page show
    /// (100 by default). They are recorded from when the router is built.
    pub fn keep(mut self, invalidations: usize) -> Self {
        self.keep = invalidations.max(1);
        self
    }

    /// The router, to mount with `Router::nest` (it works under any state type).
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let recent = Arc::new(RecentLog::new(self.keep));
        let log = recent.clone();
        self.ctx.on_invalidate(move |event| log.push(event));
        let shared = Arc::new(Shared {
            ctx: self.ctx,
            authorize: self.authorize,
            recent,
        });
        Router::new()
            .route("/", get(page::debug_page))
            .route("/stats", get(stats))
            .route("/graph", get(graph))
            .route("/explain", get(explain))
            .route("/lookup", get(lookup))
            .route("/invalidations", get(invalidations))
            .route("/audit", get(audit))
            .route("/invalidate", post(invalidate))
            .route("/reset-metrics", post(reset_metrics))
            .with_state(shared)
    }
}

/// The admin router of `ctx` with the defaults: every `GET` route, and every write refused
/// (see [`Admin::authorize`]).
pub fn router<S: Clone + Send + Sync + 'static>(ctx: &Context) -> Router<S> {
    Admin::new(ctx).router()
}

type Shared_ = State<Arc<Shared>>;
type Params = Query<HashMap<String, String>>;

/// A JSON error with its status.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn stats(State(shared): Shared_) -> Json<Json_> {
    let ctx = &shared.ctx;
    let s = ctx.stats();
    // Per entity or view: its reads and the keys of it invalidated.
    let mut entities = serde_json::Map::new();
    let names = s.reads.keys().chain(s.invalidations.keys());
    for name in names {
        let reads = s.reads.get(name).copied().unwrap_or_default();
        entities.insert(
            (*name).to_string(),
            json!({
                "hits": reads.hits,
                "misses": reads.misses,
                "invalidated": s.invalidations.get(name).copied().unwrap_or(0),
            }),
        );
    }
    Json(json!({
        "entries": ctx.entry_count(),
        "bytes": ctx.engine().cache.bytes(),
        "hits": s.hits,
        "misses": s.misses,
        "hit_rate": s.hit_rate(),
        "loads": s.loads,
        "fills": s.fills,
        "stale_fills_rejected": s.stale_fills_rejected,
        "too_large": s.too_large,
        "single_flight_joins": s.single_flight_joins,
        "broadcasts_sent": s.broadcasts_sent,
        "broadcasts_received": s.broadcasts_received,
        "broadcast_outages": s.broadcast_outages,
        "broadcast_gaps": s.broadcast_gaps,
        "broadcast_silences": s.broadcast_silences,
        "hook_panics": s.hook_panics,
        "feed_events": s.feed_events,
        "feed_outages": s.feed_outages,
        "audit_checked": s.audit_checked,
        "audit_mismatches": s.audit_mismatches,
        "consistency": s.consistency(),
        "invalidations": s.invalidations,
        "entities": entities,
    }))
}

async fn graph(Query(params): Params) -> Response {
    let graph = crate::graph::graph();
    let text = |body: String| ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body);
    match params.get("format").map_or("html", String::as_str) {
        "svg" => ([(header::CONTENT_TYPE, "image/svg+xml")], graph.to_svg()).into_response(),
        "mermaid" => text(graph.to_mermaid()).into_response(),
        "dot" => text(graph.to_dot()).into_response(),
        "html" => page::graph_page(&graph).into_response(),
        other => error(
            StatusCode::BAD_REQUEST,
            format!("unknown format `{other}`: use svg, mermaid, dot or html"),
        ),
    }
}

/// `GET /explain?entity=Scene&id=42&set.status=published`: the row is read from the database
/// (the old values) and the `set.` columns changed (the new ones); `op=insert` takes only the
/// `set.` values, `op=delete` only the stored row.
async fn explain(State(shared): Shared_, Query(params): Params) -> Response {
    let Some(meta) = params.get("entity").and_then(|name| keys::entity(name)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give `entity`: a cached entity's name",
        );
    };
    let op = params.get("op").map_or("update", String::as_str);
    let id = match params.get("id").map(|id| keys::id(meta, id)) {
        Some(Some(id)) => Some(id),
        Some(None) => return error(StatusCode::BAD_REQUEST, "`id` is not an id of the entity"),
        None if op == "insert" => None,
        None => return error(StatusCode::BAD_REQUEST, "give the `id` of the row written"),
    };
    let mut set = Vec::new();
    for (name, text) in &params {
        let Some(column) = name.strip_prefix("set.") else {
            continue;
        };
        let parsed = meta
            .column_position(column)
            .and_then(|at| keys::value(meta.kinds[at], text).map(|v| (at, v)));
        match parsed {
            Some(pair) => set.push(pair),
            None => {
                let message = format!(
                    "`{column}` is not a column of {}, or `{text}` not one of its values",
                    meta.type_name
                );
                return error(StatusCode::BAD_REQUEST, message);
            }
        }
    }
    let stored = match (&id, op) {
        (Some(id), "update" | "delete") => {
            match shared.ctx.store().ops().fetch_by_id(meta, id, false).await {
                Ok(Some(row)) => Some(row),
                Ok(None) => {
                    return error(StatusCode::NOT_FOUND, format!("no {} {id}", meta.type_name))
                }
                Err(err) => return err.into_response(),
            }
        }
        _ => None,
    };
    let new = match op {
        "delete" => None,
        "insert" | "update" => {
            let mut row = stored.clone().unwrap_or_else(|| {
                meta.kinds
                    .iter()
                    .map(|k| crate::value::Value::Null(*k))
                    .collect()
            });
            for (at, value) in set {
                row[at] = value;
            }
            Some(row)
        }
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown op `{other}`: use update, insert or delete"),
            )
        }
    };
    let values = |row: &Vec<crate::value::Value>| crate::graph::row_index_values(meta, row, None);
    let (old, new) = (
        stored.as_ref().and_then(values),
        new.as_ref().and_then(values),
    );
    let explanation = crate::graph::explain_values(meta, id, old.as_deref(), new.as_deref());
    let lines: Vec<Json_> = explanation
        .lines
        .iter()
        .map(|l| json!({ "key": l.key, "reason": l.reason }))
        .collect();
    Json(json!({ "lines": lines, "text": explanation.to_string() })).into_response()
}

/// What an entry holds, as JSON.
fn data_json(key: &CacheKey, data: &EntryData) -> Json_ {
    let ids = |ids: &[KeyValue]| ids.iter().map(ToString::to_string).collect::<Vec<_>>();
    match data {
        EntryData::Missing => json!({ "kind": "no such row" }),
        EntryData::Count(n) => json!({ "kind": "count", "count": n }),
        EntryData::Ids(list) => json!({ "kind": "ids", "ids": ids(list) }),
        EntryData::Rows(rows) => json!({ "kind": "rows", "rows": rows.len() }),
        EntryData::Row(row) => {
            let values = crate::registry::entity_of(key.namespace())
                .and_then(crate::registry::codec_of)
                .and_then(|codec| codec.cached(row.as_any()));
            match values {
                Some(values) => {
                    json!({ "kind": "row", "values": values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>() })
                }
                None => json!({ "kind": "value" }),
            }
        }
    }
}

async fn lookup(State(shared): Shared_, Query(params): Params) -> Response {
    let Some(text) = params.get("key") else {
        return error(
            StatusCode::BAD_REQUEST,
            "give `key`, e.g. scene:42 or scene?status=draft",
        );
    };
    let Some(key) = keys::parse(text) else {
        let message = format!("`{text}` is not a key of an entity or view of this program (forms: scene:42, scene?status=draft, scene?all, scene#count?status=draft, scene#count_by(status))");
        return error(StatusCode::BAD_REQUEST, message);
    };
    let cache = &shared.ctx.engine().cache;
    let answer = match cache.describe(&key) {
        None => json!({ "key": key.to_string(), "cached": false }),
        Some(entry) => json!({
            "key": key.to_string(),
            "cached": entry.readable,
            "held": true,
            "age_ms": entry.age.as_millis() as u64,
            "expires_in_ms": entry.expires_in.map(|d| d.as_millis() as u64),
            "bytes": entry.bytes,
            "data": data_json(&key, &entry.data),
        }),
    };
    Json(answer).into_response()
}

async fn invalidations(State(shared): Shared_) -> Json<Json_> {
    let list: Vec<Json_> = shared
        .recent
        .newest_first()
        .into_iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "at_ms": r.at_ms,
                "source": r.source,
                "keys": r.keys,
                "key_count": r.key_count,
                "entities": r.entities,
            })
        })
        .collect();
    Json(json!({ "invalidations": list }))
}

async fn audit(State(shared): Shared_, Query(params): Params) -> Response {
    let sample = match params.get("sample").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= MAX_AUDIT_SAMPLE => n,
        Some(_) => {
            let message = format!("`sample` is a number of entries up to {MAX_AUDIT_SAMPLE}");
            return error(StatusCode::BAD_REQUEST, message);
        }
    };
    match shared.ctx.audit(sample).await {
        Ok(report) => Json(json!({
            "checked": report.checked,
            "matched": report.matched,
            "skipped": report.skipped,
            "consistency": report.consistency(),
            "mismatches": report.mismatches.iter().map(|m| json!({
                "key": m.key, "cached": m.cached, "database": m.database,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// The refusal to send if `parts` may not write; `None` if it may.
fn refusal(shared: &Shared, parts: &Parts) -> Option<Response> {
    match &shared.authorize {
        Some(check) if check(parts) => None,
        Some(_) => Some(error(StatusCode::FORBIDDEN, "not authorized to write")),
        None => Some(error(
            StatusCode::FORBIDDEN,
            "this admin router is read-only: build it with Admin::new(&ctx).authorize(..) to allow writes",
        )),
    }
}

fn report_json(report: &CommitReport) -> Json<Json_> {
    Json(json!({
        "keys": report.keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "entities": report.entities,
    }))
}

/// `POST /invalidate` with one of `{"key"}`, `{"entity", "id"}`, `{"query"}`, `{"entity"}`.
async fn invalidate(State(shared): Shared_, parts: Parts, body: Json<Json_>) -> Response {
    if let Some(refused) = refusal(&shared, &parts) {
        return refused;
    }
    let field = |name: &str| -> Option<String> {
        match body.get(name)? {
            Json_::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    };
    let ctx = &shared.ctx;
    let bad = |message: String| error(StatusCode::BAD_REQUEST, message);
    let report = if let Some(text) = field("key") {
        match keys::parse(&text) {
            Some(key) => ctx.invalidate_key(key),
            None => return bad(format!("`{text}` is not a key of this program")),
        }
    } else if let Some(text) = field("query") {
        match keys::parse(&text).and_then(|key| {
            let predicate = key.predicate()?.clone();
            let meta = crate::registry::entity_of(key.namespace())?;
            (!key.is_count()).then(|| {
                (
                    CacheKey::list(meta, predicate.clone()),
                    CacheKey::count(meta, predicate),
                )
            })
        }) {
            Some((list, count)) => ctx.invalidate_query_keys(list, count),
            None => {
                return bad(format!(
                    "`{text}` is not a query of this program (scene?status=draft)"
                ))
            }
        }
    } else if let Some(name) = field("entity") {
        let Some(namespace) = keys::namespace(&name) else {
            return bad(format!("no entity or view `{name}` in this program"));
        };
        match (field("id"), crate::registry::entity_of(namespace)) {
            (Some(id), Some(meta)) => match keys::id(namespace, &id) {
                Some(id) => ctx.invalidate_row(meta, id),
                None => return bad(format!("`{id}` is not an id of {name}")),
            },
            (Some(_), None) => return bad(format!("`{name}` is a view: send its key instead")),
            (None, _) => ctx.invalidate_namespace(namespace),
        }
    } else {
        return bad(
            "send {\"key\"}, {\"entity\", \"id\"}, {\"query\"} or {\"entity\"}".to_string(),
        );
    };
    report_json(&report).into_response()
}

async fn reset_metrics(State(shared): Shared_, parts: Parts) -> Response {
    if let Some(refused) = refusal(&shared, &parts) {
        return refused;
    }
    shared.ctx.reset_stats();
    StatusCode::NO_CONTENT.into_response()
}
