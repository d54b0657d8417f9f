//! The MongoDB store, on the official `mongodb` driver.
//!
//! An entity's table is its collection; its id is the document's `_id` (the id field is not
//! stored twice: documents are written with `_id` in its place and read back with `_id`
//! renamed to the id field before serde decodes them). Every other column is a top-level
//! field of the same name.
//!
//! Writes run inside a multi-document transaction on a [`ClientSession`] (snapshot reads,
//! majority writes). The old row a write needs for precise invalidation is read inside the
//! same snapshot: if another transaction changes that document before this one writes it,
//! MongoDB fails the write with a `WriteConflict` (`TransientTransactionError`), which this
//! store reports as the retryable [`Error::Conflict`], so an invalidation is never computed
//! from a value that was overwritten behind it.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{
    ErrorKind, WriteFailure, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::options::{
    CollectionOptions, ReadConcern, ReadPreference, ReturnDocument, SelectionCriteria, WriteConcern,
};
use mongodb::{ClientSession, Collection, Database};

use crate::entity::{CachedEntity, EntityMeta};
use crate::error::{ConstraintKind, Error, Result};
use crate::key::Predicate;
use crate::value::{KeyValue, Value};

/// An open MongoDB transaction: the session that carries it, and the database it writes.
pub(crate) struct MongoTx {
    db: Database,
    session: ClientSession,
}

/// How many times a commit whose outcome is unknown is retried, as the driver documentation
/// prescribes for `UnknownTransactionCommitResult` (commit is idempotent).
const COMMIT_ATTEMPTS: usize = 4;

/// Starts a session and a transaction on it (snapshot reads, majority writes).
pub(crate) async fn begin(db: &Database) -> Result<MongoTx> {
    let mut session = db
        .client()
        .start_session()
        .await
        .map_err(|e| from_mongo("transaction", e))?;
    session
        .start_transaction()
        .read_concern(ReadConcern::snapshot())
        .write_concern(WriteConcern::majority())
        .await
        .map_err(|e| from_mongo("transaction", e))?;
    Ok(MongoTx {
        db: db.clone(),
        session,
    })
}

impl MongoTx {
    /// Commits, retrying while the server says the outcome is unknown. A
    /// `TransientTransactionError` means the transaction was aborted: it is returned as the
    /// retryable [`Error::Conflict`] and the caller knows nothing was written.
    pub async fn commit(mut self) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.session.commit_transaction().await {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                        && attempt < COMMIT_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(from_mongo("transaction", e)),
            }
        }
    }

    pub async fn rollback(mut self) -> Result<()> {
        self.session
            .abort_transaction()
            .await
            .map_err(|e| from_mongo("transaction", e))
    }
}

/// Where a MongoDB operation runs: outside any transaction (cache fills), or in one.
pub(crate) enum MongoExec<'a> {
    Pool(&'a Database),
    Session(&'a mut MongoTx),
}

/// Runs `$action` (a driver action builder) with the transaction's session, if any.
macro_rules! run {
    ($exec:expr, $meta:expr, $coll:ident => $action:expr) => {
        match $exec {
            MongoExec::Pool(db) => {
                let $coll = collection(db, $meta);
                $action.await
            }
            MongoExec::Session(tx) => {
                let $coll = collection(&tx.db, $meta);
                $action.session(&mut tx.session).await
            }
        }
        .map_err(|e| from_mongo($meta.type_name, e))
    };
}

/// The entity's collection. Reads go to the primary whatever the client's read preference: a
/// cache fill from a lagging secondary could store a row older than a commit that has already
/// returned.
fn collection(db: &Database, meta: &'static EntityMeta) -> Collection<Document> {
    let options = CollectionOptions::builder()
        .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
        .build();
    db.collection_with_options(meta.table, options)
}

/// A column value as BSON.
pub(crate) fn bson(value: Value) -> Bson {
    match value {
        Value::Null(_) => Bson::Null,
        Value::Bool(b) => Bson::Boolean(b),
        Value::Int(i) => Bson::Int64(i),
        Value::Float(f) => Bson::Double(f),
        Value::Text(s) => Bson::String(s),
        Value::Bytes(bytes) => Bson::Binary(mongodb::bson::Binary {
            subtype: mongodb::bson::spec::BinarySubtype::Generic,
            bytes,
        }),
        Value::List(items) => Bson::Array(items.into_iter().map(bson).collect()),
        Value::ObjectId(bytes) => Bson::ObjectId(mongodb::bson::oid::ObjectId::from_bytes(bytes)),
    }
}

fn key_bson(value: &KeyValue) -> Bson {
    bson(value.to_value())
}

/// The field a column is stored under.
fn field(meta: &'static EntityMeta, column: &'static str) -> &'static str {
    if column == meta.id_column {
        "_id"
    } else {
        column
    }
}

