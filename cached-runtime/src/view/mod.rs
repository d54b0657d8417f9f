//! Cached views: values computed from several entities, invalidated through the graph.
//!
//! A view is declared with `#[derive(CachedView)]` and `#[view(key = "Story", reads(...))]`,
//! and loaded by its [`LoadView`] implementation through a [`ViewCtx`], which can only read the
//! entities the view declares ([`Reads`]). The declaration documents intent and is checked at
//! compile time; which instances a write drops is decided at run time by what each load
//! actually read: the [`ViewCtx`] records every row, query and count key it reads, and a
//! change to any of them drops the instance (see `cache::deps`). Views register themselves at
//! link time (`registry`): there is no start-up call to forget.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use crate::aggregate::{AggregateValue, Extreme, GroupedCount};
use crate::cache::deps::ReadSet;
use crate::cache::{AnyRow, EntryData, Loaded};
use crate::context::Context;
use crate::engine::{aggregate, read, Engine};
use crate::entity::{CachedEntity, EntityMeta, ViewMeta};
use crate::error::Result;
use crate::key::{CacheKey, EntityQuery, Predicate};
use crate::page::{Page, Paged};
use crate::value::KeyPart;

/// A view type. Derive it: `#[derive(CachedView)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cached view",
    note = "add `#[derive(CachedView)]` with `#[view(key = \"...\", reads(...))]` to `{Self}`"
)]
pub trait CachedView: Send + Sync + 'static {
    /// The entity whose id keys the view (`Story` for a story outline).
    type Key: CachedEntity;

    /// The static description of the view.
    fn view_meta() -> &'static ViewMeta;
}

/// `V: Reads<E>`: the view `V` declared that it reads `E`, so its loader may read `E` and
/// writes to `E` invalidate it.
#[diagnostic::on_unimplemented(
    message = "the view `{Self}` reads `{E}`, which it does not declare",
    label = "`{E}` is not in `{Self}`'s `#[view(reads(...))]`",
    note = "add `{E}` to `#[view(reads(...))]` on `{Self}`, so that writes to `{E}` invalidate `{Self}`"
)]
pub trait Reads<E: CachedEntity>: CachedView {}

/// How a view is computed. Implement it for your view type.
pub trait LoadView: CachedView + Sized {
    /// Loads the view for one key, reading only through `ctx`; `Ok(None)` when there is no
    /// such key (cached as absent, like a missing row).
    fn load(
        ctx: &mut ViewCtx<'_, Self>,
        key: <Self::Key as CachedEntity>::Id,
    ) -> impl Future<Output = Result<Option<Self>>> + Send;

    /// The bytes this value owns on the heap (its strings and lists), for a cache bounded by
    /// bytes ([`ContextBuilder::max_bytes`](crate::ContextBuilder::max_bytes)). A view can be
    /// any type, so the default counts its struct only: override it when its values hold
    /// large strings or lists (`self.titles.iter().map(String::capacity).sum()`).
    fn heap_size(&self) -> usize {
        0
    }

    /// The view for one key: cached, or loaded once (single flight) with [`LoadView::load`]
    /// and cached until a committed write to something that load read invalidates it.
    fn get(
        ctx: &Context,
        key: impl Into<<Self::Key as CachedEntity>::Id> + Send,
    ) -> impl Future<Output = Result<Option<Arc<Self>>>> + Send {
        cached::<Self>(ctx.engine(), key.into())
    }
}

/// The cache key of one view instance (`StoryOutlineKey::new(3)`, printed `story_outline:3`);
/// the derive names it `<View>Key`.
pub struct ViewKey<V: CachedView>(pub <V::Key as CachedEntity>::Id);

impl<V: CachedView> ViewKey<V> {
    /// The key of the view for this key-entity id.
    pub fn new(id: impl Into<<V::Key as CachedEntity>::Id>) -> Self {
        ViewKey(id.into())
    }
}

impl<V: CachedView> Clone for ViewKey<V> {
    fn clone(&self) -> Self {
        ViewKey(self.0.clone())
    }
}

