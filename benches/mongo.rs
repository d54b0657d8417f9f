//! MongoDB benchmarks, side by side in one run (when `CACHED_MONGODB_URL` is set):
//!
//! - `mongo_read`: a cached hit (`Character::repo(&ctx).get(1)`) vs a raw driver `find_one`
//!   by `_id`, decoded into the same struct;
//! - `mongo_inc`: a cached `$inc` in a transaction vs the raw `find_one_and_update` (`$inc`,
//!   `ReturnDocument::After`) in a session transaction: on a part (`increment_position`; its
//!   views are keyed by its own id, so the write costs no extra read) and on a scene
//!   (`increment_word_count`; views read it, and the commit drops the cached instances that
//!   read it through the dependency index: no extra round trip), each against the raw
//!   operation on the same collection;
//! - `mongo_update_key`: a cached `update` of an indexed field (the cache needs the old row too)
//!   vs the raw `find_one_and_update` of it in a session transaction.
//!
//! In each group the variants run in rotating order in every iteration; each benchmark times
//! one of them.
//!
//! Run with `CACHED_MONGODB_URL=... cargo bench --bench mongo`; read the ratios.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)] // the SQL schemas are for the other benchmarks
mod domain;
#[path = "../examples/studio/mongo.rs"]
mod mongo;
mod support;

use std::time::Duration;

use cached_runtime::prelude::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use domain::*;
use mongodb::bson::{doc, Document};
use mongodb::options::{ReadConcern, ReturnDocument, WriteConcern};

/// A character as an application without the cache would decode it (serde).
#[derive(serde::Deserialize)]
#[allow(dead_code)] // read only through `black_box`
struct RawCharacter {
    id: i64,
    story_id: i64,
    name: String,
    role: String,
    traits: Vec<String>,
}

/// A raw read as an application without the cache would write it.
async fn raw_character(coll: &mongodb::Collection<Document>) -> Option<RawCharacter> {
    let mut doc = coll.find_one(doc! { "_id": 1i64 }).await.unwrap()?;
    let id = doc.remove("_id").expect("_id");
    doc.insert("id", id);
    Some(mongodb::bson::from_document(doc).unwrap())
}

/// A raw `find_one_and_update` (`ReturnDocument::After`) of one document in a session
/// transaction, as an application without the cache would write it.
async fn raw_modify(
    client: &mongodb::Client,
    coll: &mongodb::Collection<Document>,
    id: i64,
    update: Document,
) {
    let mut session = client.start_session().await.unwrap();
    session
        .start_transaction()
        .read_concern(ReadConcern::snapshot())
        .write_concern(WriteConcern::majority())
        .await
        .unwrap();
    let updated = coll
        .find_one_and_update(doc! { "_id": id }, update)
        .return_document(ReturnDocument::After)
        .session(&mut session)
        .await
        .unwrap();
    black_box(updated);
    session.commit_transaction().await.unwrap();
}

fn mongo(c: &mut Criterion) {
    let Some(url) = std::env::var("CACHED_MONGODB_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("note: CACHED_MONGODB_URL is unset; skipping the MongoDB benchmarks");
        return;
    };
    let rt = support::runtime();
    let name = format!("bench_{}", std::process::id());
    let (client, db) = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&url).await.expect("client");
        let db = client.database(&name);
        mongo::prepare_mongo(&db).await.expect("prepare");
        (client, db)
    });
    let ctx = Context::new(db.clone());
    rt.block_on(async {
        let mut tx = ctx.begin().await.unwrap();
        Story::repo(&mut tx)
            .insert(&Story {
                id: 1,
                title: "Bench".into(),
                status: "draft".into(),
            })
            .await
            .unwrap();
        Character::repo(&mut tx)
            .insert(&Character {
                id: 1,
                story_id: 1,
                name: "Mara".into(),
                role: "keeper".into(),
                traits: vec!["brave".into()],
            })
            .await
            .unwrap();
        Part::repo(&mut tx)
            .insert(&Part {
                id: 1,
                story_id: 1,
                title: "Part".into(),
                position: 1,
            })
            .await
            .unwrap();
        Chapter::repo(&mut tx)
            .insert(&Chapter {
                id: 1,
                story_id: 1,
                part_id: 1,
                title: "Chapter".into(),
                position: 1,
            })
            .await
            .unwrap();
        Scene::repo(&mut tx)
            .insert(&Scene {
                id: 5,
                chapter_id: 1,
                story_id: 1,
                location_id: None,
                status: "draft".into(),
                title: "Scene 5".into(),
                word_count: 0,
                version: 1,
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Character::repo(&ctx).get(1).await.unwrap().unwrap();
    });

    let characters = db.collection::<Document>("characters");
    let mut group = c.benchmark_group("mongo_read");
    group.bench_function("cached_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(Character::repo(&ctx).get(black_box(1)).await.unwrap()) })
    });
    group.bench_function("raw_find_one", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(raw_character(&characters).await) })
    });
    group.finish();

    let scenes = db.collection::<Document>("scenes");
    let parts = db.collection::<Document>("parts");
    let stories = db.collection::<Document>("stories");
    let mut group = c.benchmark_group("mongo_inc");
    group.measurement_time(Duration::from_secs(10));
    let labels = [
        "part_cached_in_tx",
        "part_raw_find_one_and_update_in_session",
        "scene_cached_in_tx_read_by_views",
        "scene_raw_find_one_and_update_in_session",
    ];
    support::rotating(&mut group, &rt, &labels, |variant| {
        let (ctx, client, scenes, parts) = (&ctx, &client, &scenes, &parts);
        async move {
            match variant {
                0 => {
                    let mut tx = ctx.begin().await.unwrap();
                    Part::repo(&mut tx).increment_position(1, 1).await.unwrap();
                    black_box(tx.commit().await.unwrap());
                }
                1 => raw_modify(client, parts, 1, doc! { "$inc": { "position": 1i64 } }).await,
                2 => {
                    let mut tx = ctx.begin().await.unwrap();
                    Scene::repo(&mut tx)
                        .increment_word_count(5, 1)
                        .await
                        .unwrap();
                    black_box(tx.commit().await.unwrap());
                }
                _ => raw_modify(client, scenes, 5, doc! { "$inc": { "word_count": 1i64 } }).await,
            }
        }
    });
    group.finish();

    // A key-changing update: the cache needs the old row too (one `findOneAndUpdate` returning
    // the document before), and drops the queries of the old and the new status.
    let flips = std::sync::atomic::AtomicUsize::new(0);
    let status =
        || ["draft", "review"][flips.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2];
    let mut group = c.benchmark_group("mongo_update_key");
    group.measurement_time(Duration::from_secs(10));
    let labels = [
        "story_cached_in_tx",
        "story_raw_find_one_and_update_in_session",
    ];
    support::rotating(&mut group, &rt, &labels, |variant| {
        let (ctx, client, stories, status) = (&ctx, &client, &stories, &status);
        async move {
            if variant == 0 {
                let mut tx = ctx.begin().await.unwrap();
                Story::repo(&mut tx)
                    .update(1, StoryUpdate::default().status(status()))
                    .await
                    .unwrap();
                black_box(tx.commit().await.unwrap());
            } else {
                raw_modify(client, stories, 1, doc! { "$set": { "status": status() } }).await;
            }
        }
    });
    group.finish();
    rt.block_on(async { db.drop().await.unwrap() });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1));
    targets = mongo
}
criterion_main!(benches);
