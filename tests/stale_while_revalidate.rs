//! `#[cache(ttl = 60, stale_while_revalidate = 30)]`: an entry past its TTL is served for up to
//! 30 more seconds while one background refresh runs; past the window it is a miss like any
//! expired entry; and an entry that was invalidated (a commit, a manual call) is never served
//! stale. The out-of-band writes come from another context over the same database (its writes
//! do not reach this cache, as a change made by another process would not); TTLs run on a
//! `ManualClock`.

use crate::common;

use std::time::{Duration, Instant};

use cached_runtime::prelude::*;
use cached_runtime::ManualClock;
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "quotes", ttl = 60, stale_while_revalidate = 30)]
pub struct Quote {
    #[cache(id)]
    pub id: i64,
    #[cache(index)]
    pub symbol: String,
    pub price: i64,
}

const SQLITE: &str =
    "CREATE TABLE quotes (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, price INTEGER NOT NULL)";
const SERVER: &str = "CREATE TABLE quotes (id BIGINT PRIMARY KEY, symbol VARCHAR(10) NOT NULL, \
    price BIGINT NOT NULL)";

async fn setup(backend: Backend, clock: &ManualClock) -> Option<(Context, common::TestDb)> {
    let clock = clock.clone();
    let (ctx, db) = common::database_with(backend, 4, [SQLITE, SERVER, SERVER], move |b| {
        b.clock(clock)
    })
    .await?;
    Quote::repo(&ctx)
        .insert(&Quote {
            id: 1,
            symbol: "ACME".into(),
            price: 1,
        })
        .await
        .unwrap();
    ctx.clear();
    Some((ctx, db))
}

/// Sets the price behind `ctx`'s back (another context: no invalidation reaches `ctx`).
async fn reprice(other: &Context, price: i64) {
    Quote::repo(other)
        .update(1, QuoteUpdate::default().price(price))
        .await
        .unwrap();
}

async fn price(ctx: &Context) -> i64 {
    Quote::repo(ctx)
        .get(1)
        .await
        .unwrap()
        .expect("quote 1")
        .price
}

/// Waits until the background refresh has stored a fresh entry under `key`.
async fn refreshed(ctx: &Context, key: CacheKey) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ctx.is_cached(key.clone()) {
        assert!(Instant::now() < deadline, "no refresh of {key} within 5 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn past_its_ttl_an_entry_is_served_once_more_while_it_refreshes(backend) {
        let clock = ManualClock::new();
        let Some((ctx, db)) = setup(backend, &clock).await else { return };
        let other = Context::new(db.store.clone());
        let acme = |ctx: &Context| {
            let ctx = ctx.clone();
            async move {
                let rows = Quote::repo(&ctx).find_by_symbol("ACME").await.unwrap();
                rows.iter().map(|q| q.id).collect::<Vec<_>>()
            }
        };
        let acme_count = |ctx: &Context| {
            let ctx = ctx.clone();
            async move { Quote::repo(&ctx).count_by_symbol("ACME").await.unwrap() }
        };
        // Cached: quote 1's row, the ACME query and its count.
        assert_eq!(price(&ctx).await, 1);
        assert_eq!(acme(&ctx).await, [1]);
        assert_eq!(acme_count(&ctx).await, 1);
        // Behind the cache: quote 1 repriced, a second ACME quote.
        reprice(&other, 2).await;
        let second = Quote { id: 2, symbol: "ACME".into(), price: 7 };
        Quote::repo(&other).insert(&second).await.unwrap();

        // Within the TTL: the cached values, as always.
        clock.advance(Duration::from_secs(59));
        assert_eq!((price(&ctx).await, acme(&ctx).await, acme_count(&ctx).await), (1, vec![1], 1));

        // Past the TTL, within the window: each old value once more, and a refresh of each.
        clock.advance(Duration::from_secs(2));
        let loads = ctx.stats().loads;
        assert_eq!(acme_count(&ctx).await, 1, "a count served stale within the window");
        assert_eq!(acme(&ctx).await, [1], "a query served stale within the window");
        assert_eq!(price(&ctx).await, 1, "a row served stale within the window");
        refreshed(&ctx, QuoteKey(1).into()).await;
        refreshed(&ctx, QuoteQuery::BySymbol("ACME".into()).list_key()).await;
        refreshed(&ctx, QuoteQuery::BySymbol("ACME".into()).count_key()).await;
        assert!(ctx.stats().loads > loads, "the refreshes read the database");
        assert_eq!((price(&ctx).await, acme(&ctx).await, acme_count(&ctx).await), (2, vec![1, 2], 2));

        // Past TTL + window: a miss, never the old value.
        reprice(&other, 3).await;
        clock.advance(Duration::from_secs(91));
        assert_eq!(price(&ctx).await, 3, "beyond the window an entry is not served");
    }

    #[tokio::test]
    async fn an_invalidated_entry_is_never_served_stale(backend) {
        let clock = ManualClock::new();
        let Some((ctx, db)) = setup(backend, &clock).await else { return };
        let other = Context::new(db.store.clone());
        assert_eq!(price(&ctx).await, 1);

        // A committed write within the window: its value, at once.
        clock.advance(Duration::from_secs(61));
        Quote::repo(&ctx).update(1, QuoteUpdate::default().price(5)).await.unwrap();
        assert_eq!(price(&ctx).await, 5);

        // A manual invalidation within the window: the database's value, at once.
        clock.advance(Duration::from_secs(61));
        reprice(&other, 6).await;
        ctx.invalidate::<Quote>(1);
        assert_eq!(price(&ctx).await, 6);
    }
}
