//! Two entity types with the same Rust name in different modules (`billing::Receipt`,
//! `support::Receipt`), each with a namespace of its own (`#[cache(name = "...")]`): every
//! place that names an entity outside the type system tells them apart by namespace. A
//! whole-entity invalidation of either puts its own `name:*` in `Cache-Invalidate` (it named
//! the first type registered under the type name, so a browser kept the other's entries), and
//! the admin router finds each by its namespace (the type name, which is ambiguous, it refuses
//! rather than pick one). The stats, which are by type name, sum the two.

use axum::body::Body;
use axum::http::Request;
use axum::routing::post;
use axum::Router;
use cached_runtime::admin::Admin;
use cached_runtime::headers::InvalidationHeadersLayer;
use cached_runtime::{CommitReport, Context};
use sqlx::sqlite::SqlitePoolOptions;
use tower::ServiceExt;

mod billing {
    use cached_runtime::prelude::*;

    #[derive(CachedEntity, Clone, Debug, PartialEq)]
    #[cache(table = "billing_receipts", name = "billing_receipt")]
    pub struct Receipt {
        #[cache(id)]
        pub id: i64,
        pub total: i64,
    }
}

mod support {
    use cached_runtime::prelude::*;

    #[derive(CachedEntity, Clone, Debug, PartialEq)]
    #[cache(table = "support_receipts", name = "support_receipt")]
    pub struct Receipt {
        #[cache(id)]
        pub id: i64,
        pub note: String,
    }
}

async fn context() -> Context {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE billing_receipts (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)",
        "CREATE TABLE support_receipts (id INTEGER PRIMARY KEY, note TEXT NOT NULL)",
        "INSERT INTO billing_receipts VALUES (1, 10)",
        "INSERT INTO support_receipts VALUES (1, 'late')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    Context::new(pool)
}

/// The `Cache-Invalidate` header of a request whose handler runs `invalidate`.
async fn header_of(ctx: &Context, invalidate: fn(&Context)) -> Option<String> {
    let ctx = ctx.clone();
    let router = Router::new()
        .route("/", post(move || async move { invalidate(&ctx) }))
        .layer(InvalidationHeadersLayer::new());
    let request = Request::post("/").body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    let header = response.headers().get("cache-invalidate");
    header.map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_whole_entity_invalidation_names_its_own_namespace() {
    let ctx = context().await;
    assert_eq!(
        header_of(&ctx, |ctx| drop(
            ctx.invalidate_entity::<billing::Receipt>()
        ))
        .await,
        Some("billing_receipt:*".to_owned())
    );
    assert_eq!(
        header_of(&ctx, |ctx| drop(
            ctx.invalidate_entity::<support::Receipt>()
        ))
        .await,
        Some("support_receipt:*".to_owned())
    );
    // And each drops its own entries, not the other's.
    let billed = billing::Receipt::repo(&ctx).get(1).await.unwrap().unwrap();
    let noted = support::Receipt::repo(&ctx).get(1).await.unwrap().unwrap();
    assert_eq!((billed.total, noted.note.as_str()), (10, "late"));
    let hits = ctx.stats().hits;
    ctx.invalidate_entity::<support::Receipt>();
    billing::Receipt::repo(&ctx).get(1).await.unwrap();
    assert_eq!(
        ctx.stats().hits,
        hits + 1,
        "billing's entry outlived support's invalidation"
    );
    support::Receipt::repo(&ctx).get(1).await.unwrap();
    assert_eq!(
        ctx.stats().hits,
        hits + 1,
        "support's entry survived its invalidation"
    );
}

/// The stats are by type name: the two `Receipt`s' counts are summed, neither one lost.
#[tokio::test]
async fn the_stats_sum_the_types_of_one_name() {
    let ctx = context().await;
    billing::Receipt::repo(&ctx).get(1).await.unwrap();
    support::Receipt::repo(&ctx).get(1).await.unwrap();
    support::Receipt::repo(&ctx).get(1).await.unwrap();
    // Counted as the stats count: each key dropped, and each whole-entity (or query) bump.
    let counted = |report: CommitReport| (report.keys().len() + report.entities().len()) as u64;
    let billed = counted(ctx.invalidate::<billing::Receipt>(1));
    let noted = counted(ctx.invalidate::<support::Receipt>(1));
    assert!(billed > 0 && noted > 0);
    let stats = ctx.stats();
    let reads = stats.reads["Receipt"];
    assert_eq!((reads.misses, reads.hits), (2, 1), "{:?}", stats.reads);
    let invalidated = stats.invalidations["Receipt"];
    assert_eq!(invalidated, billed + noted, "{:?}", stats.invalidations);
}

#[tokio::test]
async fn the_admin_router_finds_each_by_its_namespace() {
    let ctx = context().await;
    billing::Receipt::repo(&ctx).get(1).await.unwrap();
    let router = Admin::new(&ctx).router();
    let lookup = |key: &'static str| {
        let router = router.clone();
        async move {
            let uri = format!("/lookup?key={key}");
            let response = router
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, body) = lookup("billing_receipt:1").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""cached":true"#), "{body}");
    let (status, body) = lookup("support_receipt:1").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""cached":false"#), "{body}");
    // `Receipt` could be either: refused, rather than read as whichever registered first.
    let (status, body) = lookup("Receipt:1").await;
    assert_eq!(status, 400, "{body}");
}
