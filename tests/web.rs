//! Errors to HTTP, end to end: the studio's web API (`examples/studio/web.rs`, axum) answered
//! in-process on every backend. Each error the repository returns reaches the client as its
//! status and a safe message, and no failed request changes the cache.

use crate::common;
use crate::studio_web as web;
use common::domain;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cached_runtime::{Context, ErrorDetail};
use serde_json::{json, Value};
use tower::ServiceExt;

/// One request through the router: the status, the JSON body, and the response's
/// `ErrorDetail`, if any.
async fn call(
    ctx: &Context,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let response = web::router(ctx.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let detail = response
        .extensions()
        .get::<ErrorDetail>()
        .map(|d| d.0.clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, detail)
}

backend_tests! {
    #[tokio::test]
    async fn request_bodies_are_the_generated_types_and_pages_travel_as_cursors(backend) {
        let (ctx, db) = seeded!(backend);
        // PATCH with the generated `SceneUpdate`: present fields change, absent ones stay,
        // `null` clears a nullable column.
        call(&ctx, Method::PATCH, "/scenes/1", Some(json!({ "location_id": 1 }))).await;
        let (status, scene, _) =
            call(&ctx, Method::PATCH, "/scenes/1", Some(json!({ "title": "Renamed" }))).await;
        assert_eq!(status, StatusCode::OK, "{scene}");
        assert_eq!((scene["title"].as_str(), scene["location_id"].as_i64()), (Some("Renamed"), Some(1)));
        let (status, scene, _) =
            call(&ctx, Method::PATCH, "/scenes/1", Some(json!({ "location_id": null }))).await;
        assert_eq!(status, StatusCode::OK, "{scene}");
        assert_eq!(scene["location_id"], Value::Null);
        assert_eq!(scene["title"], "Renamed");
        let stored = db.scene(1).await.unwrap();
        assert_eq!((stored.title.as_str(), stored.location_id), ("Renamed", None));
        db.assert_scene_fresh(&ctx, 1, "after the patches").await;
        // Refused before anything runs: an unknown field, the version, a null title.
        for body in [json!({ "titel": "x" }), json!({ "version": 9 }), json!({ "title": null })] {
            let (status, _, _) = call(&ctx, Method::PATCH, "/scenes/1", Some(body.clone())).await;
            assert!(status.is_client_error(), "{body}: {status}");
        }
        assert_eq!(db.scene(1).await.unwrap().version, stored.version);
        let (status, body, _) =
            call(&ctx, Method::PATCH, "/scenes/99", Some(json!({ "title": "x" }))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        // POST the generated `NewNote`; the database makes the ids (an integer id: not on
        // MongoDB, whose generated ids are ObjectIds).
        if !backend.is_mongo() {
            let mut made = Vec::new();
            for n in 0..5 {
                let note = json!({ "scene_id": 2, "body": format!("note {n}") });
                let (status, stored, _) = call(&ctx, Method::POST, "/notes", Some(note)).await;
                assert_eq!(status, StatusCode::CREATED, "{stored}");
                made.push(stored["id"].as_i64().unwrap());
            }
            let (status, _, _) =
                call(&ctx, Method::POST, "/notes", Some(json!({ "scene_id": 2, "body": "x", "id": 1 }))).await;
            assert!(status.is_client_error(), "the id is the database's to make");

            // Pages of notes through `?after=`: every note once, in order.
            let mut seen = Vec::new();
            let mut uri = "/scenes/2/notes?limit=2".to_string();
            loop {
                let (status, page, _) = call(&ctx, Method::GET, &uri, None).await;
                assert_eq!(status, StatusCode::OK, "{page}");
                seen.extend(page["rows"].as_array().unwrap().iter().map(|n| n["id"].as_i64().unwrap()));
                match page["next"].as_str() {
                    Some(next) => uri = format!("/scenes/2/notes?limit=2&after={next}"),
                    None => break,
                }
            }
            assert_eq!(seen, made);
            // A cursor that is not one, or another scene's: 400 with a message, never a page.
            let (status, body, _) = call(&ctx, Method::GET, "/scenes/2/notes?after=garbage", None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body["error"].as_str().unwrap().contains("cursor"), "{body}");
            let (_, first, _) = call(&ctx, Method::GET, "/scenes/2/notes?limit=1", None).await;
            let next = first["next"].as_str().unwrap();
            let (status, body, _) =
                call(&ctx, Method::GET, &format!("/scenes/3/notes?after={next}"), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        }

        // Grouped counts: cached, and fresh after a PATCH that moves a scene to another status.
        let cold = || async {
            let cold = Context::new(db.store.clone());
            let groups = domain::Scene::repo(&cold).count_grouped_by_status().await.unwrap();
            json!(groups.into_iter().collect::<std::collections::BTreeMap<_, _>>())
        };
        let (status, counts, _) = call(&ctx, Method::GET, "/scenes/counts", None).await;
        assert_eq!((status, &counts), (StatusCode::OK, &cold().await));
        let (status, _, _) =
            call(&ctx, Method::PATCH, "/scenes/3", Some(json!({ "status": "cut" }))).await;
        assert_eq!(status, StatusCode::OK);
        let (_, after, _) = call(&ctx, Method::GET, "/scenes/counts", None).await;
        assert_eq!(after, cold().await);
        assert_eq!(after["cut"], 1, "{after}");

        // A scene's characters through the join entity (generated integer ids: not on MongoDB).
        if !backend.is_mongo() {
            let cold = || async {
                let cold = Context::new(db.store.clone());
                let characters = domain::Appearance::repo(&cold).characters_by_scene_id(2).await.unwrap();
                json!(characters.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
            };
            let (status, none, _) = call(&ctx, Method::GET, "/scenes/2/characters", None).await;
            assert_eq!((status, &none), (StatusCode::OK, &json!([])));
            let (status, first, _) = call(&ctx, Method::PUT, "/scenes/2/characters/2", None).await;
            assert_eq!(status, StatusCode::OK, "{first}");
            let (_, again, _) = call(&ctx, Method::PUT, "/scenes/2/characters/2", None).await;
            assert_eq!(again["id"], first["id"], "attaching twice keeps the one appearance");
            call(&ctx, Method::PUT, "/scenes/2/characters/1", None).await;
            let (_, both, _) = call(&ctx, Method::GET, "/scenes/2/characters", None).await;
            assert_eq!((&both, &both), (&json!(["Tom", "Mara"]), &cold().await));
            domain::Character::repo(&ctx)
                .update(2, domain::CharacterUpdate::default().name("Thomas"))
                .await
                .unwrap();
            let (_, renamed, _) = call(&ctx, Method::GET, "/scenes/2/characters", None).await;
            assert_eq!((&renamed, &renamed), (&json!(["Thomas", "Mara"]), &cold().await));
            let (status, _, _) = call(&ctx, Method::DELETE, "/scenes/2/characters/2", None).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let (status, _, _) = call(&ctx, Method::DELETE, "/scenes/2/characters/2", None).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (_, left, _) = call(&ctx, Method::GET, "/scenes/2/characters", None).await;
            assert_eq!((&left, &left), (&json!(["Mara"]), &cold().await));
            let (status, body, _) = call(&ctx, Method::PUT, "/scenes/2/characters/99", None).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }

        // `require`, outside the router too.
        let err = domain::Scene::repo(&ctx).require(99).await.unwrap_err();
        assert_eq!(err.http_status(), 404);
        assert_eq!(domain::Scene::repo(&ctx).require(2).await.unwrap().id, 2);
    }

    #[tokio::test]
    async fn repository_errors_become_http_statuses(backend) {
        let (ctx, db) = seeded!(backend);
        let (status, scene, _) = call(&ctx, Method::GET, "/scenes/1", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((scene["title"].as_str(), scene["version"].as_i64()), (Some("Scene 1"), Some(1)));

        let (status, body, _) = call(&ctx, Method::GET, "/scenes/99", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({ "error": "Scene with id 99 does not exist", "status": 404 }));

        // Two clients read version 1; the second to save gets 409 and nothing changes.
        let edit = |title: &str| Some(json!({ "title": title, "version": 1 }));
        let (status, saved, _) = call(&ctx, Method::PUT, "/scenes/1", edit("First")).await;
        assert_eq!((status, saved["version"].as_i64()), (StatusCode::OK, Some(2)));
        let (status, body, _) = call(&ctx, Method::PUT, "/scenes/1", edit("Second")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["error"].as_str().unwrap().contains("expected version 1"), "{body}");
        db.assert_scene_fresh(&ctx, 1, "after the 409").await;
        assert_eq!(db.scene(1).await.unwrap().title, "First");

        // A duplicate id is a 409 (a unique constraint), with no database text in the body.
        let duplicate = serde_json::to_value(common::scene(2, 1, "draft", 1)).unwrap();
        let (status, body, _) = call(&ctx, Method::POST, "/scenes", Some(duplicate)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"], "unique constraint violation on Scene");
        let created = serde_json::to_value(common::scene(7, 1, "draft", 1)).unwrap();
        let (status, _, _) = call(&ctx, Method::POST, "/scenes", Some(created)).await;
        assert_eq!(status, StatusCode::CREATED);

        if !backend.is_mongo() {
            // The SQL schemas refuse an empty title (CHECK): 422, the constraint's name hidden.
            let (status, body, _) = call(&ctx, Method::PUT, "/scenes/2", Some(json!({ "title": "", "version": 1 }))).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(body["error"], "check constraint violation on Scene");
            db.assert_scene_fresh(&ctx, 2, "after the 422").await;
        }

        let (status, outline, _) = call(&ctx, Method::GET, "/stories/1/outline", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(outline["title"], "The Long Night");
        let (status, _, _) = call(&ctx, Method::DELETE, "/scenes/7", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        // The database gone: 500, a fixed message in the body, the real error for the logs.
        db.close().await;
        let (status, body, detail) = call(&ctx, Method::GET, "/scenes/98", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({ "error": "internal error", "status": 500 }));
        assert!(detail.is_some_and(|d| !d.is_empty()), "the 500 carries its detail for logging");
    }
}
