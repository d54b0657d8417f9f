//! Metrics through the `metrics` facade, read back from a real Prometheus recorder: loads
//! and their latency per entity, invalidations per entity and source, the counts of `Stats`
//! handed over by `record_metrics` (growing by what happened since, never backwards, even
//! across `reset_stats`), and the entries gauge. One recorder per process, so the backends
//! run one after the other in one test and each compares what it added.

#[macro_use]
mod common;
use common::domain::*;
use common::Backend;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

fn recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
        .clone()
}

/// The value of the series `name` whose labels include every `labels` pair (0 if none).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            (series_name == name && wanted).then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

async fn exercise(backend: Backend) {
    let handle = recorder();
    let (ctx, _db) = seeded!(backend);
    let before = handle.render();
    let mut scenes = Scene::repo(&ctx);
    for _ in 0..3 {
        scenes.get(1).await.unwrap();
    }
    scenes.find_by_status("draft").await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    Scene::repo(&mut tx)
        .update(1, SceneUpdate::default().status("final"))
        .await
        .unwrap();
    let report = tx.commit().await.unwrap();
    ctx.record_metrics();
    let after = handle.render();
    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };

    let stats = ctx.stats();
    assert_eq!(
        grew("cached_hits_total", &[]),
        stats.hits as f64,
        "{backend:?}: {after}"
    );
    assert_eq!(
        grew("cached_misses_total", &[]),
        stats.misses as f64,
        "{backend:?}"
    );
    assert!(stats.hits >= 2, "{stats}");
    let hit = [("entity", "Scene"), ("result", "hit")];
    assert_eq!(
        grew("cached_reads_total", &hit),
        stats.reads["Scene"].hits as f64,
        "{after}"
    );
    let scene = [("entity", "Scene")];
    let loads = grew("cached_loads_total", &scene);
    assert!(
        loads >= 2.0,
        "{backend:?}: the get and the query loaded: {after}"
    );
    assert_eq!(
        grew("cached_load_duration_seconds_count", &scene),
        loads,
        "{backend:?}"
    );
    let invalidated = report
        .keys()
        .iter()
        .filter(|k| k.namespace().type_name == "Scene")
        .count() as f64;
    assert!(invalidated >= 3.0, "{report}");
    assert_eq!(
        grew(
            "cached_invalidations_total",
            &[("entity", "Scene"), ("source", "commit")]
        ),
        invalidated,
        "{backend:?}: {after}"
    );
    assert_eq!(
        value(&after, "cached_entries", &[]),
        ctx.entry_count() as f64
    );

    // Nothing happened: nothing added. A reset: the counters go on from where they were.
    ctx.record_metrics();
    let again = handle.render();
    assert_eq!(
        value(&again, "cached_hits_total", &[]),
        value(&after, "cached_hits_total", &[])
    );
    ctx.reset_stats();
    ctx.invalidate_key(SceneKey(2));
    scenes.get(2).await.unwrap();
    scenes.get(2).await.unwrap();
    assert_eq!(ctx.stats().hits, 1);
    ctx.record_metrics();
    let reset = handle.render();
    assert_eq!(
        value(&reset, "cached_hits_total", &[]) - value(&again, "cached_hits_total", &[]),
        1.0,
        "{backend:?}: a reset of the stats never makes a counter go backwards"
    );
}

#[tokio::test]
async fn the_recorder_sees_loads_invalidations_and_every_count() {
    for backend in [
        Backend::Sqlite,
        Backend::Postgres,
        Backend::MySql,
        Backend::Mongo,
    ] {
        exercise(backend).await;
    }
}
