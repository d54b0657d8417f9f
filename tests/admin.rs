//! The admin router (`cached_runtime::admin`) and the client-cache header layer
//! (`cached_runtime::headers`), in-process on every backend: each answer is checked against
//! what the context or a cold read of the database says, writes are refused without the
//! authorization check, and a write's `Cache-Invalidate` header names exactly the keys its
//! commit invalidated.

use crate::common;
use crate::studio_web as web;
use common::domain::*;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use cached_runtime::admin::Admin;
use cached_runtime::headers::InvalidationHeadersLayer;
use cached_runtime::{Context, QueryKey, Source};
use serde_json::{json, Value};
use tower::ServiceExt;

/// The admin router; writes pass with the header `x-admin: yes`.
fn admin(ctx: &Context) -> Router {
    Admin::new(ctx)
        .authorize(|request| request.headers.get("x-admin").is_some_and(|v| v == "yes"))
        .router()
}

/// One request: the status, the body as JSON (or as a string), the `Cache-Invalidate` header.
async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    authorized: bool,
) -> (StatusCode, Value, Option<String>) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if authorized {
        request = request.header("x-admin", "yes");
    }
    let request = request
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let header = response
        .headers()
        .get("cache-invalidate")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, json, header)
}

async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, body, _) = call(router, Method::GET, uri, None, false).await;
    (status, body)
}

