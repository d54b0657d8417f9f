//! Keyset pages: `#[cache(index, order_by = "position")]` on a field generates
//! `page_by_<field>(value, Page)`, and `#[cache(order_by = "... desc")]` on the struct
//! generates `page(Page)`. Pages follow each other by a typed cursor (no OFFSET), each page is
//! cached with its rows, and a write drops only the pages of the predicate values its row
//! left, entered or moved within, and the pages that hold the row: after every write, every
//! page the cache serves equals a cold read.

use crate::common;

use cached_runtime::prelude::*;
use cached_runtime::{Cursor, Page, Paged};
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "albums")]
pub struct Album {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

/// Tracks of albums, paged per album by position, and every track newest first.
#[derive(CachedEntity, Clone, Debug, PartialEq, serde::Serialize)]
#[cache(table = "tracks", relates_to = "Album", order_by = "added desc")]
pub struct Track {
    #[cache(id)]
    pub id: i64,
    #[cache(index, order_by = "position")]
    pub album_id: i64,
    pub position: i64,
    pub added: i64,
    pub title: String,
}

/// An album's first two tracks, read as a page through the view's context.
#[derive(CachedView, Clone, Debug, PartialEq)]
#[view(key = "Album", reads(Album, Track))]
pub struct AlbumTop {
    pub titles: Vec<String>,
}

impl LoadView for AlbumTop {
    async fn load(ctx: &mut ViewCtx<'_, Self>, album: i64) -> Result<Option<Self>> {
        let page = ctx
            .page(TrackQuery::ByAlbumId(album), Page::first(2))
            .await?;
        let titles = page.rows.iter().map(|t| t.title.clone()).collect();
        Ok(Some(AlbumTop { titles }))
    }
}

const TABLES: &str = "CREATE TABLE albums (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL); \
    CREATE TABLE tracks (id BIGINT PRIMARY KEY, album_id BIGINT NOT NULL, \
    position BIGINT NOT NULL, added BIGINT NOT NULL, title VARCHAR(100) NOT NULL)";

fn track(id: i64, album_id: i64, position: i64) -> Track {
    Track {
        id,
        album_id,
        position,
        added: 100 - id,
        title: format!("track {id}"),
    }
}

async fn setup(backend: Backend) -> Option<(Context, common::TestDb)> {
    let (ctx, db) = common::database_with(backend, 4, [TABLES; 3], |b| b).await?;
    // Album 1: tracks 1-5 at positions 50, 40, 30, 20, 10 (so id order is not page order);
    // album 2: tracks 6-8.
    let mut rows: Vec<Track> = (1..=5).map(|id| track(id, 1, 60 - 10 * id)).collect();
    rows.extend((6..=8).map(|id| track(id, 2, id)));
    Track::repo(&ctx).insert_many(&rows).await.unwrap();
    ctx.clear();
    Some((ctx, db))
}

fn ids(page: &Paged<Track>) -> Vec<i64> {
    page.rows.iter().map(|t| t.id).collect()
}

/// Every page of album `album`, two at a time, as ids.
async fn album_pages(ctx: &Context, album: i64) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    let mut page = Page::first(2);
    loop {
        let paged = Track::repo(ctx)
            .page_by_album_id(album, page)
            .await
            .unwrap();
        out.push(ids(&paged));
        match paged.next {
            Some(cursor) => page = Page::after(cursor, 2),
            None => return out,
        }
    }
}

/// Every page of all tracks (newest first), three at a time.
async fn all_pages(ctx: &Context) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    let mut page = Page::first(3);
    loop {
        let paged = Track::repo(ctx).page(page).await.unwrap();
        out.push(ids(&paged));
        match paged.next {
            Some(cursor) => page = Page::after(cursor, 3),
            None => return out,
        }
    }
}

async fn answers(ctx: &Context) -> Vec<Vec<Vec<i64>>> {
    vec![
        album_pages(ctx, 1).await,
        album_pages(ctx, 2).await,
        all_pages(ctx).await,
    ]
}

async fn assert_fresh(ctx: &Context, db: &common::TestDb, step: &str) {
    let cold = Context::new(db.store.clone());
    assert_eq!(answers(ctx).await, answers(&cold).await, "after {step}");
}

