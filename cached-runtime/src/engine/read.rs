//! Cached reads: look up, and on a miss load once (single flight) and fill.

use std::sync::Arc;

use super::{Engine, Point};
use crate::cache::deps::ReadSet;
use crate::cache::{AnyRow, EntryData, Loaded, LocalCache};
use crate::entity::{CachedEntity, EntityMeta, OrderMeta};
use crate::error::{Error, Result};
use crate::graph;
use crate::key::{CacheKey, Predicate};
use crate::page::{Cursor, Page, Paged};
use crate::stats::Counters;
use crate::store::id_of;
use crate::value::{KeyPart, KeyValue, ValueKind};

/// Turns a cached row back into its entity. Keys compare by entity identity, so a row key of
/// `E` only ever holds an `E`.
#[inline]
pub(crate) fn downcast<E: CachedEntity>(row: AnyRow) -> Arc<E> {
    row.downcast::<E>()
        .unwrap_or_else(|_| panic!("a row key of `{}` held another type", E::meta().type_name))
}

#[inline]
fn row_of<E: CachedEntity>(data: EntryData) -> Option<Arc<E>> {
    match data {
        EntryData::Row(row) => Some(downcast::<E>(row)),
        _ => None,
    }
}

/// Counts a hit of `key` (and its heat, if its namespace is warmed).
#[inline]
pub(crate) fn hit(cache: &LocalCache, key: &CacheKey) {
    cache.counters.hit(crate::registry::slot(key.namespace()));
    cache.heat.hit(key);
}

/// Counts a miss of `key`.
pub(crate) fn miss(cache: &LocalCache, key: &CacheKey) {
    cache.counters.miss(crate::registry::slot(key.namespace()));
}

/// Loads `key` once however many readers missed it (see [`LocalCache::load`]), pausing
/// between the database read and the fill where a test asked for it.
pub(crate) async fn load<F, Fut>(engine: &Engine, key: &CacheKey, load: F) -> Result<Arc<Loaded>>
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = Result<Loaded>> + Send,
{
    use tracing::Instrument as _;
    // A span per database load (a miss that leads its flight); nothing on the hit path, and
    // nothing formatted unless a subscriber asks for it.
    let span = tracing::debug_span!(
        target: "cached",
        "cached.load",
        entity = key.namespace().type_name,
        %key,
        rows = tracing::field::Empty,
    );
    let recorder = span.clone();
    // Boxed: a load's state (the flight, the shared cache's calls, the database query) is
    // not part of the future of every read that may miss, which a caller awaits on each hit.
    let loading = engine.cache.load(key, || {
        async {
            let started = std::time::Instant::now();
            let loaded = super::shared::through(engine, key, load).await;
            crate::metrics::load(key.namespace().type_name, started.elapsed());
            engine.pause(Point::Fill).await;
            if let Ok(loaded) = &loaded {
                recorder.record("rows", rows_read(loaded));
            }
            loaded
        }
        .instrument(span)
    });
    Box::pin(loading).await
}

/// How many rows a load read: those it carries, or its one row (or view).
fn rows_read(loaded: &Loaded) -> usize {
    match &loaded.data {
        EntryData::Row(_) => 1,
        EntryData::Ids(ids) => ids.len(),
        EntryData::Rows(rows) => rows.len(),
        EntryData::Missing | EntryData::Count(_) => loaded.rows.len(),
    }
}

/// Serves `stale` (a value past its TTL, within the stale-while-revalidate window) and starts
/// one background `refresh` of `key` unless a load of it is already in flight. The refresh is
/// an ordinary load: its fill is refused if a commit touched the key meanwhile.
fn revalidate<T, F>(engine: &Arc<Engine>, key: &CacheKey, stale: T, refresh: F) -> T
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    hit(&engine.cache, key);
    if !engine.cache.loading(key) {
        tokio::spawn(refresh);
    }
    stale
}

/// `get` for a reader that accepts a value within its stale-while-revalidate window (the
/// repository on a context; not a view load, whose result must be built from current rows).
pub(crate) async fn get_revalidating<E: CachedEntity>(
    engine: &Arc<Engine>,
    id: E::Id,
) -> Result<Option<Arc<E>>> {
    let key = CacheKey::row(E::meta(), id.key_value());
    if let Some(data) = engine.cache.get(&key) {
        hit(&engine.cache, &key);
        return Ok(row_of::<E>(data));
    }
    if let Some(data) = engine.cache.stale(&key) {
        let owned = engine.clone();
        let refresh = async move {
            let _ = get::<E>(&owned, id).await;
        };
        return Ok(revalidate(engine, &key, row_of::<E>(data), refresh));
    }
    // Boxed: the load's state (a kilobyte) would otherwise be part of every caller's future,
    // copied on every hit into `block_on` and into each async fn awaiting this one.
    Box::pin(get::<E>(engine, id)).await
}