/// The document of a row: `_id` for the id, every other column under its own name.
fn document<E: CachedEntity>(row: &E) -> Document {
    let meta = E::meta();
    meta.columns
        .iter()
        .zip(row.values())
        .map(|(column, value)| (field(meta, column).to_string(), bson(value)))
        .collect()
}

/// Decodes a document into the entity (with `_id` renamed back to the id field).
fn decode<E: CachedEntity>(mut doc: Document) -> Result<E> {
    let meta = E::meta();
    if let Some(id) = doc.remove("_id") {
        doc.insert(meta.id_column, id);
    }
    mongodb::bson::from_document(doc).map_err(|e| Error::Decode {
        entity: meta.type_name,
        source: Box::new(e),
    })
}

fn by_id(id: &KeyValue) -> Document {
    doc! { "_id": key_bson(id) }
}

fn by_ids(ids: &[KeyValue]) -> Document {
    doc! { "_id": { "$in": ids.iter().map(key_bson).collect::<Vec<_>>() } }
}

/// `{ "$set": { field: value, ... } }`.
fn set(meta: &'static EntityMeta, assignments: Vec<(&'static str, Value)>) -> Document {
    let fields: Document = assignments
        .into_iter()
        .map(|(column, value)| (field(meta, column).to_string(), bson(value)))
        .collect();
    doc! { "$set": fields }
}

fn filter(meta: &'static EntityMeta, predicate: &Predicate) -> Document {
    match predicate {
        Predicate::All => Document::new(),
        Predicate::Eq(position, value) => {
            let column = meta.indexes[*position].column;
            doc! { field(meta, column): key_bson(value) }
        }
    }
}

