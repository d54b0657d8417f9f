//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (the `metrics` feature):
//! the application installs the recorder it likes (Prometheus, OpenTelemetry, StatsD) and
//! the cache reports to it.
//!
//! Two kinds of figures, so that a cache hit records nothing:
//!
//! - **events**, recorded where they happen, all off the hit path: database loads and their
//!   latency, invalidations per entity (views included) and source, the time an apply took,
//!   refused stale fills, and the broadcast's lag;
//! - **counts**, kept by the cache in its own atomic counters (what [`Stats`] reads) and
//!   handed to the recorder by [`Context::record_metrics`](crate::Context::record_metrics):
//!   hits, misses, fills, single-flight joins, broadcasts, outages, feed events, entries, and
//!   the background auditor's figures. Call it before rendering (a `/metrics` handler does).
//!
//! Without the feature every function here is empty and inlined away.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `cached_loads_total`, `cached_load_duration_seconds` | counter, histogram | `entity` |
//! | `cached_invalidations_total` | counter | `entity` (or view), `source` |
//! | `cached_apply_duration_seconds` | histogram | `source` |
//! | `cached_stale_fills_refused_total` | counter | `entity` |
//! | `cached_broadcast_lag_seconds` | histogram | |
//! | `cached_hits_total`, `cached_misses_total`, `cached_fills_total`, ... (one per [`Stats`] count) | counter | |
//! | `cached_reads_total` | counter | `entity`, `result` (`hit`, `miss`) |
//! | `cached_entries`, `cached_bytes` (what they weigh; estimated from a sample under `max_entries`) | gauge | |
//! | `cached_consistency_ratio` | gauge | (the auditor's matched / checked) |

#[cfg(feature = "metrics")]
use std::sync::Mutex;
use std::time::Duration;

use crate::hooks::Source;
use crate::key::CacheKey;
use crate::stats::Stats;

/// The label value of a [`Source`].
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn source_label(source: Source) -> &'static str {
    match source {
        Source::Commit => "commit",
        Source::Manual => "manual",
        Source::FailedCommit => "failed_commit",
        Source::Remote => "remote",
        Source::Feed => "feed",
    }
}

/// A database load of `entity` finished after `took`.
#[inline]
pub(crate) fn load(entity: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("cached_loads_total", "entity" => entity).increment(1);
        metrics::histogram!("cached_load_duration_seconds", "entity" => entity).record(took);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (entity, took);
}

/// An invalidation from `source` applied `keys` and `entities` in `took`.
#[inline]
pub(crate) fn invalidated(
    source: Source,
    keys: &[CacheKey],
    entities: &[&'static str],
    took: Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let source = source_label(source);
        // Counted per entity (a commit drops a handful of keys, mostly of one or two).
        let mut counts: Vec<(&'static str, u64)> = Vec::new();
        let names = keys
            .iter()
            .map(|key| key.namespace().type_name)
            .chain(entities.iter().copied());
        for name in names {
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => counts.push((name, 1)),
            }
        }
        for (entity, n) in counts {
            metrics::counter!("cached_invalidations_total", "entity" => entity, "source" => source)
                .increment(n);
        }
        metrics::histogram!("cached_apply_duration_seconds", "source" => source).record(took);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (source, keys, entities, took);
}

/// Whether applies are timed at all: only when a recorder may want it.
#[inline]
pub(crate) const fn times_applies() -> bool {
    cfg!(feature = "metrics")
}

/// A loaded value of `entity` was refused: a commit overtook its load.
#[inline]
pub(crate) fn stale_fill_refused(entity: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cached_stale_fills_refused_total", "entity" => entity).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = entity;
}

/// A broadcast message was applied `lag` after its sender applied it.
#[inline]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn broadcast_lag(lag: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("cached_broadcast_lag_seconds").record(lag);
    #[cfg(not(feature = "metrics"))]
    let _ = lag;
}