impl<V: CachedView> From<ViewKey<V>> for CacheKey {
    fn from(key: ViewKey<V>) -> Self {
        CacheKey::row(&V::view_meta().namespace, key.0.key_value())
    }
}

impl<V: CachedView> std::fmt::Display for ViewKey<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&CacheKey::from(self.clone()), f)
    }
}

impl<V: CachedView> std::fmt::Debug for ViewKey<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewKey({self})")
    }
}

/// The read context a view loader gets: cached reads of the declared entities only.
///
/// Every read is recorded: the instance being loaded depends on exactly the rows, queries and
/// counts read through here, whatever they are (another key's rows, a shop-wide count), and a
/// committed change to any of them drops it.
pub struct ViewCtx<'a, V> {
    engine: &'a Engine,
    reads: ReadSet,
    _view: PhantomData<fn() -> V>,
}

impl<V: CachedView> ViewCtx<'_, V> {
    /// Notes that `meta` is about to be read (its generations as of now).
    fn entity(&mut self, meta: &'static EntityMeta) {
        let cache = &self.engine.cache;
        self.reads.entity(meta, || {
            (cache.generation(meta), cache.query_generation(meta))
        });
    }

    /// Notes that the load read `key`.
    fn read(&mut self, key: CacheKey) {
        if self.engine.settings.track_reads {
            self.reads.key(self.engine.cache.dependency(key));
        }
    }

    fn rows<E: CachedEntity>(&mut self, rows: &[Arc<E>]) {
        for row in rows {
            self.read(CacheKey::row(E::meta(), row.id().key_value()));
        }
    }

    /// One row by id.
    pub fn get<E: CachedEntity>(&mut self, id: impl Into<E::Id>) -> ViewRead<'_, Option<Arc<E>>>
    where
        V: Reads<E>,
    {
        let id = id.into();
        ViewRead::new(async move {
            self.entity(E::meta());
            self.read(CacheKey::row(E::meta(), id.key_value()));
            read::get::<E>(self.engine, id).await
        })
    }

    /// Rows by id, in the order asked.
    pub fn get_many<'s, E: CachedEntity>(
        &'s mut self,
        ids: &'s [E::Id],
    ) -> ViewRead<'s, Vec<Option<Arc<E>>>>
    where
        V: Reads<E>,
    {
        ViewRead::new(async move {
            self.entity(E::meta());
            for id in ids {
                self.read(CacheKey::row(E::meta(), id.key_value()));
            }
            read::get_many::<E>(self.engine, ids).await
        })
    }

    /// The rows of a query (`SceneQuery::ByChapterId(3)`), ordered by id.
    pub fn find<Q: EntityQuery>(&mut self, query: Q) -> ViewRead<'_, Vec<Arc<Q::Entity>>>
    where
        V: Reads<Q::Entity>,
    {
        ViewRead::new(self.find_where::<Q::Entity>(query.predicate()))
    }

    /// The number of rows of a query.
    pub fn count<Q: EntityQuery>(&mut self, query: Q) -> ViewRead<'_, i64>
    where
        V: Reads<Q::Entity>,
    {
        let meta = <Q::Entity as CachedEntity>::meta();
        let predicate = query.predicate();
        ViewRead::new(async move {
            self.entity(meta);
            self.read(CacheKey::count(meta, predicate.clone()));
            read::count::<Q::Entity>(self.engine, predicate).await
        })
    }

    /// One keyset page of a query's rows in the order declared for it (`order_by` on the
    /// query's field, or on the struct for `Query::All`). The instance depends on the page's
    /// predicate (rows entering, leaving or moving within it) and on each row returned.
    /// [`Error::Unsupported`](crate::Error::Unsupported) if no order is declared for the query.
    pub fn page<Q: EntityQuery>(&mut self, query: Q, page: Page) -> ViewRead<'_, Paged<Q::Entity>>
    where
        V: Reads<Q::Entity>,
    {
        let predicate = query.predicate();
        ViewRead::new(self.page_where::<Q::Entity>(predicate, page))
    }

    /// The number of rows in each group of a key-forming field
    /// (`SceneQuery::count_grouped_by_status()`). The instance depends on the grouped counts:
    /// a row entering or leaving any group drops it.
    pub fn count_grouped<E: CachedEntity, T: AggregateValue>(
        &mut self,
        query: GroupedCount<E, T>,
    ) -> ViewRead<'_, Vec<(T, i64)>>
    where
        V: Reads<E>,
    {
        ViewRead::new(async move {
            self.entity(E::meta());
            self.read(query.key());
            let groups = aggregate::count_grouped(self.engine, query).await?;
            Ok((*groups).clone())
        })
    }

    /// The largest or smallest value of an order column among a query's rows
    /// (`TicketQuery::max_position_by_project_id(3)`). The instance depends on the query's
    /// pages tag: a row entering or leaving the query, or moving in its order, drops it.
    pub fn extreme<E: CachedEntity, T: AggregateValue>(
        &mut self,
        query: Extreme<E, T>,
    ) -> ViewRead<'_, Option<T>>
    where
        V: Reads<E>,
    {
        ViewRead::new(async move {
            self.entity(E::meta());
            self.read(query.tag());
            aggregate::extreme(self.engine, query).await
        })
    }

    /// Every row of `E`, ordered by id.
    pub fn list<E: CachedEntity>(&mut self) -> ViewRead<'_, Vec<Arc<E>>>
    where
        V: Reads<E>,
    {
        ViewRead::new(self.find_where::<E>(Predicate::All))
    }

    /// A page of a predicate's rows (see [`ViewCtx::page`]).
    async fn page_where<E: CachedEntity>(
        &mut self,
        predicate: Predicate,
        page: Page,
    ) -> Result<Paged<E>> {
        let meta = E::meta();
        let by = match &predicate {
            Predicate::All => None,
            Predicate::Eq(column, _) => Some(*column),
            Predicate::And(..) => Some(""),
        };
        let Some(order_at) = meta.orders.iter().position(|o| o.by == by) else {
            return Err(crate::Error::Unsupported {
                operation: "a page of a query with no declared order",
                store: "any store",
                hint: "declare the order: `#[cache(index, order_by = \"column\")]` on the \
                       query's field, or `#[cache(order_by = \"column\")]` on the struct",
            });
        };
        self.entity(meta);
        self.read(CacheKey::pages(meta, predicate.clone()));
        let paged = read::page::<E>(self.engine, predicate, order_at, page).await?;
        self.rows(&paged.rows);
        Ok(paged)
    }

    /// A query's rows; the instance depends on the query (rows entering or leaving it) and on
    /// each row returned (a change that leaves it in the query).
    async fn find_where<E: CachedEntity>(&mut self, predicate: Predicate) -> Result<Vec<Arc<E>>> {
        self.entity(E::meta());
        self.read(CacheKey::list(E::meta(), predicate.clone()));
        let rows = read::find::<E>(self.engine, predicate).await?;
        self.rows(&rows);
        Ok(rows)
    }
}

