//! The consistency auditor: take a sample of what the cache holds, read the same from the
//! database, and report what differs, the way Meta's Polaris measures cache consistency.
//!
//! A cached entry and a database read are not taken at the same instant, so a difference can
//! be a commit caught between the two. The auditor therefore only counts an entry that is
//! still the very same entry after its database read (one dropped or refilled meanwhile is
//! *skipped*), and a difference only once it has outlived a second settle delay and a second
//! read: a commit that was landing has dropped the entry by then. What is left is an entry
//! the cache serves that the database contradicts.
//!
//! Rows (and "no such row" entries), query id lists and counts are checked. Views, pages,
//! grouped counts, extremes and joined rows are skipped (counted): they are computed from
//! the entries checked here, and their invalidation is checked by the test suite.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cache::{EntryData, LocalCache};
use crate::context::Context;
use crate::error::Result;
use crate::key::CacheKey;
use crate::registry;
use crate::stats::Counters;
use crate::store::{id_position, key_of, Store};
use crate::value::{KeyValue, Value};

/// How long the auditor lets in-flight commits land: after sampling, and again before it
/// calls a difference a mismatch.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(50);

/// What [`Context::audit`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditReport {
    /// Entries compared with the database: matches plus mismatches.
    pub checked: usize,
    /// Entries equal to the database.
    pub matched: usize,
    /// Entries not compared: dropped or refilled while being audited, or of a kind the
    /// auditor does not read (views, pages, aggregates).
    pub skipped: usize,
    /// Entries the cache serves that the database contradicts.
    pub mismatches: Vec<Mismatch>,
}

/// One cached entry that differs from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The entry's key (`scene:42`, `scene?status=draft`).
    pub key: String,
    /// What the cache holds.
    pub cached: String,
    /// What the database holds.
    pub database: String,
}

impl AuditReport {
    /// The share of checked entries that matched (1.0 when nothing was checked): Polaris's
    /// consistency figure, "nines" once written as `1 - x`.
    pub fn consistency(&self) -> f64 {
        if self.checked == 0 {
            return 1.0;
        }
        self.matched as f64 / self.checked as f64
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audited {} entries: {} matched, {} mismatched, {} skipped",
            self.checked,
            self.matched,
            self.mismatches.len(),
            self.skipped
        )?;
        for m in &self.mismatches {
            write!(
                f,
                "\n  {}: cached {}, database {}",
                m.key, m.cached, m.database
            )?;
        }
        Ok(())
    }
}

/// An entry as the auditor compares it.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A row's values as its entity writes them, or `None`: no such row.
    Row(Option<Vec<Value>>),
    /// The ids of a query, ordered by id.
    Ids(Vec<KeyValue>),
    Count(i64),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Row(None) => f.write_str("no row"),
            Seen::Row(Some(values)) => write!(f, "{values:?}"),
            Seen::Ids(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", ids.join(", "))
            }
            Seen::Count(n) => write!(f, "{n}"),
        }
    }
}

/// The cached entry as compared, or `None` for a kind the auditor skips.
fn cached(key: &CacheKey, data: &EntryData) -> Option<Seen> {
    let meta = registry::entity_of(key.namespace())?;
    match (key.row_id(), data) {
        (Some(_), EntryData::Missing) => Some(Seen::Row(None)),
        (Some(_), EntryData::Row(row)) => {
            let codec = registry::codec_of(meta)?;
            Some(Seen::Row(Some(codec.cached(row.as_any())?)))
        }
        (None, EntryData::Ids(ids)) if !key.is_count() => Some(Seen::Ids(ids.to_vec())),
        (None, EntryData::Count(n)) if key.is_count() => Some(Seen::Count(*n)),
        _ => None,
    }
}

/// The same entry as the database has it now.
async fn stored(store: &Store, key: &CacheKey) -> Result<Option<Seen>> {
    let Some(meta) = registry::entity_of(key.namespace()) else {
        return Ok(None);
    };
    let mut ops = store.ops();
    if let Some(id) = key.row_id() {
        let Some(codec) = registry::codec_of(meta) else {
            return Ok(None);
        };
        let row = ops.fetch_by_id(meta, id, false).await?;
        // A stored row the entity cannot decode is shown raw: it differs from any cached row.
        return Ok(Some(Seen::Row(
            row.map(|row| codec.stored(row.clone()).unwrap_or(row)),
        )));
    }
    let Some(predicate) = key.predicate() else {
        return Ok(None);
    };
    if key.is_count() {
        return Ok(Some(Seen::Count(ops.count_where(meta, predicate).await?)));
    }
    let at = id_position(meta);
    let rows = ops.fetch_where(meta, predicate).await?;
    Ok(Some(Seen::Ids(
        rows.iter().map(|row| key_of(&row[at])).collect(),
    )))
}

