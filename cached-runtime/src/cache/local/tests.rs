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

/// A cache for these tests, on a clock of their own.
fn test_cache() -> LocalCache {
    LocalCache::new(CacheSettings {
        max_entries: 1_000,
        max_bytes: None,
        max_entry_bytes: u32::MAX,
        protect_fills: true,
        fold_text: true,
        clock: Some(crate::ManualClock::new().clock()),
        warm: Vec::new(),
    })
}

/// Found by a flaky MariaDB test: a delete's negative entry was dropped instead of written
/// when one of the same commit's query keys hashed to its stripe (stripes are hashed with
/// a per-cache random state).
#[test]
fn a_commit_writes_through_a_key_whose_stripe_it_also_invalidates() {
    let cache = test_cache();
    let stripe_of = |k: &CacheKey| cache.stripe_index(k);
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

/// The weight the cache counts (`bytes()`, the `cached_bytes` metric) follows what moka holds:
/// fills, replacements and removals, checked against moka's own weighted size.
#[test]
fn the_bytes_counted_follow_fills_replacements_and_removals() {
    let cache = LocalCache::new(CacheSettings {
        max_entries: 1_000,
        max_bytes: Some(1 << 30),
        max_entry_bytes: u32::MAX,
        protect_fills: true,
        fold_text: true,
        clock: Some(crate::ManualClock::new().clock()),
        warm: Vec::new(),
    });
    let settled = |cache: &LocalCache| {
        cache.map.run_pending_tasks();
        (cache.bytes(), cache.map.weighted_size())
    };
    for id in 0..10 {
        assert!(cache.fill(&key(id), EntryData::Count(id), &cache.token(&ITEM)));
    }
    let (bytes, weighed) = settled(&cache);
    assert!(bytes > 0);
    assert_eq!(bytes, weighed);
    // Replaced (a write-through) and removed.
    let write = Change::Write {
        data: EntryData::Missing,
        token: cache.token(&ITEM),
    };
    cache.apply(&[(key(1), write), (key(2), Change::Remove)], &[]);
    let (bytes, weighed) = settled(&cache);
    assert_eq!(bytes, weighed);
    cache.clear();
    assert_eq!(settled(&cache), (0, 0));
}

/// A fence (another instance's commit under way) refuses every fill of what it reaches, a
/// load's token taken before or during it; its release refuses those tokens for good; only
/// a load after the release stores.
#[test]
fn a_fence_refuses_fills_until_its_release_is_applied() {
    let cache = test_cache();
    let fenced = key(1);
    let other = (2..)
        .map(key)
        .find(|k| cache.stripe_index(k) != cache.stripe_index(&fenced))
        .expect("a key in another stripe");
    let before = cache.token(&ITEM);
    let mut fence = Fence::default();
    cache.apply_fencing(&[(fenced.clone(), Change::Remove)], &[], Some(&mut fence));
    let during = cache.token(&ITEM);
    assert!(
        !cache.fill(&fenced, EntryData::Missing, &before),
        "a load from before"
    );
    assert!(
        !cache.fill(&fenced, EntryData::Missing, &during),
        "a load during the fence"
    );
    assert!(
        cache.fill(&other, EntryData::Missing, &during),
        "a key it does not reach"
    );

    // The release: applied again, then lowered.
    cache.apply(&[(fenced.clone(), Change::Remove)], &[]);
    cache.unfence(fence);
    assert!(
        !cache.fill(&fenced, EntryData::Missing, &during),
        "a load that read during the fence, stored after its release"
    );
    let after = cache.token(&ITEM);
    assert!(
        cache.fill(&fenced, EntryData::Missing, &after),
        "a load after it"
    );
    assert!(cache.get(&fenced).is_some());
}

/// A fenced whole-entity bump refuses the fills of every key of the entity, whatever the
/// stripe, until it is lowered.
#[test]
fn a_fenced_bump_refuses_every_fill_of_its_entity() {
    let cache = test_cache();
    let mut fence = Fence::default();
    cache.apply_fencing(&[], &[Bump::Entity(&ITEM.namespace)], Some(&mut fence));
    let during = cache.token(&ITEM);
    assert!((1..50).all(|id| !cache.fill(&key(id), EntryData::Missing, &during)));
    cache.apply(&[], &[Bump::Entity(&ITEM.namespace)]);
    cache.unfence(fence);
    assert!(
        !cache.fill(&key(1), EntryData::Missing, &during),
        "read during the fence"
    );
    let after = cache.token(&ITEM);
    assert!((1..50).all(|id| cache.fill(&key(id), EntryData::Missing, &after)));
}