impl MongoExec<'_> {
    /// The documents matching `filter`, ordered by `_id`, decoded.
    async fn find<E: CachedEntity>(&mut self, filter: Document) -> Result<Vec<E>> {
        let meta = E::meta();
        let err = |e| from_mongo(meta.type_name, e);
        let docs: Vec<Document> = match self {
            MongoExec::Pool(db) => {
                let cursor = collection(db, meta)
                    .find(filter)
                    .sort(doc! { "_id": 1 })
                    .await
                    .map_err(&err)?;
                cursor.try_collect().await.map_err(&err)?
            }
            MongoExec::Session(tx) => {
                let mut cursor = collection(&tx.db, meta)
                    .find(filter)
                    .sort(doc! { "_id": 1 })
                    .session(&mut tx.session)
                    .await
                    .map_err(&err)?;
                cursor
                    .stream(&mut tx.session)
                    .try_collect()
                    .await
                    .map_err(&err)?
            }
        };
        docs.into_iter().map(decode::<E>).collect()
    }

    /// The document with this `_id`.
    pub async fn fetch_by_id<E: CachedEntity>(&mut self, id: &KeyValue) -> Result<Option<E>> {
        let meta = E::meta();
        let doc = run!(self, meta, c => c.find_one(by_id(id)))?;
        doc.map(decode::<E>).transpose()
    }

    /// The documents with these ids (`$in`), ordered by `_id`.
    pub async fn fetch_by_ids<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        self.find::<E>(by_ids(ids)).await
    }

    /// The documents matching a query key's predicate, ordered by `_id`.
    pub async fn fetch_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<Vec<E>> {
        self.find::<E>(filter(E::meta(), predicate)).await
    }

    /// `countDocuments` for a query key's predicate.
    pub async fn count_where<E: CachedEntity>(&mut self, predicate: &Predicate) -> Result<i64> {
        let meta = E::meta();
        let filter = filter(meta, predicate);
        let n = run!(self, meta, c => c.count_documents(filter))?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// Inserts rows. MongoDB stores exactly the documents given, so the stored rows are those
    /// documents decoded (not the rows as passed in: a `skip` field is not stored, and must
    /// read back as its default, as it does after a reload).
    pub async fn insert<E: CachedEntity>(&mut self, rows: &[E]) -> Result<Vec<E>> {
        let meta = E::meta();
        let docs: Vec<Document> = rows.iter().map(document).collect();
        let stored = docs.clone();
        run!(self, meta, c => c.insert_many(docs))?;
        stored.into_iter().map(decode::<E>).collect()
    }

    /// Applies an update document to one row and returns the row after it.
    async fn modify<E: CachedEntity>(
        &mut self,
        id: &KeyValue,
        update: Document,
    ) -> Result<Option<E>> {
        let meta = E::meta();
        let doc = run!(self, meta, c => c
            .find_one_and_update(by_id(id), update)
            .return_document(ReturnDocument::After))?;
        doc.map(decode::<E>).transpose()
    }

    /// `$set` on one document; returns it after the change.
    pub async fn update<E: CachedEntity>(
        &mut self,
        id: &KeyValue,
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<Option<E>> {
        let set = set(E::meta(), assignments);
        self.modify::<E>(id, set).await
    }

    /// `$set` on one document in one round trip, returning it before and after the change:
    /// the server returns the document before, and the same `$set` applied to it locally is
    /// the document after (the values are known exactly).
    pub async fn update_keeping_old<E: CachedEntity>(
        &mut self,
        id: &KeyValue,
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<Option<(E, E)>> {
        let meta = E::meta();
        let set = set(meta, assignments);
        let update = set.clone();
        let before = run!(self, meta, c => c
            .find_one_and_update(by_id(id), update)
            .return_document(ReturnDocument::Before))?;
        let Some(before) = before else {
            return Ok(None);
        };
        let mut after = before.clone();
        if let Ok(fields) = set.get_document("$set") {
            for (name, value) in fields {
                after.insert(name.clone(), value.clone());
            }
        }
        Ok(Some((decode::<E>(before)?, decode::<E>(after)?)))
    }

    /// `$inc`: adds `delta` to a numeric field.
    pub async fn add<E: CachedEntity>(
        &mut self,
        id: &KeyValue,
        column: &'static str,
        delta: i64,
    ) -> Result<Option<E>> {
        let name = field(E::meta(), column);
        self.modify::<E>(id, doc! { "$inc": { name: delta } }).await
    }

    /// `$push` (append) or `$pull` (remove every equal item) on an array field.
    pub async fn list_op<E: CachedEntity>(
        &mut self,
        id: &KeyValue,
        column: &'static str,
        item: Value,
        append: bool,
    ) -> Result<Option<E>> {
        let name = field(E::meta(), column);
        let op = if append { "$push" } else { "$pull" };
        self.modify::<E>(id, doc! { op: { name: bson(item) } })
            .await
    }

    /// Sets columns on every row with one of these ids.
    pub async fn update_ids<E: CachedEntity>(
        &mut self,
        ids: &[KeyValue],
        assignments: Vec<(&'static str, Value)>,
    ) -> Result<()> {
        let meta = E::meta();
        let (filter, set) = (by_ids(ids), set(meta, assignments));
        run!(self, meta, c => c.update_many(filter, set))?;
        Ok(())
    }

    /// Deletes rows by id and returns the rows that existed (read in the same snapshot).
    pub async fn delete<E: CachedEntity>(&mut self, ids: &[KeyValue]) -> Result<Vec<E>> {
        let meta = E::meta();
        let filter = by_ids(ids);
        let rows = self.find::<E>(filter.clone()).await?;
        run!(self, meta, c => c.delete_many(filter))?;
        Ok(rows)
    }
}

/// The numeric code and message of a server error, wherever the driver put them.
fn server_error(err: &mongodb::error::Error) -> Option<(i32, &str)> {
    match err.kind.as_ref() {
        ErrorKind::Command(e) => Some((e.code, &e.message)),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some((e.code, &e.message)),
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .and_then(|errors| errors.first())
            .map(|e| (e.code, e.message.as_str())),
        _ => None,
    }
}

/// Classifies a driver error raised while working on `entity`.
pub(crate) fn from_mongo(entity: &'static str, err: mongodb::error::Error) -> Error {
    if err.contains_label(TRANSIENT_TRANSACTION_ERROR) {
        return Error::Conflict {
            entity,
            message: err.to_string(),
        };
    }
    let (code, message) = server_error(&err).unwrap_or((0, ""));
    let kind = match code {
        // E11000 duplicate key.
        11000 | 11001 => Some(ConstraintKind::Unique),
        // A collection validator refused the document.
        121 => Some(ConstraintKind::Check),
        // WriteConflict outside a transaction's labels.
        112 => {
            return Error::Conflict {
                entity,
                message: message.to_string(),
            }
        }
        _ => None,
    };
    match kind {
        Some(kind) => Error::Constraint {
            entity,
            kind,
            message: message.to_string(),
        },
        None if matches!(err.kind.as_ref(), ErrorKind::BsonDeserialization(_)) => Error::Decode {
            entity,
            source: Box::new(err),
        },
        None => Error::Mongo(err),
    }
}
