//! MongoDB `ObjectId`s as ids and key-forming fields: stored as BSON ObjectIds (not strings),
//! printed in keys as their hex digits, and found again by every repository method.
//!
//! Needs `CACHED_MONGODB_URL`, like the other MongoDB tests.

use crate::common;

use cached_runtime::{CachedEntity, ConstraintKind, Context, Error, QueryKey};
use common::Backend;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{doc, Bson, Document};

/// A MongoDB-only entity: `ObjectId` id and an `ObjectId` index. It derives neither
/// `serde::Deserialize` nor `sqlx::FromRow`, in a build with every store enabled: stores read
/// rows through the entity's generated `from_values`.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(collection = "tags")]
struct Tag {
    #[cache(id)]
    id: ObjectId,
    #[cache(index)]
    owner: ObjectId,
    label: String,
    /// Other tags this one stands for.
    aliases: Vec<ObjectId>,
}

fn tag(owner: ObjectId, label: &str) -> Tag {
    Tag {
        id: ObjectId::new(),
        owner,
        label: label.into(),
        aliases: Vec::new(),
    }
}

#[tokio::test]
async fn object_ids_are_ids_and_keys_on_mongodb() {
    let Some(db) = common::database(Backend::Mongo, 4).await else {
        return;
    };
    let ctx = Context::new(db.store.clone());
    let (alice, bob) = (ObjectId::new(), ObjectId::new());
    let (a, b) = (tag(alice, "red"), tag(bob, "blue"));
    Tag::repo(&ctx)
        .insert_many(&[a.clone(), b.clone()])
        .await
        .unwrap();

    // Stored as a BSON ObjectId under `_id`, not as text.
    let raw: Document = db
        .mongo()
        .collection::<Document>("tags")
        .find_one(doc! { "_id": a.id })
        .await
        .unwrap()
        .expect("found by its ObjectId");
    assert_eq!(raw.get("_id"), Some(&Bson::ObjectId(a.id)));
    assert_eq!(raw.get("owner"), Some(&Bson::ObjectId(alice)));

    // Keys print the hex digits.
    assert_eq!(TagKey(a.id).to_string(), format!("tag:{}", a.id.to_hex()));
    let by_alice = TagQuery::ByOwner(alice);
    assert_eq!(
        by_alice.list_key().to_string(),
        format!("tag?owner={}", alice.to_hex())
    );

    // Reads: a miss, then a hit; queries by an ObjectId.
    assert_eq!(*Tag::repo(&ctx).get(a.id).await.unwrap().unwrap(), a);
    assert!(ctx.is_cached(TagKey(a.id)));
    let found = Tag::repo(&ctx).find_by_owner(alice).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, a.id);
    assert!(Tag::repo(&ctx)
        .get(ObjectId::new())
        .await
        .unwrap()
        .is_none());

    // Moving a tag to another owner drops exactly the two owners' queries.
    Tag::repo(&ctx).find_by_owner(bob).await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    Tag::repo(&mut tx)
        .update(a.id, TagUpdate::default().owner(bob))
        .await
        .unwrap();
    let report = tx.commit().await.unwrap();
    let mut keys = report.key_strings();
    keys.sort();
    let mut expected = vec![
        format!("tag?owner={}", alice.to_hex()),
        format!("tag#count?owner={}", alice.to_hex()),
        format!("tag?owner={}", bob.to_hex()),
        format!("tag#count?owner={}", bob.to_hex()),
        "tag#count_by(owner)".to_owned(),
        format!("tag:{}", a.id.to_hex()),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(Tag::repo(&ctx).find_by_owner(bob).await.unwrap().len(), 2);
    assert!(Tag::repo(&ctx)
        .find_by_owner(alice)
        .await
        .unwrap()
        .is_empty());

    // Lists of ObjectIds are arrays of ObjectIds.
    let tagged = Tag::repo(&ctx).append_aliases(a.id, b.id).await.unwrap();
    assert_eq!(tagged.aliases, [b.id]);
    let raw = db
        .mongo()
        .collection::<Document>("tags")
        .find_one(doc! { "aliases": b.id })
        .await
        .unwrap()
        .expect("found by an ObjectId in the array");
    assert_eq!(raw.get_object_id("_id").unwrap(), a.id);

    // A duplicate id is the typed unique violation; the cache keeps the stored row.
    let mut twin = tag(alice, "twin");
    twin.id = b.id;
    let err = Tag::repo(&ctx).insert(&twin).await.unwrap_err();
    assert!(err.is_constraint(ConstraintKind::Unique), "{err:?}");
    assert_eq!(
        Tag::repo(&ctx).get(b.id).await.unwrap().unwrap().label,
        "blue"
    );

    Tag::repo(&ctx).delete(a.id).await.unwrap();
    assert!(Tag::repo(&ctx).get(a.id).await.unwrap().is_none());
    let gone = Tag::repo(&ctx).delete(a.id).await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");
}
