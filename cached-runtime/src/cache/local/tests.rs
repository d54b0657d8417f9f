//! Unit tests of the in-process layer: stripes, write-through, registrations.

use super::*;
use crate::cache::deps::ReadSet;
use crate::cache::Loaded;
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

/// The settings of these tests' caches: 1,000 entries, on a clock of their own.
fn test_settings() -> CacheSettings {
    CacheSettings {
        max_entries: 1_000,
        max_bytes: None,
        max_entry_bytes: u32::MAX,
        protect_fills: true,
        fold_text: true,
        clock: Some(crate::ManualClock::new().clock()),
        warm: Vec::new(),
    }
}

/// A cache for these tests.
fn test_cache() -> LocalCache {
    LocalCache::new(test_settings())
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

/// The exact weight of what `cache` holds, entry by entry, once moka settled.
fn weighed(cache: &LocalCache) -> u64 {
    cache.map.run_pending_tasks();
    cache.map.iter().map(|(_, e)| u64::from(e.weight)).sum()
}

/// A query-like entry of `n` ids: its weight grows with `n`.
fn ids(n: i64) -> EntryData {
    EntryData::Ids((0..n).map(KeyValue::Int).collect())
}

/// The weight reported (`bytes()`, the `cached_bytes` metric) follows fills, replacements,
/// removals and a clear, in a cache bounded by bytes (moka's own sum) and in one bounded by
/// entries that holds fewer than the sample (exact).
#[test]
fn the_bytes_reported_follow_fills_replacements_and_removals() {
    for max_bytes in [Some(1 << 30), None] {
        let cache = LocalCache::new(CacheSettings {
            max_bytes,
            ..test_settings()
        });
        for id in 0..10 {
            assert!(cache.fill(&key(id), ids(id), &cache.token(&ITEM)));
        }
        let filled = weighed(&cache);
        assert!(filled > 10 * weight::PER_ENTRY as u64);
        assert_eq!(cache.bytes(), filled, "{max_bytes:?}");
        // Replaced by a lighter entry (a write-through), and removed.
        let write = Change::Write {
            data: EntryData::Missing,
            token: cache.token(&ITEM),
        };
        cache.apply(&[(key(9), write), (key(8), Change::Remove)], &[]);
        let after = weighed(&cache);
        assert!(after < filled);
        assert_eq!(cache.bytes(), after, "{max_bytes:?}");
        cache.clear();
        assert_eq!((weighed(&cache), cache.bytes()), (0, 0), "{max_bytes:?}");
    }
}

/// Bounded by entries and holding more than the sample, the weight is estimated from a sample
/// of entries: close to the exact sum when the entries' weights vary.
#[test]
fn the_bytes_of_a_large_cache_bounded_by_entries_are_estimated_closely() {
    let cache = LocalCache::new(CacheSettings {
        max_entries: 100_000,
        ..test_settings()
    });
    for id in 0..30_000 {
        assert!(cache.fill(&key(id), ids(id % 64), &cache.token(&ITEM)));
    }
    let exact = weighed(&cache) as f64;
    let estimated = cache.bytes() as f64;
    let error = (estimated - exact).abs() / exact;
    assert!(error < 0.03, "estimated {estimated}, exact {exact}");
}

/// moka evicts without telling (no eviction listener): each registration checks a few queued
/// ones and releases those evicted, so the index stays near what is cached with no sweep of
/// the whole, and a cached instance never loses its registration (a change to what it read
/// would not drop it).
#[test]
fn registrations_release_evicted_instances_and_keep_every_cached_one() {
    let cache = LocalCache::new(CacheSettings {
        max_entries: 64,
        ..test_settings()
    });
    let fill = |id: i64| {
        let mut reads = ReadSet::default();
        reads.key(key(-1 - id % 7));
        let loaded = Loaded {
            data: EntryData::Count(id),
            rows: Vec::new(),
            reads: Some(reads),
        };
        cache.fill_loaded(&key(id), &loaded, &cache.token(&ITEM));
    };
    let mut most = 0;
    for id in 0..6_000 {
        fill(id);
        if id % 50 == 49 {
            cache.map.run_pending_tasks(); // moka's housekeeping evicts
            let (registered, _) = cache.deps.size();
            most = most.max(registered);
        }
    }
    let held = cache.map.entry_count() as usize;
    let (registered, _) = cache.deps.size();
    eprintln!("held {held}, registered {registered}, at most {most}");
    assert!(held <= 64, "{held}");
    // Between two housekeepings moka holds up to 50 entries more than 64; of the evicted,
    // each registration finds about CHECKS - 1: at most about 1.5x what moka held, not 6,000.
    assert!(
        most <= 2 * (64 + 50),
        "{most} registrations for at most 114 cached instances"
    );
    for (view, _) in cache.map.iter() {
        assert!(
            cache.deps.registered(&view),
            "{view} is cached but not registered"
        );
    }
    // Settled at once: exactly what is cached stays registered.
    cache.settle();
    assert_eq!(cache.deps.size().0, cache.map.entry_count() as usize);
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
