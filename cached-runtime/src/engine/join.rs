//! The cached read through a join entity: the rows its rows matching a predicate point to
//! (the actors of a movie, through its castings), held as one entry so that a hit is one
//! lookup.
//!
//! The entry depends on the join query (a join row attached or detached), on each join row
//! (its foreign key moved to another row) and on each row pointed to (renamed, deleted, or
//! inserted under an id a join row names), through the dependency index, as a page does.

use std::sync::Arc;

use super::read::{downcast, hit, load, miss};
use super::Engine;
use crate::cache::deps::ReadSet;
use crate::cache::{AnyRow, EntryData, Loaded};
use crate::entity::CachedEntity;
use crate::error::Result;
use crate::key::{CacheKey, Predicate};
use crate::store::id_of;
use crate::value::KeyPart;

/// The `B` rows the `J` rows matching `predicate` point to (`target` reads a join row's
/// foreign key), in the order of the join rows' ids; a dangling or null key is skipped.
pub(crate) async fn joined<J: CachedEntity, B: CachedEntity>(
    engine: &Engine,
    predicate: Predicate,
    column: &'static str,
    target: fn(&J) -> Option<B::Id>,
) -> Result<Vec<Arc<B>>> {
    let (join, meta, cache) = (J::meta(), B::meta(), &engine.cache);
    let key = CacheKey::joined(join, predicate.clone(), column);
    if let Some(EntryData::Rows(rows)) = cache.get(&key) {
        hit(cache, &key);
        return Ok(rows.iter().map(|row| downcast::<B>(row.clone())).collect());
    }
    miss(cache, &key);
    let mut reads = ReadSet::default();
    for entity in [join, meta] {
        reads.entity(&entity.namespace, || {
            (cache.generation(entity), cache.query_generation(entity))
        });
    }
    reads.key(cache.dependency(CacheKey::list(join, predicate.clone())));
    let store = &engine.store;
    let loaded = load(engine, &key, || async move {
        let mut reads = reads;
        let joins = store.exec().fetch_where::<J>(&predicate).await?;
        let mut ids = Vec::with_capacity(joins.len());
        for row in &joins {
            reads.key(cache.dependency(CacheKey::row(join, id_of(row))));
            ids.extend(target(row).map(|id| id.key_value()));
        }
        for id in &ids {
            reads.key(cache.dependency(CacheKey::row(meta, id.clone())));
        }
        let found = store.exec().fetch_asked::<B>(&ids, false).await?;
        let rows: Vec<(CacheKey, AnyRow)> = found
            .into_iter()
            .flatten()
            .map(|row| (CacheKey::row(meta, id_of(&*row)), AnyRow::row(row)))
            .collect();
        Ok(Loaded {
            data: EntryData::Rows(rows.iter().map(|(_, row)| row.clone()).collect()),
            rows,
            reads: Some(reads),
        })
    })
    .await?;
    Ok(loaded
        .rows
        .iter()
        .map(|(_, row)| downcast::<B>(row.clone()))
        .collect())
}

/// The ids a join's rows point to, for the transaction's read.
pub(crate) fn targets<J, B: CachedEntity>(
    joins: &[Arc<J>],
    target: fn(&J) -> Option<B::Id>,
) -> Vec<B::Id> {
    joins.iter().filter_map(|row| target(row)).collect()
}
