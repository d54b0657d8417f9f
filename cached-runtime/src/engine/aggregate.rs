//! Cached reads of aggregates ([`crate::aggregate`]): look up, and on a miss load once and
//! fill, as [`super::read`] does for rows and queries.

use std::sync::Arc;

use super::read::{hit, load, miss};
use super::Engine;
use crate::aggregate::{heap_of, AggregateValue, Extreme, GroupedCount};
use crate::cache::deps::ReadSet;
use crate::cache::{AnyRow, EntryData, Loaded};
use crate::entity::CachedEntity;
use crate::error::Result;
use crate::key::CacheKey;

/// The cached value of an aggregate entry: the entry holds exactly `T` (its key is the
/// aggregate's, whose type fixes `T`).
fn held<T: Send + Sync + 'static>(data: EntryData, key: &CacheKey) -> Arc<T> {
    match data {
        EntryData::Row(any) => any
            .downcast::<T>()
            .unwrap_or_else(|_| panic!("the aggregate `{key}` held another type")),
        _ => panic!("the aggregate `{key}` held no value"),
    }
}

/// The counts of each group, from the cache or loaded with one `GROUP BY`.
pub(crate) async fn count_grouped<E, T>(
    engine: &Engine,
    query: GroupedCount<E, T>,
) -> Result<Arc<Vec<(T, i64)>>>
where
    E: CachedEntity,
    T: AggregateValue,
{
    let (key, cache) = (query.key(), &engine.cache);
    if let Some(data) = cache.get(&key) {
        hit(cache, &key);
        return Ok(held(data, &key));
    }
    miss(cache, &key);
    let (store, column) = (&engine.store, query.column);
    let loaded = load(engine, &key, || async move {
        let groups = store.exec().count_grouped::<E, T>(column).await?;
        let heap = groups.capacity() * std::mem::size_of::<(T, i64)>()
            + groups.iter().map(|(v, _)| heap_of(v)).sum::<usize>();
        Ok(Loaded::one(EntryData::Row(AnyRow::new(
            Arc::new(groups),
            heap,
        ))))
    })
    .await?;
    Ok(held(loaded.data.clone(), &key))
}

/// The largest or smallest value of an order column among a predicate's rows, from the cache
/// or loaded with one `MAX`/`MIN`; registered under the predicate's pages tag.
pub(crate) async fn extreme<E, T>(engine: &Engine, query: Extreme<E, T>) -> Result<Option<T>>
where
    E: CachedEntity,
    T: AggregateValue,
{
    let (meta, cache) = (E::meta(), &engine.cache);
    let key = query.key();
    if let Some(data) = cache.get(&key) {
        hit(cache, &key);
        return Ok((*held::<Option<T>>(data, &key)).clone());
    }
    miss(cache, &key);
    let mut reads = ReadSet::default();
    reads.entity(&meta.namespace, || {
        (cache.generation(meta), cache.query_generation(meta))
    });
    reads.key(cache.dependency(query.tag()));
    let store = &engine.store;
    let column = meta.orders[query.order_at].column;
    let loaded = load(engine, &key, || async move {
        let value = store
            .exec()
            .extreme::<E, T>(&query.predicate, column, query.max)
            .await?;
        let heap = value.as_ref().map_or(0, heap_of);
        Ok(Loaded {
            data: EntryData::Row(AnyRow::new(Arc::new(value), heap)),
            rows: Vec::new(),
            reads: Some(reads),
        })
    })
    .await?;
    Ok((*held::<Option<T>>(loaded.data.clone(), &key)).clone())
}