/// `find` accepting a query entry (and rows) within the stale-while-revalidate window.
pub(crate) async fn find_revalidating<E: CachedEntity>(
    engine: &Arc<Engine>,
    predicate: Predicate,
) -> Result<Vec<Arc<E>>> {
    let (meta, cache) = (E::meta(), &engine.cache);
    let key = CacheKey::list(meta, predicate.clone());
    match cache.get(&key) {
        Some(EntryData::Ids(ids)) => {
            if let Some(rows) = resolve::<E>(cache, meta, &ids) {
                hit(cache, &key);
                return Ok(rows);
            }
        }
        _ => {
            if let Some(rows) = stale_rows::<E>(cache, &key) {
                let owned = engine.clone();
                let refresh = async move {
                    let _ = find::<E>(&owned, predicate).await;
                };
                return Ok(revalidate(engine, &key, rows, refresh));
            }
        }
    }
    // Boxed, as `get_revalidating`'s miss: the hit path's future stays small.
    Box::pin(find::<E>(engine, predicate)).await
}

/// The rows of a query entry within its stale-while-revalidate window, if each row is cached
/// (fresh, or stale too).
fn stale_rows<E: CachedEntity>(cache: &LocalCache, key: &CacheKey) -> Option<Vec<Arc<E>>> {
    let Some(EntryData::Ids(ids)) = cache.stale(key) else {
        return None;
    };
    let meta = E::meta();
    ids.iter()
        .map(|id| {
            let row_key = CacheKey::row(meta, id.clone());
            match cache.get(&row_key).or_else(|| cache.stale(&row_key))? {
                EntryData::Row(row) => Some(downcast::<E>(row)),
                _ => None,
            }
        })
        .collect()
}

/// `count` accepting a count within the stale-while-revalidate window.
pub(crate) async fn count_revalidating<E: CachedEntity>(
    engine: &Arc<Engine>,
    predicate: Predicate,
) -> Result<i64> {
    let (key, cache) = (CacheKey::count(E::meta(), predicate.clone()), &engine.cache);
    if let Some(EntryData::Count(n)) = cache.get(&key) {
        hit(cache, &key);
        return Ok(n);
    }
    if let Some(EntryData::Count(n)) = cache.stale(&key) {
        let owned = engine.clone();
        let refresh = async move {
            let _ = count::<E>(&owned, predicate).await;
        };
        return Ok(revalidate(engine, &key, n, refresh));
    }
    Box::pin(count::<E>(engine, predicate)).await
}

/// One row by id.
pub(crate) async fn get<E: CachedEntity>(engine: &Engine, id: E::Id) -> Result<Option<Arc<E>>> {
    let cache = &engine.cache;
    let key = CacheKey::row(E::meta(), id.key_value());
    if let Some(data) = cache.get(&key) {
        hit(cache, &key);
        return Ok(row_of::<E>(data));
    }
    miss(cache, &key);
    let store = &engine.store;
    let loaded = load(engine, &key, || async move {
        let row = store.exec().fetch_by_id::<E>(&id).await?;
        Ok(Loaded::one(row.map_or(EntryData::Missing, |r| {
            EntryData::Row(AnyRow::row(Arc::new(r)))
        })))
    })
    .await?;
    Ok(row_of::<E>(loaded.data.clone()))
}

