//! Negative caching per entity, on every backend: an absent id is cached like a row by
//! default, for its own time with `#[cache(negative_ttl = N)]`, and not at all with
//! `negative_ttl = 0`. TTLs run on a `ManualClock`, so nothing sleeps.

use crate::common;

use std::time::Duration;

use cached_runtime::prelude::*;
use cached_runtime::ManualClock;
use common::Backend;

/// Absent ids cached until invalidated (the default).
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "badges")]
pub struct Badge {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

/// Rows for 10 minutes, absent ids for 5 seconds.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "invites", ttl = 600, negative_ttl = 5)]
pub struct Invite {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

/// Absent ids never cached.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "tokens", negative_ttl = 0)]
pub struct Token {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

const SQLITE: &str = "CREATE TABLE badges (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
    CREATE TABLE invites (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
    CREATE TABLE tokens (id INTEGER PRIMARY KEY, name TEXT NOT NULL)";
const SERVER: &str = "CREATE TABLE badges (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL); \
    CREATE TABLE invites (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL); \
    CREATE TABLE tokens (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL)";

async fn setup(backend: Backend, clock: &ManualClock) -> Option<(Context, common::TestDb)> {
    let clock = clock.clone();
    common::database_with(backend, 4, [SQLITE, SERVER, SERVER], move |b| {
        b.clock(clock)
    })
    .await
}

backend_tests! {
    #[tokio::test]
    async fn absent_ids_are_cached_as_each_entity_declares(backend) {
        let clock = ManualClock::new();
        let Some((ctx, db)) = setup(backend, &clock).await else { return };
        // Another instance over the same database: its writes do not reach `ctx`'s cache.
        let other = Context::new(db.store.clone());
        let loads = || ctx.stats().loads;

        // Default: the absence is cached until something invalidates it, whatever the time.
        assert_eq!(Badge::repo(&ctx).get(1).await.unwrap(), None);
        assert!(ctx.is_cached(BadgeKey(1)));
        clock.advance(Duration::from_secs(86_400));
        assert!(ctx.is_cached(BadgeKey(1)), "no ttl: the negative entry stays");

        // negative_ttl = 5: served from the cache for 5 s, then read again.
        assert_eq!(Invite::repo(&ctx).get(1).await.unwrap(), None);
        let before = loads();
        let invite = Invite { id: 1, name: "to the launch".into() };
        Invite::repo(&other).insert(&invite).await.unwrap();
        clock.advance(Duration::from_secs(4));
        assert_eq!(Invite::repo(&ctx).get(1).await.unwrap(), None, "still within negative_ttl");
        assert_eq!(loads(), before, "a hit");
        clock.advance(Duration::from_secs(2));
        let found = Invite::repo(&ctx).get(1).await.unwrap();
        assert_eq!(found.as_deref(), Some(&invite), "past negative_ttl: read again");
        // The row itself lives by `ttl` (600 s), not by `negative_ttl`.
        clock.advance(Duration::from_secs(60));
        assert!(ctx.is_cached(InviteKey(1)));

        // negative_ttl = 0: an absent id is read from the database every time.
        let before = loads();
        assert_eq!(Token::repo(&ctx).get(1).await.unwrap(), None);
        assert_eq!(Token::repo(&ctx).get(1).await.unwrap(), None);
        assert_eq!(loads(), before + 2, "each read of an absent token goes to the database");
        assert!(!ctx.is_cached(TokenKey(1)));
        // Nor is anything stored for them: probing many absent ids takes no cache room.
        let entries = ctx.entry_count();
        for id in 100..150 {
            assert_eq!(Token::repo(&ctx).get(id).await.unwrap(), None);
        }
        assert_eq!(ctx.entry_count(), entries, "absent tokens take no entries");
        let token = Token { id: 1, name: "t".into() };
        Token::repo(&other).insert(&token).await.unwrap();
        assert_eq!(Token::repo(&ctx).get(1).await.unwrap().as_deref(), Some(&token));
        // A delete writes no negative entry either: the next read goes to the database.
        Token::repo(&ctx).delete(1).await.unwrap();
        assert!(!ctx.is_cached(TokenKey(1)));
        let many = Token::repo(&ctx).get_many(&[1, 2]).await.unwrap();
        assert_eq!(many, vec![None, None]);
        assert!(!ctx.is_cached(TokenKey(2)));
    }
}