/// The items of a `Cache-Invalidate` header, decoded, sorted.
fn items(header: &str) -> Vec<String> {
    let mut items: Vec<String> = header
        .split(',')
        .map(|item| {
            let item = item.trim();
            let mut out = Vec::new();
            let bytes = item.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    out.push(u8::from_str_radix(&item[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
        .collect();
    items.sort();
    items
}

/// The ids a cold context reads for `find_by_status(status)`, as the admin router prints them.
async fn cold_ids(ctx: &Context, status: &str) -> Vec<String> {
    let cold = Context::new(ctx.store().clone());
    let rows = Scene::repo(&cold).find_by_status(status).await.unwrap();
    rows.iter().map(|s| s.id.to_string()).collect()
}

backend_tests! {
    #[tokio::test]
    async fn the_admin_router_shows_what_the_cache_holds_and_drops_what_it_is_told(backend) {
        let (ctx, db) = seeded!(backend);
        let router = admin(&ctx);
        let mut scenes = Scene::repo(&ctx);
        scenes.get(1).await.unwrap();
        scenes.get(2).await.unwrap();
        scenes.find_by_status("draft").await.unwrap();
        scenes.count_by_status("draft").await.unwrap();

        // Lookups: what is cached, what it holds (the database's values), what is not.
        let (status, row) = get(&router, "/lookup?key=scene:1").await;
        assert_eq!(status, StatusCode::OK, "{row}");
        assert_eq!(row["cached"], true, "{row}");
        let title = db.scene(1).await.unwrap().title;
        assert!(row["data"]["values"].to_string().contains(&title), "{row}");
        assert!(row["age_ms"].as_u64().unwrap() <= 2_000, "{row}");
        let (_, list) = get(&router, "/lookup?key=scene%3Fstatus%3Ddraft").await;
        assert_eq!(list["cached"], true, "{list}");
        let ids: Vec<String> = list["data"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, cold_ids(&ctx, "draft").await);
        let (_, count) = get(&router, "/lookup?key=scene%23count%3Fstatus%3Ddraft").await;
        assert_eq!(count["data"]["count"].as_u64(), Some(ids.len() as u64), "{count}");
        let (_, absent) = get(&router, "/lookup?key=scene:77").await;
        assert_eq!(absent["cached"], false, "{absent}");
        let (status, _) = get(&router, "/lookup?key=nothing:1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // A commit shows in the last invalidations, with its keys and source.
        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx).update(1, SceneUpdate::default().status("final")).await.unwrap();
        let report = tx.commit().await.unwrap();
        let (_, recent) = get(&router, "/invalidations").await;
        let newest = &recent["invalidations"][0];
        assert_eq!(newest["source"], "commit", "{recent}");
        let mut shown: Vec<String> = newest["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let mut committed: Vec<String> = report.keys().iter().map(ToString::to_string).collect();
        shown.sort();
        committed.sort();
        assert_eq!(shown, committed);

        // Explain by column values: the same lines as the typed dry run.
        let old = db.scene(2).await.unwrap();
        let new = Scene { status: "final".into(), ..old.clone() };
        let typed = cached_runtime::graph().explain(Some(&old), Some(&new));
        let (status, explained) = get(&router, "/explain?entity=Scene&id=2&set.status=final").await;
        assert_eq!(status, StatusCode::OK, "{explained}");
        let keys: Vec<&str> = explained["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["key"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = typed.lines.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, expected);
        let (status, _) = get(&router, "/explain?entity=Scene&id=2&set.nope=1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = get(&router, "/explain?entity=Scene&id=404&set.status=final").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Writes: refused without the check, done with it.
        let key = json!({ "key": "scene:2" });
        let (status, _, _) = call(&router, Method::POST, "/invalidate", Some(key.clone()), false).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(ctx.is_cached(SceneKey(2)), "a refused write dropped nothing");
        let (status, dropped, _) = call(&router, Method::POST, "/invalidate", Some(key), true).await;
        assert_eq!(status, StatusCode::OK, "{dropped}");
        assert_eq!(dropped["keys"], json!(["scene:2"]));
        assert!(!ctx.is_cached(SceneKey(2)));
        // Behind the cache's back, then announced by entity and id: the next read is fresh.
        scenes.get(3).await.unwrap();
        db.set_scene_title(3, "Renamed outside").await;
        let by_id = json!({ "entity": "Scene", "id": 3 });
        let (status, _, _) = call(&router, Method::POST, "/invalidate", Some(by_id), true).await;
        assert_eq!(status, StatusCode::OK);
        db.assert_scene_fresh(&ctx, 3, "after POST /invalidate {entity, id}").await;
        scenes.find_by_status("draft").await.unwrap();
        let query = json!({ "query": "scene?status=draft" });
        let (_, dropped, _) = call(&router, Method::POST, "/invalidate", Some(query), true).await;
        assert!(dropped["keys"].to_string().contains("scene?status=draft"), "{dropped}");
        assert!(!ctx.is_cached(SceneQuery::ByStatus("draft".into()).list_key()));
        scenes.get(1).await.unwrap();
        let whole = json!({ "entity": "Scene" });
        let (_, dropped, _) = call(&router, Method::POST, "/invalidate", Some(whole), true).await;
        assert_eq!(dropped["entities"], json!(["Scene"]));
        assert!(!ctx.is_cached(SceneKey(1)));
        let (status, _, _) = call(&router, Method::POST, "/invalidate", Some(json!({ "key": "x" })), true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Stats are the context's; a reset needs the check too.
        scenes.get(1).await.unwrap();
        scenes.get(1).await.unwrap();
        let (_, stats) = get(&router, "/stats").await;
        assert_eq!(stats["hits"].as_u64(), Some(ctx.stats().hits), "{stats}");
        let scene_reads = ctx.stats().reads["Scene"];
        assert!(scene_reads.hits >= 2, "{stats}");
        assert_eq!(stats["entities"]["Scene"]["hits"].as_u64(), Some(scene_reads.hits), "{stats}");
        assert_eq!(stats["entities"]["Scene"]["misses"].as_u64(), Some(scene_reads.misses));
        let total: u64 = ctx.stats().reads.values().map(|r| r.hits).sum();
        assert_eq!(total, ctx.stats().hits, "the per-entity hits add up to the total");
        assert_eq!(stats["invalidations"]["Scene"].as_u64(), ctx.stats().invalidations.get("Scene").copied());
        let (status, _, _) = call(&router, Method::POST, "/reset-metrics", None, false).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(ctx.stats().hits > 0);
        let (status, _, _) = call(&router, Method::POST, "/reset-metrics", None, true).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(ctx.stats().hits, 0);

        // The audit: nothing stale, then the row written behind the cache's back.
        let (_, audit) = get(&router, "/audit?sample=100").await;
        assert!(audit["checked"].as_u64().unwrap() >= 1, "{audit}");
        assert_eq!(audit["mismatches"], json!([]), "{audit}");
        db.set_scene_title(1, "Behind the cache").await;
        let (_, audit) = get(&router, "/audit?sample=100").await;
        assert_eq!(audit["mismatches"][0]["key"], "scene:1", "{audit}");
        assert!(audit["mismatches"][0]["database"].to_string().contains("Behind the cache"));
        let (status, _) = get(&router, "/audit?sample=1000000").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // The graph, in each format, and the debug page.
        let (status, svg) = get(&router, "/graph?format=svg").await;
        assert_eq!(status, StatusCode::OK);
        let svg = svg.as_str().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains(">Scene<"), "{svg}");
        let (_, mermaid) = get(&router, "/graph?format=mermaid").await;
        assert!(mermaid.as_str().unwrap().contains("Scene -->|chapter_id| Chapter"), "{mermaid}");
        let (status, _) = get(&router, "/graph?format=png").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, page) = get(&router, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.as_str().unwrap().contains("Last invalidations"));
    }

    #[tokio::test]
    async fn a_writes_response_names_exactly_the_keys_its_commit_invalidated(backend) {
        let (ctx, db) = seeded!(backend);
        let api = web::router(ctx.clone());
        let committed = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = committed.clone();
        ctx.on_invalidate(move |event| {
            if event.source == Source::Commit {
                seen.lock().unwrap().extend(event.keys.iter().map(ToString::to_string));
            }
        });
        // A read names nothing.
        let (status, _, header) = call(&api, Method::GET, "/scenes/1", None, false).await;
        assert_eq!((status, header), (StatusCode::OK, None));
        let (_, _, header) = call(&api, Method::GET, "/scenes/counts", None, false).await;
        assert_eq!(header, None);

        // A status change: the header is the commit's keys, no more, no less.
        let patch = json!({ "status": "final" });
        let (status, body, header) = call(&api, Method::PATCH, "/scenes/1", Some(patch), false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let header = header.expect("a write names what it invalidated");
        let mut expected = committed.lock().unwrap().clone();
        expected.sort();
        expected.dedup();
        assert_eq!(items(&header), expected);
        for key in ["scene:1", "scene?status=draft", "scene?status=final", "scene#count_by(status)"] {
            assert!(expected.iter().any(|k| k == key), "{key} in {expected:?}");
        }
        db.assert_scene_fresh(&ctx, 1, "after the PATCH").await;

        // A failed write names nothing (and changed nothing).
        committed.lock().unwrap().clear();
        let (status, _, header) =
            call(&api, Method::PATCH, "/scenes/404", Some(json!({ "title": "x" })), false).await;
        assert_eq!((status, header), (StatusCode::NOT_FOUND, None));

        // Over the cap: one `name:*` per entity.
        let capped = Router::new()
            .route(
                "/touch",
                axum::routing::post(|axum::extract::State(ctx): axum::extract::State<Context>| async move {
                    let mut scenes = Scene::repo(&ctx);
                    for id in 1..=3 {
                        scenes.update(id, SceneUpdate::default().title(format!("Long title {id}"))).await.unwrap();
                    }
                    "done"
                }),
            )
            .layer(InvalidationHeadersLayer::new().max_bytes(16))
            .with_state(ctx.clone());
        let (status, _, header) = call(&capped, Method::POST, "/touch", None, false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header.as_deref(), Some("scene:*"));
        db.assert_scene_fresh(&ctx, 3, "after the capped write").await;
    }
}
