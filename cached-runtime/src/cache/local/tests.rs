//! Unit tests of the in-process layer: stripes, write-through, registrations.

use super::*;
use crate::entity::{EntityMeta, EntityState};
use crate::value::{KeyValue, ValueKind};

static ITEM: EntityMeta = EntityMeta {
    namespace: crate::entity::Namespace {
        name: "item",
        type_name: "Item",
        ttl: None,
        negative_ttl: None,
        stale_while_revalidate: None,
        __state: EntityState::new(),
    },
    table: "items",
    id_column: "id",
    columns: &["id"],
    kinds: &[ValueKind::Int],
    indexes: &[],
    composites: &[],
    orders: &[],
    relations: &[],
    counters: &[],
    version: None,
};

inventory::submit!(crate::registry::EntityRegistration(
    || &ITEM,
    crate::registry::RowCodec::NONE
));

fn key(id: i64) -> CacheKey {
    CacheKey::row(&ITEM, KeyValue::Int(id))
}

/// Found by a flaky MariaDB test: a delete's negative entry was dropped instead of written
/// when one of the same commit's query keys hashed to its stripe (stripes are hashed with
/// a per-cache random state).
#[test]
fn a_commit_writes_through_a_key_whose_stripe_it_also_invalidates() {
    let cache = LocalCache::new(CacheSettings {
        max_entries: 1_000,
        max_bytes: None,
        max_entry_bytes: u32::MAX,
        protect_fills: true,
        fold_text: true,
        clock: Some(crate::ManualClock::new().clock()),
        warm: Vec::new(),
    });
    let stripe_of = |k: &CacheKey| cache.hasher.hash_one(k) as usize % STRIPES;
    let written = key(0);
    let neighbour = (1..)
        .map(key)
        .find(|k| stripe_of(k) == stripe_of(&written))
        .expect("a key in the same stripe");
    let token = cache.token(&ITEM);
    let write = Change::Write {
        data: EntryData::Missing,
        token,
    };
    cache.apply(
        &[(neighbour, Change::Remove), (written.clone(), write)],
        &[],
    );
    assert!(
        cache.get(&written).is_some(),
        "the commit's own write-through"
    );

    // Another commit's write under the same (now older) token is still refused.
    let stale = Change::Write {
        data: EntryData::Missing,
        token,
    };
    cache.apply(&[(written.clone(), stale)], &[]);
    assert!(
        cache.get(&written).is_none(),
        "a write older than a commit is a drop"
    );
}