/// Whether `key` still holds exactly `data`.
fn unchanged(cache: &LocalCache, key: &CacheKey, data: &EntryData) -> bool {
    cache.get(key).is_some_and(|now| now.same(data))
}

impl Context {
    /// Audits up to `sample` cached entries against the database ([`DEFAULT_SETTLE`] between
    /// the reads): see [`Context::audit_with`].
    pub async fn audit(&self, sample: usize) -> Result<AuditReport> {
        self.audit_with(sample, DEFAULT_SETTLE).await
    }

    /// Picks up to `sample` entries the cache would serve now, lets `settle` pass (commits in
    /// flight land), reads each from the database, and reports matches, mismatches (with the
    /// key and both values) and skipped entries. One database read per entry (two for one
    /// that differs); reads nothing it could not compare. Safe under load: it never changes
    /// the cache.
    pub async fn audit_with(&self, sample: usize, settle: Duration) -> Result<AuditReport> {
        let engine = self.engine();
        let (cache, store) = (&engine.cache, &engine.store);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        let mut report = AuditReport::default();
        let mut held = Vec::new();
        for key in cache.sample_keys(sample, seed) {
            match cache.get(&key) {
                Some(data) => held.push((key, data)),
                None => report.skipped += 1,
            }
        }
        tokio::time::sleep(settle).await;
        for (key, data) in held {
            let Some(in_cache) = cached(&key, &data) else {
                report.skipped += 1;
                continue;
            };
            let mut in_database = stored(store, &key).await?;
            if !unchanged(cache, &key, &data) {
                report.skipped += 1;
                continue;
            }
            if in_database.as_ref() != Some(&in_cache) {
                // Either stale, or a commit between the two reads whose apply is on its way.
                tokio::time::sleep(settle).await;
                in_database = stored(store, &key).await?;
                if !unchanged(cache, &key, &data) {
                    report.skipped += 1;
                    continue;
                }
            }
            match in_database {
                None => report.skipped += 1,
                Some(seen) if seen == in_cache => report.matched += 1,
                Some(seen) => report.mismatches.push(Mismatch {
                    key: key.to_string(),
                    cached: in_cache.to_string(),
                    database: seen.to_string(),
                }),
            }
        }
        report.checked = report.matched + report.mismatches.len();
        Ok(report)
    }
}

/// A background auditor ([`Context::start_auditor`]): it audits a sample of the cache on a
/// schedule until it is dropped (or the context is).
#[must_use = "the auditor stops when this handle is dropped"]
pub struct Auditor {
    task: tokio::task::JoinHandle<()>,
    last: Arc<Mutex<Option<AuditReport>>>,
}

impl Auditor {
    /// The report of its last pass (`None` before the first one ended).
    pub fn last_report(&self) -> Option<AuditReport> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Auditor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("last_report", &self.last_report())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Starts auditing in the background: every `every`, [`Context::audit`] of `sample`
    /// entries. Each pass adds to [`Stats::audit_checked`](crate::Stats::audit_checked) and
    /// [`Stats::audit_mismatches`](crate::Stats::audit_mismatches) (the
    /// `cached_consistency_ratio` metric), and logs each mismatch as a warning (target
    /// `cached`). The load it puts on the database is bounded: at most `2 * sample` reads per
    /// pass, so `sample / every` entries per second. Call it inside a Tokio runtime; the
    /// auditor stops when the returned handle or the context is dropped.
    pub fn start_auditor(&self, sample: usize, every: Duration) -> Auditor {
        let engine = Arc::downgrade(self.engine());
        let last = Arc::new(Mutex::new(None));
        let record = last.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                let ctx = Context::from_engine(engine);
                let report = match ctx.audit(sample).await {
                    Ok(report) => report,
                    Err(err) => {
                        tracing::warn!(target: "cached", %err, "audit pass failed: skipped");
                        continue;
                    }
                };
                let counters = &ctx.engine().cache.counters;
                Counters::add(&counters.audit_checked, report.checked as u64);
                Counters::add(&counters.audit_mismatches, report.mismatches.len() as u64);
                for m in &report.mismatches {
                    tracing::warn!(
                        target: "cached",
                        key = %m.key,
                        cached = %m.cached,
                        database = %m.database,
                        "audit: the cache serves what the database contradicts"
                    );
                }
                *record.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
            }
        });
        Auditor { task, last }
    }
}
