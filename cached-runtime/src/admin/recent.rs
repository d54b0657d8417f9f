//! The last invalidations a context applied, kept for the debug page (a bounded ring fed by
//! an invalidation hook).

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::hooks::Invalidation;
use crate::metrics::source_label;

/// The most keys kept of one invalidation (the rest are counted, not listed).
const KEYS_KEPT: usize = 50;

/// One applied invalidation, as the debug page lists it.
#[derive(Clone, Debug)]
pub(crate) struct Recent {
    /// A number, counting from 1 since the router was built.
    pub seq: u64,
    /// When it was applied, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `commit`, `manual`, `failed_commit`, `remote` or `feed`.
    pub source: &'static str,
    /// Its first keys.
    pub keys: Vec<String>,
    /// How many keys it dropped in all.
    pub key_count: usize,
    /// Entities invalidated whole.
    pub entities: Vec<&'static str>,
}

/// The ring of the last `capacity` invalidations.
pub(crate) struct RecentLog {
    capacity: usize,
    ring: Mutex<(u64, VecDeque<Recent>)>,
}

impl RecentLog {
    pub fn new(capacity: usize) -> Self {
        RecentLog {
            capacity,
            ring: Mutex::new((0, VecDeque::with_capacity(capacity))),
        }
    }

    /// Keeps `event`, dropping the oldest one when full.
    pub fn push(&self, event: &Invalidation<'_>) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut guard = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let (seq, ring) = &mut *guard;
        *seq += 1;
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(Recent {
            seq: *seq,
            at_ms,
            source: source_label(event.source),
            keys: event
                .keys
                .iter()
                .take(KEYS_KEPT)
                .map(ToString::to_string)
                .collect(),
            key_count: event.keys.len(),
            entities: event.entities.to_vec(),
        });
    }

    /// The invalidations kept, newest first.
    pub fn newest_first(&self) -> Vec<Recent> {
        let guard = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.iter().rev().cloned().collect()
    }
}