/// One read of a view loader ([`ViewCtx::get`], `find`, `count`, `page`, ...): await it.
///
/// A named future rather than an `async fn`'s, so that a read of an entity the view did not
/// declare is one compile error at the call (`V: Reads<E>` is checked there once), not one
/// more for the future and one for its `.await`.
#[must_use = "a view read does nothing until it is awaited"]
pub struct ViewRead<'a, T>(Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>);

impl<'a, T> ViewRead<'a, T> {
    fn new(read: impl Future<Output = Result<T>> + Send + 'a) -> Self {
        ViewRead(Box::pin(read))
    }
}

impl<T> Future for ViewRead<'_, T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl crate::context::ContextBuilder {
    /// Shares the instances of the view `V` through the broadcast's shared cache
    /// ([`RedisBroadcast::shared_cache`](crate::RedisBroadcast::shared_cache)): an instance
    /// that misses one in process reads it from Redis before computing it, and one it
    /// computes is stored there for the others. `V` travels as JSON (derive `Serialize` and
    /// `Deserialize`); an instance whose load read grouped counts is not shared.
    #[cfg(feature = "redis")]
    pub fn share_view<V>(self) -> Self
    where
        V: LoadView + serde::Serialize + serde::de::DeserializeOwned,
    {
        let meta = V::view_meta();
        let mut stamped: Vec<&'static crate::Namespace> = vec![&meta.namespace];
        for entity in meta.reads.iter().chain(meta.reads_all) {
            let namespace = &entity().namespace;
            if !stamped.iter().any(|n| std::ptr::eq(*n, namespace)) {
                stamped.push(namespace);
            }
        }
        let codec = crate::cache::redis::shared::Codec::view::<V>(V::heap_size, stamped);
        self.share_namespace(&meta.namespace, codec)
    }

    /// Warms the instances of the view `V` after an invalidation, as
    /// [`ContextBuilder::warm`](crate::ContextBuilder::warm) does an entity's entries: an
    /// instance read often since its load is loaded again (its loader run through the
    /// ordinary guarded load) as soon as a write drops it.
    pub fn warm_view<V: LoadView>(self) -> Self
    where
        <V::Key as CachedEntity>::Id: crate::value::FromValue,
    {
        use crate::value::FromValue as _;
        let warmer: crate::engine::warm::Warmer = Arc::new(|engine: Arc<Engine>, key: CacheKey| {
            Box::pin(async move {
                let Some(id) = key.row_id() else {
                    return false;
                };
                match <V::Key as CachedEntity>::Id::from_value(id.to_value()) {
                    Ok(id) => cached::<V>(&engine, id).await.is_ok(),
                    Err(_) => false,
                }
            })
        });
        self.warm_namespace(&V::view_meta().namespace, warmer)
    }
}

