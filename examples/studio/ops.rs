//! What the studio's web mode serves besides its API: the admin router and its debug page
//! (`/admin`), Prometheus metrics (`/metrics`), and a page (`/`) whose browser-side cache
//! drops exactly the entries the `Cache-Invalidate` header of each write names.
//!
//! Writes through the admin router (`POST /admin/invalidate`, `POST /admin/reset-metrics`)
//! need the header `x-admin-token` equal to `STUDIO_ADMIN_TOKEN` from the environment; with
//! no token set they are refused.

use axum::response::{Html, Redirect};
use axum::routing::get;
use axum::Router;
use cached_runtime::admin::Admin;
use cached_runtime::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// `/`, `/metrics` and `/admin/...`.
pub fn router(ctx: &Context, metrics: PrometheusHandle) -> Router {
    let token = std::env::var("STUDIO_ADMIN_TOKEN").ok();
    let admin = Admin::new(ctx)
        .authorize(move |request| {
            let sent = request.headers.get("x-admin-token");
            matches!((&token, sent), (Some(token), Some(sent)) if sent.as_bytes() == token.as_bytes())
        })
        .router();
    let ctx = ctx.clone();
    Router::new()
        .route("/", get(|| async { Html(include_str!("client.html")) }))
        .route(
            "/metrics",
            get(move || async move {
                ctx.record_metrics();
                metrics.render()
            }),
        )
        .nest("/admin", admin)
        // A nested router's `/` answers `/admin` only: send the trailing-slash form there.
        .route("/admin/", get(|| async { Redirect::permanent("/admin") }))
}
