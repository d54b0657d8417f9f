//! MongoDB benchmarks, side by side in one run (when `CACHED_MONGODB_URL` is set):
//!
//! - `mongo_read`: a cached hit (`Character::repo(&ctx).get(1)`) vs a raw driver `find_one`
//!   by `_id`, decoded into the same struct;
//! - `mongo_inc`: a cached `$inc` in a transaction vs the raw `find_one_and_update` (`$inc`,
//!   `ReturnDocument::After`) in a session transaction: on a part (`increment_position`; its
//!   views are keyed by its own id, so the write costs no extra read) and on a scene
//!   (`increment_word_count`; a view reaches it through the chain scene -> chapter -> part,
//!   which costs one read inside the transaction and one after the commit), each against the
//!   raw operation on the same collection. The four variants
//!   run in rotating order in every iteration; each benchmark times one of them.
//!
//! Run with `CACHED_MONGODB_URL=... cargo bench --bench mongo`; read the ratios.

#[path = "../examples/studio/domain.rs"]
#[allow(dead_code)] // the SQL schemas are for the other benchmarks
mod domain;

use std::time::{Duration, Instant};

use cached_runtime::prelude::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use domain::*;
use mongodb::bson::{doc, Document};
use mongodb::options::{ReadConcern, ReturnDocument, WriteConcern};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A raw read as an application without the cache would write it.
async fn raw_character(coll: &mongodb::Collection<Document>) -> Option<Character> {
    let mut doc = coll.find_one(doc! { "_id": 1i64 }).await.unwrap()?;
    let id = doc.remove("_id").expect("_id");
    doc.insert("id", id);
    Some(mongodb::bson::from_document(doc).unwrap())
}

/// The raw `$inc` of one document's field in a session transaction.
async fn raw_inc(
    client: &mongodb::Client,
    coll: &mongodb::Collection<Document>,
    id: i64,
    field: &str,
) {
    let mut session = client.start_session().await.unwrap();
    session
        .start_transaction()
        .read_concern(ReadConcern::snapshot())
        .write_concern(WriteConcern::majority())
        .await
        .unwrap();
    let updated = coll
        .find_one_and_update(doc! { "_id": id }, doc! { "$inc": { field: 1i64 } })
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
    let rt = runtime();
    let name = format!("bench_{}", std::process::id());
    let (client, db) = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&url).await.expect("client");
        let db = client.database(&name);
        prepare_mongo(&db).await.expect("prepare");
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
    let mut group = c.benchmark_group("mongo_inc");
    group.measurement_time(Duration::from_secs(10));
    let variants = [
        "part_cached_in_tx",
        "part_raw_find_one_and_update_in_session",
        "scene_cached_in_tx_view_chain",
        "scene_raw_find_one_and_update_in_session",
    ];
    for (timed, label) in variants.into_iter().enumerate() {
        group.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (ctx, client, scenes, parts) = (&ctx, &client, &scenes, &parts);
                async move {
                    let mut total = Duration::ZERO;
                    for i in 0..iters as usize {
                        for turn in 0..4 {
                            let variant = (i + turn) % 4;
                            let started = Instant::now();
                            if variant == 0 {
                                let mut tx = ctx.begin().await.unwrap();
                                Part::repo(&mut tx).increment_position(1, 1).await.unwrap();
                                black_box(tx.commit().await.unwrap());
                            } else if variant == 1 {
                                raw_inc(client, parts, 1, "position").await;
                            } else if variant == 2 {
                                let mut tx = ctx.begin().await.unwrap();
                                Scene::repo(&mut tx)
                                    .increment_word_count(5, 1)
                                    .await
                                    .unwrap();
                                black_box(tx.commit().await.unwrap());
                            } else {
                                raw_inc(client, scenes, 5, "word_count").await;
                            }
                            if variant == timed {
                                total += started.elapsed();
                            }
                        }
                    }
                    total
                }
            })
        });
    }
    group.finish();
    rt.block_on(async { db.drop().await.unwrap() });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1));
    targets = mongo
}
criterion_main!(benches);