/// The view `V` for `key`: from the cache, or loaded once (single flight) and cached until a
/// write to something it reads invalidates it.
async fn cached<V: LoadView>(
    engine: &Engine,
    key_id: <V::Key as CachedEntity>::Id,
) -> Result<Option<Arc<V>>> {
    // The same shape as `engine::read::get`, on purpose: one generic helper for both measured
    // ~10 ns slower per hit (1.08x instead of 1.01x a bare moka get).
    let cache = &engine.cache;
    let cache_key = CacheKey::row(&V::view_meta().namespace, key_id.key_value());
    if let Some(data) = cache.get(&cache_key) {
        read::hit(cache, &cache_key);
        return Ok(view_of::<V>(data));
    }
    read::miss(cache, &cache_key);
    // Boxed: the load's state (a kilobyte) would otherwise be part of every caller's future.
    Box::pin(load::<V>(engine, cache_key, key_id)).await
}

/// A miss of [`cached`]: loads the instance once however many readers missed it, and fills.
async fn load<V: LoadView>(
    engine: &Engine,
    cache_key: CacheKey,
    key_id: <V::Key as CachedEntity>::Id,
) -> Result<Option<Arc<V>>> {
    let loaded = read::load(engine, &cache_key, || async move {
        let mut ctx = ViewCtx {
            engine,
            reads: ReadSet::default(),
            _view: PhantomData,
        };
        let view = V::load(&mut ctx, key_id).await?;
        Ok(Loaded {
            data: view.map_or(EntryData::Missing, |v| {
                let heap = v.heap_size();
                EntryData::Row(AnyRow::new(Arc::new(v), heap))
            }),
            rows: Vec::new(),
            reads: Some(ctx.reads),
        })
    })
    .await?;
    Ok(view_of::<V>(loaded.data.clone()))
}

fn view_of<V: CachedView>(data: EntryData) -> Option<Arc<V>> {
    match data {
        EntryData::Row(any) => Some(any.downcast::<V>().unwrap_or_else(|_| {
            panic!(
                "a key of view `{}` held another type",
                V::view_meta().type_name
            )
        })),
        _ => None,
    }
}
