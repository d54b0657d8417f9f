//! Every store reads rows through the entity's generated `from_values`, so each backend's
//! native column types must come back as the fields they were written from: narrow and
//! unsigned integers (MySQL's `UNSIGNED`, which sqlx reads only as unsigned Rust types),
//! booleans, single-precision floats, bytes, JSON lists, nulls. A stored value that does not
//! fit its field is a typed `Error::Decode` naming the column, and nothing is cached.

#[macro_use]
mod common;

use cached_runtime::prelude::*;
use common::Backend;

/// One field of each kind, on each backend's native column type (see the DDL below). The
/// entity derives neither `sqlx::FromRow` nor `serde::Deserialize`.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "gauges")]
pub struct Gauge {
    #[cache(id)]
    pub id: i64,
    pub small: i16,
    pub count: u32,
    pub tiny: u8,
    pub enabled: bool,
    pub ratio: f32,
    pub bytes: Vec<u8>,
    pub tags: Vec<String>,
    pub note: Option<String>,
}

const SQLITE: &str = "CREATE TABLE gauges (id INTEGER PRIMARY KEY, small INTEGER NOT NULL, \
    count INTEGER NOT NULL, tiny INTEGER NOT NULL, enabled BOOLEAN NOT NULL, \
    ratio REAL NOT NULL, bytes BLOB NOT NULL, tags TEXT NOT NULL, note TEXT)";
const POSTGRES: &str = "CREATE TABLE gauges (id BIGINT PRIMARY KEY, small SMALLINT NOT NULL, \
    count BIGINT NOT NULL, tiny SMALLINT NOT NULL, enabled BOOLEAN NOT NULL, \
    ratio REAL NOT NULL, bytes BYTEA NOT NULL, tags JSONB NOT NULL, note TEXT)";
const MYSQL: &str = "CREATE TABLE gauges (id BIGINT PRIMARY KEY, small SMALLINT NOT NULL, \
    count BIGINT UNSIGNED NOT NULL, tiny TINYINT UNSIGNED NOT NULL, enabled BOOLEAN NOT NULL, \
    ratio FLOAT NOT NULL, bytes BLOB NOT NULL, tags JSON NOT NULL, note TEXT)";

fn gauge() -> Gauge {
    Gauge {
        id: 1,
        small: -300,
        // Above i32::MAX: an unsigned column on MySQL.
        count: 4_000_000_000,
        tiny: 200,
        enabled: true,
        ratio: 0.5,
        bytes: vec![0, 255, 7],
        tags: vec!["a\"b".into(), "ü".into()],
        note: None,
    }
}

async fn setup(backend: Backend) -> Option<(Context, common::TestDb)> {
    common::database_with(backend, 4, [SQLITE, POSTGRES, MYSQL], |b| b).await
}

backend_tests! {
    #[tokio::test]
    async fn native_column_types_read_back_as_their_fields(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        let stored = Gauge::repo(&ctx).insert(&gauge()).await.unwrap();
        assert_eq!(*stored, gauge(), "the row as the insert returned it");

        let cold = Context::new(db.store.clone());
        let read = Gauge::repo(&cold).get(1).await.unwrap().expect("the row");
        assert_eq!(*read, gauge(), "the row read back from the database");

        let patch = GaugeUpdate::default()
            .note(Some("x".to_string()))
            .tags(vec![])
            .enabled(false);
        let updated = Gauge::repo(&ctx).update(1, patch).await.unwrap();
        let expected = Gauge {
            note: Some("x".into()),
            tags: vec![],
            enabled: false,
            ..gauge()
        };
        assert_eq!(*updated, expected);
        cold.clear();
        assert_eq!(*Gauge::repo(&cold).get(1).await.unwrap().unwrap(), expected);
    }

    #[tokio::test]
    async fn a_value_that_does_not_fit_its_field_is_a_typed_error(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        Gauge::repo(&ctx).insert(&gauge()).await.unwrap();
        // Behind the cache's back: a count that does not fit the `u32` field.
        if backend.is_mongo() {
            use mongodb::bson::doc;
            db.mongo()
                .collection::<mongodb::bson::Document>("gauges")
                .update_one(doc! { "_id": 1i64 }, doc! { "$set": { "count": 5_000_000_000i64 } })
                .await
                .unwrap();
        } else {
            db.execute("UPDATE gauges SET count = 5000000000 WHERE id = 1").await;
        }

        let cold = Context::new(db.store.clone());
        let err = Gauge::repo(&cold).get(1).await.unwrap_err();
        assert!(matches!(err, Error::Decode { entity: "Gauge", .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("column `count`") && message.contains("u32"),
            "the error names the column and the field's type: {message}"
        );
        assert!(!cold.is_cached(GaugeKey(1)), "nothing is cached from a row that failed");
    }

    // `check_schema` accepts every native type above (the studio tables too) and names each
    // column whose declared type cannot hold its field: here an integer on a text column and
    // text on an integer column.
    #[tokio::test]
    async fn check_schema_names_the_columns_that_cannot_round_trip(backend) {
        if backend.is_mongo() {
            return;
        }
        let Some((ctx, db)) = setup(backend).await else { return };
        let misfits = match backend {
            Backend::Sqlite => "CREATE TABLE misfits (id INTEGER PRIMARY KEY, count TEXT NOT NULL, \
                label INTEGER NOT NULL)",
            Backend::Postgres => "CREATE TABLE misfits (id BIGINT PRIMARY KEY, count TEXT NOT NULL, \
                label BIGINT NOT NULL)",
            _ => "CREATE TABLE misfits (id BIGINT PRIMARY KEY, count VARCHAR(20) NOT NULL, \
                label BIGINT NOT NULL)",
        };
        db.execute(misfits).await;
        let err = ctx.check_schema().await.unwrap_err();
        let Error::Schema { problems } = &err else { panic!("{err}") };
        assert_eq!(problems.len(), 2, "{err}");
        assert!(problems[0].starts_with("Misfit: column `misfits.count` is `"), "{err}");
        assert!(problems[0].contains("(an integer)"), "{err}");
        assert!(problems[1].starts_with("Misfit: column `misfits.label` is `"), "{err}");
        assert!(problems[1].contains("(text)"), "{err}");
    }
}

/// An entity whose table declares columns that cannot give its fields back.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "misfits")]
pub struct Misfit {
    #[cache(id)]
    pub id: i64,
    pub count: i64,
    pub label: String,
}
