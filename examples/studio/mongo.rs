//! The studio's MongoDB setup, apart from the domain so that a build without MongoDB does not
//! compile the driver.

/// The MongoDB counterpart of the SQL schemas: collections are created on first insert, so
/// only the constraints need declaring (a unique character name, a scene title of 1 to 200
/// characters, one appearance per scene and character) and the indexes the finders use. MongoDB has no foreign keys.
pub async fn prepare_mongo(db: &mongodb::Database) -> mongodb::error::Result<()> {
    use mongodb::bson::doc;
    use mongodb::options::IndexOptions;
    use mongodb::IndexModel;

    db.create_collection("scenes")
        .validator(doc! { "$jsonSchema": {
            "bsonType": "object",
            "properties": { "title": { "bsonType": "string", "minLength": 1, "maxLength": 200 } },
        } })
        .await?;
    let scenes = db.collection::<mongodb::bson::Document>("scenes");
    for field in ["chapter_id", "status"] {
        scenes
            .create_index(IndexModel::builder().keys(doc! { field: 1 }).build())
            .await?;
    }
    db.collection::<mongodb::bson::Document>("characters")
        .create_index(
            IndexModel::builder()
                .keys(doc! { "name": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await?;
    db.collection::<mongodb::bson::Document>("appearances")
        .create_index(
            IndexModel::builder()
                .keys(doc! { "scene_id": 1, "character_id": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await?;
    Ok(())
}
