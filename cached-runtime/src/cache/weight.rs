//! What an entry costs in bytes, for a cache bounded by bytes
//! ([`ContextBuilder::max_bytes`](crate::ContextBuilder::max_bytes)) and for the largest
//! entry it keeps ([`ContextBuilder::max_entry_bytes`](crate::ContextBuilder::max_entry_bytes)).
//!
//! A row weighs its struct plus the heap its fields own
//! ([`CachedEntity::heap_size`](crate::CachedEntity::heap_size)); a query entry weighs its ids;
//! a count or a negative entry weighs nothing of its own. Every entry also pays
//! [`PER_ENTRY`]: its key, the entry record and moka's bookkeeping, as measured by
//! `benches/memory.rs`. An entry registered in an index (a view instance or a page under each
//! key it read, a spelling under its fold class) also weighs what its registration holds
//! there, so that `max_bytes` bounds the indexes too: they are released with the entry.

use super::EntryData;
use crate::key::{CacheKey, Predicate};
use crate::value::KeyValue;

/// The bytes every entry costs whatever it holds: the key (in moka's `Arc`), the entry
/// record, moka's node, its hash-table slot and its place in the access-order queue, and the
/// row's `Arc` header. Measured with a counting allocator (`benches/memory.rs`): 462 bytes
/// per cached 119-byte `Scene` row, so about 345 besides the row. The estimate is kept above
/// that, on the safe side: a budget then holds fewer entries rather than more. moka's fixed
/// structures (its frequency sketch, the table's spare capacity) come on top, so a small
/// budget is overshot (see the README).
pub(crate) const PER_ENTRY: usize = 420;

fn key_value_heap(value: &KeyValue) -> usize {
    match value {
        KeyValue::Text(text) => text.len(),
        _ => 0,
    }
}

fn key_heap(key: &CacheKey) -> usize {
    match (key.row_id(), key.predicate()) {
        (Some(id), _) => key_value_heap(id),
        (None, Some(Predicate::Eq(_, value))) => key_value_heap(value),
        (None, Some(Predicate::And(_, values))) => values
            .iter()
            .map(|v| std::mem::size_of::<KeyValue>() + key_value_heap(v))
            .sum(),
        (None, _) => 0,
    }
}

/// The bytes `data` cached under `key` takes, saturated at `u32::MAX`.
pub(crate) fn of(key: &CacheKey, data: &EntryData) -> u32 {
    let own = match data {
        EntryData::Row(row) => row.bytes(),
        EntryData::Ids(ids) => ids
            .iter()
            .map(|id| std::mem::size_of::<KeyValue>() + key_value_heap(id))
            .sum(),
        EntryData::Rows(rows) => rows.iter().map(|row| 8 + row.bytes()).sum(),
        EntryData::Missing | EntryData::Count(_) => 0,
    };
    u32::try_from(PER_ENTRY + key_heap(key) + own).unwrap_or(u32::MAX)
}

/// What one key a view instance (or a page) read costs in the dependency index: the key held
/// in the index's map and in the instance's registration, and the instance's key in the set of
/// readers of that key. Fitted to `benches/deps.rs`: an instance that read 1 key costs the
/// index 1,037 bytes, one that read 11 keys 3,915 bytes (288 per key, 749 besides).
pub(crate) const PER_DEPENDENCY: usize = 290;

/// What an instance's registration in the dependency index costs besides its keys (see
/// [`PER_DEPENDENCY`]).
pub(crate) const PER_REGISTRATION: usize = 750;

/// What a spelling's registration costs in the spellings index: its key and its registration
/// id in the map of its fold class (an estimate from the maps' layout, not measured).
pub(crate) const PER_SPELLING: usize = 160;

/// The dependency-index bytes of an instance that read `keys`, saturated at `u32::MAX`.
pub(crate) fn dependencies(keys: &[CacheKey]) -> u32 {
    let keys: usize = keys.iter().map(|k| PER_DEPENDENCY + key_heap(k)).sum();
    let bytes = PER_REGISTRATION + keys;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The spellings-index bytes of the spelling `key`.
pub(crate) fn spelling(key: &CacheKey) -> u32 {
    u32::try_from(PER_SPELLING + key_heap(key)).unwrap_or(u32::MAX)
}