/// Every page of album `album` on `ctx`, two at a time, each cursor sent through its string
/// form (as an HTTP client would hand it back) and read on a context of its own (another
/// instance, or the same one after a restart).
async fn album_pages_by_string(db: &common::TestDb, album: i64) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let ctx = Context::new(db.store.clone());
        let cursor = after.map(|text| text.parse::<Cursor>().unwrap());
        let paged = Track::repo(&ctx)
            .page_by_album_id(album, Page::new(cursor, 2))
            .await
            .unwrap();
        out.push(ids(&paged));
        match paged.next {
            Some(cursor) => after = Some(cursor.to_string()),
            None => return out,
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn cursors_travel_as_strings_and_are_refused_for_another_list(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        assert_eq!(album_pages_by_string(&db, 1).await, album_pages(&ctx, 1).await);
        assert_eq!(album_pages_by_string(&db, 2).await, album_pages(&ctx, 2).await);

        // As JSON (the `serde` feature): rows and the next cursor as its string.
        let first = Track::repo(&ctx).page_by_album_id(1, Page::first(2)).await.unwrap();
        let json = serde_json::to_value(&first).unwrap();
        assert_eq!(json["rows"][0]["id"], 5);
        assert_eq!(json["rows"].as_array().unwrap().len(), 2);
        let next: Cursor = serde_json::from_value(json["next"].clone()).unwrap();
        assert_eq!(Some(&next), first.next.as_ref());
        let last = Track::repo(&ctx).page_by_album_id(2, Page::first(5)).await.unwrap();
        assert_eq!(serde_json::to_value(&last).unwrap()["next"], serde_json::Value::Null);

        // Album 1's cursor, asked of album 2's pages or of every track: refused, not a wrong
        // page; in a transaction too.
        let refused = Track::repo(&ctx)
            .page_by_album_id(2, Page::after(next.clone(), 2))
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::InvalidCursor { .. }), "{refused:?}");
        assert_eq!(refused.http_status(), 400);
        let refused = Track::repo(&ctx).page(Page::after(next.clone(), 2)).await.unwrap_err();
        assert!(matches!(refused, Error::InvalidCursor { .. }), "{refused:?}");
        let mut tx = ctx.begin().await.unwrap();
        let refused = Track::repo(&mut tx)
            .page_by_album_id(2, Page::after(next.clone(), 2))
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::InvalidCursor { .. }), "{refused:?}");
        let ok = Track::repo(&mut tx)
            .page_by_album_id(1, Page::after(next, 2))
            .await
            .unwrap();
        assert_eq!(ids(&ok), [3, 2]);
        tx.rollback().await.unwrap();

        // Not a cursor at all.
        let err = "definitely/not+a cursor".parse::<Cursor>().unwrap_err();
        assert_eq!(err.http_status(), 400, "{err}");
    }

    #[tokio::test]
    async fn pages_follow_each_other_in_the_declared_order(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        assert_eq!(album_pages(&ctx, 1).await, [vec![5, 4], vec![3, 2], vec![1]]);
        assert_eq!(album_pages(&ctx, 2).await, [vec![6, 7], vec![8]]);
        // Newest first: `added` is 100 - id.
        assert_eq!(all_pages(&ctx).await, [vec![1, 2, 3], vec![4, 5, 6], vec![7, 8]]);

        // Cached: reading them again runs no query.
        let loads = ctx.stats().loads;
        answers(&ctx).await;
        assert_eq!(ctx.stats().loads, loads, "every page was a hit");
        assert_fresh(&ctx, &db, "reading").await;

        // Inside a transaction, pages read through it (its own writes included).
        let mut tx = ctx.begin().await.unwrap();
        Track::repo(&mut tx).insert(&track(9, 1, 5)).await.unwrap();
        let first = Track::repo(&mut tx).page_by_album_id(1, Page::first(2)).await.unwrap();
        assert_eq!(ids(&first), [9, 5]);
        tx.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn a_view_that_reads_a_page_follows_it(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        let top = |album| AlbumTop::get(&ctx, album);
        assert_eq!(top(1).await.unwrap().unwrap().titles, ["track 5", "track 4"]);
        assert_eq!(top(2).await.unwrap().unwrap().titles, ["track 6", "track 7"]);
        // Track 1 moves to the front of album 1: album 1's view is dropped, album 2's is not.
        Track::repo(&ctx).update(1, TrackUpdate::default().position(1)).await.unwrap();
        assert!(!ctx.is_cached(AlbumTopKey::new(1)) && ctx.is_cached(AlbumTopKey::new(2)));
        assert_eq!(top(1).await.unwrap().unwrap().titles, ["track 1", "track 5"]);
        // A title shown by the view: dropped through the row it read.
        Track::repo(&ctx).update(1, TrackUpdate::default().title("opener")).await.unwrap();
        assert_eq!(top(1).await.unwrap().unwrap().titles, ["opener", "track 5"]);
        let cold = Context::new(db.store.clone());
        assert_eq!(top(1).await.unwrap(), AlbumTop::get(&cold, 1).await.unwrap());
    }

    #[tokio::test]
    async fn a_write_drops_only_the_pages_it_changes(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        answers(&ctx).await;

        // A title change moves nothing, but a page holds its rows: only the pages that hold
        // track 7 (album 2's and the all-tracks pages) are dropped, album 1's stay cached.
        Track::repo(&ctx).update(7, TrackUpdate::default().title("renamed")).await.unwrap();
        let loads = ctx.stats().loads;
        album_pages(&ctx, 1).await;
        assert_eq!(ctx.stats().loads, loads, "album 1's pages stayed cached");
        let second = Track::repo(&ctx).page_by_album_id(2, Page::first(2)).await.unwrap();
        assert_eq!(second.rows[1].title, "renamed", "the page shows the new title");
        assert_fresh(&ctx, &db, "a title change").await;

        // A position change in album 2 reorders album 2's pages only.
        answers(&ctx).await;
        Track::repo(&ctx).update(8, TrackUpdate::default().position(0)).await.unwrap();
        let loads = ctx.stats().loads;
        album_pages(&ctx, 1).await;
        assert_eq!(ctx.stats().loads, loads, "album 1's pages stayed cached");
        assert_eq!(album_pages(&ctx, 2).await, [vec![8, 6], vec![7]], "the row moved");
        assert_fresh(&ctx, &db, "a position change").await;

        // A track moving from album 1 to album 2; an insert; a delete.
        Track::repo(&ctx).update(3, TrackUpdate::default().album_id(2)).await.unwrap();
        assert_fresh(&ctx, &db, "a move between albums").await;
        Track::repo(&ctx).insert(&track(9, 1, 45)).await.unwrap();
        assert_fresh(&ctx, &db, "an insert").await;
        Track::repo(&ctx).delete(5).await.unwrap();
        assert_fresh(&ctx, &db, "a delete").await;
        assert_eq!(album_pages(&ctx, 1).await, [vec![4, 2], vec![9, 1]]);
    }
}