/// Several rows by id, in the order asked, `None` where a row does not exist. The rows not
/// cached are loaded with one query.
pub(crate) async fn get_many<E: CachedEntity>(
    engine: &Engine,
    ids: &[E::Id],
) -> Result<Vec<Option<Arc<E>>>> {
    let (meta, cache) = (E::meta(), &engine.cache);
    let mut out: Vec<Option<Arc<E>>> = vec![None; ids.len()];
    let mut missing: Vec<(usize, KeyValue)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let id = id.key_value();
        let key = CacheKey::row(meta, id.clone());
        match cache.get(&key) {
            Some(data) => {
                hit(cache, &key);
                out[i] = row_of::<E>(data);
            }
            None => {
                miss(cache, &key);
                missing.push((i, id));
            }
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    // Boxed, as a load: the hit path's future stays small.
    Box::pin(load_missing::<E>(engine, missing, out)).await
}

/// The rest of [`get_many`]: the `missing` rows (position in `out`, id) with one query.
async fn load_missing<E: CachedEntity>(
    engine: &Engine,
    missing: Vec<(usize, KeyValue)>,
    mut out: Vec<Option<Arc<E>>>,
) -> Result<Vec<Option<Arc<E>>>> {
    let (meta, cache) = (E::meta(), &engine.cache);
    let token = cache.token(meta);
    let wanted: Vec<KeyValue> = missing.iter().map(|(_, id)| id.clone()).collect();
    Counters::add(&cache.counters.loads, 1);
    // Matched to the asked ids by the database's equality, not by bytes.
    let started = std::time::Instant::now();
    let rows = engine.store.exec().fetch_asked::<E>(&wanted, false).await?;
    crate::metrics::load(meta.type_name, started.elapsed());
    for ((i, id), row) in missing.into_iter().zip(rows) {
        let data = match &row {
            Some(row) => EntryData::Row(AnyRow::row(row.clone())),
            None => EntryData::Missing,
        };
        cache.fill(&CacheKey::row(meta, id), data, &token);
        out[i] = row;
    }
    Ok(out)
}

/// The rows of a cached query, if every one of them is cached too.
fn resolve<E: CachedEntity>(
    cache: &LocalCache,
    meta: &'static EntityMeta,
    ids: &[KeyValue],
) -> Option<Vec<Arc<E>>> {
    ids.iter()
        .map(|id| match cache.get(&CacheKey::row(meta, id.clone()))? {
            EntryData::Row(row) => Some(downcast::<E>(row)),
            _ => None,
        })
        .collect()
}

/// The rows matching a predicate, ordered by id. The query entry holds only the ids; the rows
/// come from their own entries, so a row update never has to touch the query.
pub(crate) async fn find<E: CachedEntity>(
    engine: &Engine,
    predicate: Predicate,
) -> Result<Vec<Arc<E>>> {
    let (meta, cache) = (E::meta(), &engine.cache);
    let key = CacheKey::list(meta, predicate.clone());
    if let Some(EntryData::Ids(ids)) = cache.get(&key) {
        if let Some(rows) = resolve::<E>(cache, meta, &ids) {
            hit(cache, &key);
            return Ok(rows);
        }
    }
    miss(cache, &key);
    let store = &engine.store;
    let loaded = load(engine, &key, || async move {
        let rows = store.exec().fetch_where::<E>(&predicate).await?;
        let ids: Arc<[KeyValue]> = rows.iter().map(id_of).collect();
        let rows = rows
            .into_iter()
            .map(|row| {
                let key = CacheKey::row(meta, id_of(&row));
                (key, AnyRow::row(Arc::new(row)))
            })
            .collect();
        Ok(Loaded {
            data: EntryData::Ids(ids),
            rows,
            reads: None,
        })
    })
    .await?;
    Ok(loaded
        .rows
        .iter()
        .map(|(_, row)| downcast::<E>(row.clone()))
        .collect())
}

/// One keyset page of `predicate`'s rows in the entity's `order_at`th order. Cached as the
/// page's ids (one more than asked, to know whether a next page exists) and registered under
/// the predicate's pages tag, which every write that adds, removes or moves one of its rows
/// changes; a load overtaken by such a write is not stored.
pub(crate) async fn page<E: CachedEntity>(
    engine: &Engine,
    predicate: Predicate,
    order_at: usize,
    page: Page,
) -> Result<Paged<E>> {
    let (meta, cache) = (E::meta(), &engine.cache);
    let order = &meta.orders[order_at];
    check_cursor(&page, meta, order, &predicate)?;
    let key = CacheKey::page(meta, predicate.clone(), order, &page);
    let limit = page.limit as usize;
    if let Some(EntryData::Rows(rows)) = cache.get(&key) {
        hit(cache, &key);
        let rows = rows.iter().map(|row| downcast::<E>(row.clone())).collect();
        return Ok(paged(order_at, rows, limit, || {
            cursor_scope(meta, order, &predicate)
        }));
    }
    miss(cache, &key);
    let mut reads = ReadSet::default();
    reads.entity(&meta.namespace, || {
        (cache.generation(meta), cache.query_generation(meta))
    });
    reads.key(cache.dependency(CacheKey::pages(meta, predicate.clone())));
    let store = &engine.store;
    let after = page.after.map(|c| (c.order, c.id));
    let listed = predicate.clone();
    let loaded = load(engine, &key, || async move {
        let rows = store
            .exec()
            .fetch_page::<E>(
                &predicate,
                order,
                after.as_ref(),
                page.limit.saturating_add(1),
            )
            .await?;
        // The page holds its rows and depends on each of them (a row written drops the
        // pages that hold it), besides the tag of its predicate.
        let mut reads = reads;
        let rows: Vec<(CacheKey, AnyRow)> = rows
            .into_iter()
            .map(|row| (CacheKey::row(meta, id_of(&row)), AnyRow::row(Arc::new(row))))
            .collect();
        for (row_key, _) in &rows {
            reads.key(cache.dependency(row_key.clone()));
        }
        let data = EntryData::Rows(rows.iter().map(|(_, row)| row.clone()).collect());
        Ok(Loaded {
            data,
            rows,
            reads: Some(reads),
        })
    })
    .await?;
    let rows = loaded
        .rows
        .iter()
        .map(|(_, row)| downcast::<E>(row.clone()))
        .collect();
    Ok(paged(order_at, rows, limit, || {
        cursor_scope(meta, order, &listed)
    }))
}

/// What a cursor of this list carries to be told from another list's: a hash of the entity,
/// the order and the filter (stable across processes, so a cursor outlives a restart).
pub(crate) fn cursor_scope(
    meta: &'static EntityMeta,
    order: &OrderMeta,
    predicate: &Predicate,
) -> u32 {
    use std::fmt::Write as _;
    // Hashed as it is formatted: no string is built on the page path.
    let mut hash = crate::registry::Fnv1a::default();
    let _ = write!(
        hash,
        "{}|{}|{}|{}",
        meta.type_name,
        order.column,
        order.descending,
        CacheKey::pages(meta, predicate.clone())
    );
    (hash.0 ^ (hash.0 >> 32)) as u32
}

/// Refuses a page that starts after another list's cursor, or after a position that no row
/// of this list can have (a forged cursor): [`Error::InvalidCursor`], HTTP 400.
pub(crate) fn check_cursor(
    page: &Page,
    meta: &'static EntityMeta,
    order: &OrderMeta,
    predicate: &Predicate,
) -> Result<()> {
    let Some(cursor) = &page.after else {
        return Ok(());
    };
    if cursor.scope != cursor_scope(meta, order, predicate) {
        return Err(Error::InvalidCursor {
            reason: format!(
                "it was made for another list than this page of `{}` by `{}` (another entity, \
                 order or filter); start again from the first page",
                meta.type_name, order.column
            ),
        });
    }
    let kind = |column: &str| meta.column_kind(column).map(|kind| kind[0]);
    let fits = |value: &KeyValue, kind: Option<ValueKind>| {
        matches!(
            (value, kind),
            (KeyValue::Int(_), Some(ValueKind::Int))
                | (KeyValue::Text(_), Some(ValueKind::Text))
                | (KeyValue::Bool(_), Some(ValueKind::Bool))
                | (KeyValue::ObjectId(_), Some(ValueKind::ObjectId))
        )
    };
    let order_fits =
        matches!(cursor.order, KeyValue::Null) || fits(&cursor.order, kind(order.column));
    if !order_fits || !fits(&cursor.id, kind(meta.id_column)) {
        return Err(Error::InvalidCursor {
            reason: format!(
                "its position cannot be one of `{}`'s rows; start again from the first page",
                meta.type_name
            ),
        });
    }
    Ok(())
}

/// The first `limit` of `rows` (read one more than asked), and the cursor after them if
/// there was more (its `scope` computed only then).
pub(crate) fn paged<E: CachedEntity>(
    order_at: usize,
    mut rows: Vec<Arc<E>>,
    limit: usize,
    scope: impl FnOnce() -> u32,
) -> Paged<E> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = rows.last().filter(|_| more).map(|last| Cursor {
        order: graph::order_value(E::meta(), order_at, &last.index_values()),
        id: last.id().key_value(),
        scope: scope(),
    });
    Paged { rows, next }
}

/// The number of rows matching a predicate.
pub(crate) async fn count<E: CachedEntity>(engine: &Engine, predicate: Predicate) -> Result<i64> {
    let (meta, cache) = (E::meta(), &engine.cache);
    let key = CacheKey::count(meta, predicate.clone());
    if let Some(EntryData::Count(n)) = cache.get(&key) {
        hit(cache, &key);
        return Ok(n);
    }
    miss(cache, &key);
    let store = &engine.store;
    let loaded = load(engine, &key, || async move {
        let n = store.exec().count_where::<E>(&predicate).await?;
        Ok(Loaded::one(EntryData::Count(n)))
    })
    .await?;
    match loaded.data {
        EntryData::Count(n) => Ok(n),
        _ => unreachable!("a count load yields a count"),
    }
}