/// What [`Context::record_metrics`](crate::Context::record_metrics) last handed to the
/// recorder, so that each call adds only what happened since (and a reset of the stats does
/// not make a counter go backwards).
#[derive(Default)]
pub(crate) struct Exported {
    #[cfg(feature = "metrics")]
    last: Mutex<Stats>,
}

impl Exported {
    /// Hands `now` to the recorder: each count's growth since the last call as counter
    /// increments, `entries`, `bytes` and the auditor's ratio as gauges.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub fn record(&self, now: &Stats, entries: u64, bytes: u64) {
        #[cfg(feature = "metrics")]
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            for ((name, value), (_, before)) in counts(now).into_iter().zip(counts(&last)) {
                let grown = grown(value, before);
                if grown > 0 {
                    metrics::counter!(name).increment(grown);
                }
            }
            for (entity, reads) in &now.reads {
                let before = last.reads.get(entity).copied().unwrap_or_default();
                for (result, value, before) in [
                    ("hit", reads.hits, before.hits),
                    ("miss", reads.misses, before.misses),
                ] {
                    let grown = grown(value, before);
                    if grown > 0 {
                        metrics::counter!("cached_reads_total", "entity" => *entity, "result" => result)
                            .increment(grown);
                    }
                }
            }
            *last = now.clone();
            metrics::gauge!("cached_entries").set(entries as f64);
            metrics::gauge!("cached_bytes").set(bytes as f64);
            metrics::gauge!("cached_shared_breaker_open")
                .set(f64::from(u8::from(now.shared.breaker_open)));
            if now.audit_checked > 0 {
                metrics::gauge!("cached_consistency_ratio").set(now.consistency());
            }
        }
    }
}

/// What a count added since it was `before`: all of it when it is lower (the stats were
/// reset since).
#[cfg(feature = "metrics")]
fn grown(value: u64, before: u64) -> u64 {
    value.checked_sub(before).unwrap_or(value)
}

/// Every count of [`Stats`], by metric name.
#[cfg(feature = "metrics")]
fn counts(stats: &Stats) -> [(&'static str, u64); 27] {
    [
        ("cached_hits_total", stats.hits),
        ("cached_misses_total", stats.misses),
        ("cached_fills_total", stats.fills),
        ("cached_too_large_total", stats.too_large),
        (
            "cached_single_flight_joins_total",
            stats.single_flight_joins,
        ),
        ("cached_broadcasts_sent_total", stats.broadcasts_sent),
        (
            "cached_broadcasts_received_total",
            stats.broadcasts_received,
        ),
        ("cached_broadcast_outages_total", stats.broadcast_outages),
        ("cached_broadcast_gaps_total", stats.broadcast_gaps),
        ("cached_broadcast_silences_total", stats.broadcast_silences),
        ("cached_broadcast_degraded_total", stats.broadcast_degraded),
        ("cached_broadcast_foreign_total", stats.broadcast_foreign),
        (
            "cached_broadcast_refused_commits_total",
            stats.broadcast_refused_commits,
        ),
        ("cached_outbox_relayed_total", stats.outbox_relayed),
        ("cached_hook_panics_total", stats.hook_panics),
        ("cached_feed_events_total", stats.feed_events),
        ("cached_feed_outages_total", stats.feed_outages),
        ("cached_audit_checked_total", stats.audit_checked),
        ("cached_audit_mismatches_total", stats.audit_mismatches),
        ("cached_warmed_total", stats.warmed),
        ("cached_shared_hits_total", stats.shared.hits),
        ("cached_shared_misses_total", stats.shared.misses),
        ("cached_shared_stores_total", stats.shared.stores),
        (
            "cached_shared_stores_refused_total",
            stats.shared.stores_refused,
        ),
        ("cached_shared_skipped_total", stats.shared.skipped),
        ("cached_shared_errors_total", stats.shared.errors),
        (
            "cached_shared_breaker_opens_total",
            stats.shared.breaker_opens,
        ),
    ]
}
