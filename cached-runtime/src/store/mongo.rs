//! The MongoDB store, on the official `mongodb` driver.
//!
//! An entity's table is its collection; its id is the document's `_id` (the id field is not
//! stored twice: documents are written with `_id` in its place, and the id column is read
//! back from `_id`). Every other column is a top-level field of the same name; a row is read
//! field by field into [`Value`]s, so entities need no `serde::Deserialize`.
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
use sqlx::SqlStr;

use super::backend::{Assignments, Backend, BoxFuture, Meta, Ops, Row, TxOps};
use super::catalog::Catalog;
use super::RawStore;
use crate::entity::OrderMeta;
use crate::error::{ConstraintKind, Error, Result};
use crate::key::Predicate;
use crate::value::{KeyValue, Value, ValueKind};

/// A MongoDB database.
#[derive(Debug)]
pub(crate) struct MongoStore {
    db: Database,
}

impl MongoStore {
    pub fn new(db: Database) -> Self {
        MongoStore { db }
    }
}

impl Backend for MongoStore {
    fn name(&self) -> &'static str {
        "MongoDB"
    }

    fn ops(&self) -> Box<dyn Ops + '_> {
        Box::new(MongoOps::Pool(&self.db))
    }

    /// Starts a session and a transaction on it (snapshot reads, majority writes).
    fn begin(&self) -> BoxFuture<'static, Result<Box<dyn TxOps>>> {
        let db = self.db.clone();
        Box::pin(async move {
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
            let tx = MongoTx {
                db,
                session: Some(session),
                touched: false,
            };
            Ok(Box::new(tx) as Box<dyn TxOps>)
        })
    }

    /// MongoDB has no foreign keys and no triggers the cache cannot see.
    fn catalog(&self) -> BoxFuture<'_, Result<Catalog>> {
        Box::pin(async { Ok(Catalog::default()) })
    }

    fn raw(&self) -> RawStore<'_> {
        RawStore::Mongo(&self.db)
    }
}

/// An open MongoDB transaction: the session that carries it (until commit or rollback takes
/// it), and the database it writes.
pub(crate) struct MongoTx {
    db: Database,
    session: Option<ClientSession>,
    /// Whether an operation was handed the session: one dropped in flight may have started
    /// the transaction on the server while the driver still counts it as not started.
    touched: bool,
}

/// The collection a probe reads to end a transaction's "not started" state in the driver
/// (a read of a collection that need not exist).
const PROBE: &str = "cached_runtime_probe";

impl MongoTx {
    fn session(&mut self) -> &mut ClientSession {
        self.session
            .as_mut()
            .expect("a transaction's session lives until its commit or rollback")
    }
}

/// Aborts `session`'s transaction on the server. When an operation was sent (`touched`), a
/// probe read first: if the transaction's first operation was dropped in flight, the server
/// started the transaction but the driver still counts it as not started and would abort it
/// only locally, leaving it open on the server (holding its documents until
/// `transactionLifetimeLimitSeconds`); after one completed operation the driver knows it
/// started, and its abort reaches the server.
async fn abort(
    db: Database,
    mut session: ClientSession,
    touched: bool,
) -> mongodb::error::Result<()> {
    if touched {
        let probe = db.collection::<Document>(PROBE);
        let _ = probe
            .find_one(doc! { "_id": 0 })
            .session(&mut session)
            .await;
    }
    session.abort_transaction().await
}

/// A transaction dropped without a commit or a rollback (its caller went away): aborted on a
/// task of its own, so that the server holds nothing of it.
impl Drop for MongoTx {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(abort(self.db.clone(), session, self.touched));
        }
    }
}

/// How many times a commit whose outcome is unknown is retried, as the driver documentation
/// prescribes for `UnknownTransactionCommitResult` (commit is idempotent).
const COMMIT_ATTEMPTS: usize = 4;

impl TxOps for MongoTx {
    fn ops(&mut self) -> Box<dyn Ops + '_> {
        self.touched = true;
        Box::new(MongoOps::Session(self))
    }

    /// Commits, retrying while the server says the outcome is unknown. A
    /// `TransientTransactionError` means the transaction was aborted: it is returned as the
    /// retryable [`Error::Conflict`] and the caller knows nothing was written.
    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let mut session = self.session.take().expect("a transaction commits once");
            let mut attempt = 1;
            loop {
                match session.commit_transaction().await {
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
        })
    }

    fn rollback(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let session = self.session.take().expect("a transaction rolls back once");
            abort(self.db.clone(), session, self.touched)
                .await
                .map_err(|e| from_mongo("transaction", e))
        })
    }
}

/// Where a MongoDB operation runs: outside any transaction (cache fills), or in one.
pub(crate) enum MongoOps<'a> {
    Pool(&'a Database),
    Session(&'a mut MongoTx),
}

/// Runs `$action` (a driver action builder) with the transaction's session, if any.
macro_rules! run {
    ($exec:expr, $meta:expr, $coll:ident => $action:expr) => {
        match $exec {
            MongoOps::Pool(db) => {
                let $coll = collection(db, $meta);
                $action.await
            }
            MongoOps::Session(tx) => {
                let $coll = collection(&tx.db, $meta);
                $action.session(tx.session()).await
            }
        }
        .map_err(|e| from_mongo($meta.type_name, e))
    };
}

/// The entity's collection. Reads go to the primary whatever the client's read preference: a
/// cache fill from a lagging secondary could store a row older than a commit that has already
/// returned.
fn collection(db: &Database, meta: Meta) -> Collection<Document> {
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

/// A stored BSON value as a column value of `kind` (absent or null: a null of that kind).
fn value(bson: Option<Bson>, kind: ValueKind, meta: Meta, column: &str) -> Result<Value> {
    Ok(match bson {
        None | Some(Bson::Null | Bson::Undefined) => Value::Null(kind),
        Some(Bson::Boolean(b)) => Value::Bool(b),
        Some(Bson::Int32(i)) => Value::Int(i.into()),
        Some(Bson::Int64(i)) => Value::Int(i),
        Some(Bson::Double(f)) => Value::Float(f),
        Some(Bson::String(s)) => Value::Text(s),
        Some(Bson::Binary(b)) => Value::Bytes(b.bytes),
        Some(Bson::ObjectId(id)) => Value::ObjectId(id.bytes()),
        Some(Bson::Array(items)) => Value::List(
            items
                .into_iter()
                .map(|item| value(Some(item), ValueKind::Text, meta, column))
                .collect::<Result<_>>()?,
        ),
        Some(other) => {
            return Err(Error::Decode {
                entity: meta.type_name,
                source: format!(
                    "field `{column}` holds a BSON {:?}, which no entity field stores",
                    other.element_type()
                )
                .into(),
            })
        }
    })
}

fn key_bson(value: &KeyValue) -> Bson {
    bson(value.to_value())
}

/// The field a column is stored under.
fn field(meta: Meta, column: &'static str) -> &'static str {
    if column == meta.id_column {
        "_id"
    } else {
        column
    }
}

/// The document of a row: `_id` for the id, every other column under its own name.
fn document(meta: Meta, row: Row) -> Document {
    meta.columns
        .iter()
        .zip(row)
        .map(|(column, value)| (field(meta, column).to_string(), bson(value)))
        .collect()
}

/// The row of a document: each column from its field (`_id` for the id).
fn row(meta: Meta, mut doc: Document) -> Result<Row> {
    meta.columns
        .iter()
        .zip(meta.kinds)
        .map(|(column, kind)| value(doc.remove(field(meta, column)), *kind, meta, column))
        .collect()
}

/// The field `lock_by_ids` sets and removes in a transaction to own a document.
const LOCK_FIELD: &str = "_cached_lock";

fn by_id(id: &KeyValue) -> Document {
    doc! { "_id": key_bson(id) }
}

fn by_ids(ids: &[KeyValue]) -> Document {
    doc! { "_id": { "$in": ids.iter().map(key_bson).collect::<Vec<_>>() } }
}

/// `{ "$set": { field: value, ... } }`, and the version bump.
fn set(meta: Meta, assignments: Assignments) -> Document {
    let fields: Document = assignments
        .into_iter()
        .map(|(column, value)| (field(meta, column).to_string(), bson(value)))
        .collect();
    bump_version(meta, doc! { "$set": fields })
}

/// Adds `$inc: { <version>: 1 }` to an update document when the entity has a version field:
/// every write through the repository moves it on, in the operation that writes.
fn bump_version(meta: Meta, mut update: Document) -> Document {
    if let Some(version) = meta.version {
        let name = field(meta, version);
        match update.get_document_mut("$inc") {
            Ok(inc) => {
                inc.insert(name, 1_i64);
            }
            Err(_) => {
                update.insert("$inc", doc! { name: 1_i64 });
            }
        }
    }
    update
}

fn filter(meta: Meta, predicate: &Predicate) -> Document {
    match predicate {
        Predicate::All => Document::new(),
        Predicate::Eq(column, value) => doc! { field(meta, column): key_bson(value) },
        Predicate::And(columns, values) => columns
            .iter()
            .zip(values.iter())
            .map(|(column, value)| (field(meta, column).to_string(), key_bson(value)))
            .collect(),
    }
}

impl MongoOps<'_> {
    /// The documents matching `filter`, ordered by `_id`, as rows.
    async fn find(&mut self, meta: Meta, filter: Document) -> Result<Vec<Row>> {
        self.find_sorted(meta, filter, doc! { "_id": 1 }, None)
            .await
    }

    /// The documents matching `filter` in `sort` order, at most `limit`, as rows.
    async fn find_sorted(
        &mut self,
        meta: Meta,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
    ) -> Result<Vec<Row>> {
        let err = |e| from_mongo(meta.type_name, e);
        let docs: Vec<Document> = match self {
            MongoOps::Pool(db) => {
                let cursor = collection(db, meta)
                    .find(filter)
                    .sort(sort)
                    .limit(limit.unwrap_or(0))
                    .await
                    .map_err(&err)?;
                cursor.try_collect().await.map_err(&err)?
            }
            MongoOps::Session(tx) => {
                let mut cursor = collection(&tx.db, meta)
                    .find(filter)
                    .sort(sort)
                    .limit(limit.unwrap_or(0))
                    .session(tx.session())
                    .await
                    .map_err(&err)?;
                cursor
                    .stream(tx.session())
                    .try_collect()
                    .await
                    .map_err(&err)?
            }
        };
        docs.into_iter().map(|doc| row(meta, doc)).collect()
    }

    /// Applies an update document to one row and returns the row after it.
    async fn modify(&mut self, meta: Meta, id: &KeyValue, update: Document) -> Result<Option<Row>> {
        let doc = run!(self, meta, c => c
            .find_one_and_update(by_id(id), update)
            .return_document(ReturnDocument::After))?;
        doc.map(|doc| row(meta, doc)).transpose()
    }
}

impl Ops for MongoOps<'_> {
    /// The documents with these ids (`$in`), ordered by `_id`. Reads in a transaction are in
    /// its snapshot: a concurrent change of a document makes this transaction's write of it
    /// fail with a retryable `WriteConflict`, so no lock is needed.
    fn fetch_by_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
        _locked: bool,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(self.find(meta, by_ids(ids)))
    }

    fn fetch_by_id<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        _locked: bool,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(async move {
            let doc = run!(self, meta, c => c.find_one(by_id(id)))?;
            doc.map(|doc| row(meta, doc)).transpose()
        })
    }

    fn fetch_where<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(self.find(meta, filter(meta, predicate)))
    }

    /// `find` with the cursor as an `$or` on (order value, `_id`), sorted by both, limited.
    fn fetch_page<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
        order: &'static OrderMeta,
        after: Option<&'a (KeyValue, KeyValue)>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let mut query = filter(meta, predicate);
            let (cmp, dir) = if order.descending {
                ("$lt", -1)
            } else {
                ("$gt", 1)
            };
            let column = field(meta, order.column);
            if let Some((value, id)) = after {
                let value = key_bson(value);
                query.insert(
                    "$or",
                    vec![
                        doc! { column: { cmp: value.clone() } },
                        doc! { column: value, "_id": { cmp: key_bson(id) } },
                    ],
                );
            }
            let sort = doc! { column: dir, "_id": dir };
            self.find_sorted(meta, query, sort, Some(i64::from(limit)))
                .await
        })
    }

    /// MongoDB reads take no locks; a transaction owns a document once it has written it. So
    /// each document is written (a marker field set, then removed: its content is unchanged)
    /// and then read: until this transaction ends, another transaction's write of it fails
    /// with a retryable `WriteConflict`, and a write outside transactions waits.
    fn lock_by_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let marker = doc! { "$set": { LOCK_FIELD: mongodb::bson::oid::ObjectId::new() } };
            let unmark = doc! { "$unset": { LOCK_FIELD: "" } };
            run!(self, meta, c => c.update_many(by_ids(ids), marker))?;
            run!(self, meta, c => c.update_many(by_ids(ids), unmark))?;
            self.find(meta, by_ids(ids)).await
        })
    }

    /// The snapshot read is enough (a concurrent change makes the write conflict).
    fn fetch_where_locked<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        self.fetch_where(meta, predicate)
    }

    /// `countDocuments` for a query key's predicate.
    fn count_where<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let filter = filter(meta, predicate);
            let n = run!(self, meta, c => c.count_documents(filter))?;
            Ok(i64::try_from(n).unwrap_or(i64::MAX))
        })
    }

    /// A `$group` stage (a missing field groups with null, as SQL's `NULL` does).
    fn count_grouped<'a>(
        &'a mut self,
        meta: Meta,
        column: &'static str,
    ) -> BoxFuture<'a, Result<Vec<(Value, i64)>>> {
        Box::pin(async move {
            let err = |e| from_mongo(meta.type_name, e);
            let pipeline = vec![
                doc! { "$group": { "_id": format!("${}", field(meta, column)), "n": { "$sum": 1 } } },
                doc! { "$sort": { "_id": 1 } },
            ];
            let docs: Vec<Document> = match self {
                MongoOps::Pool(db) => {
                    let cursor = collection(db, meta)
                        .aggregate(pipeline)
                        .await
                        .map_err(&err)?;
                    cursor.try_collect().await.map_err(&err)?
                }
                MongoOps::Session(tx) => {
                    let mut cursor = collection(&tx.db, meta)
                        .aggregate(pipeline)
                        .session(tx.session())
                        .await
                        .map_err(&err)?;
                    cursor
                        .stream(tx.session())
                        .try_collect()
                        .await
                        .map_err(&err)?
                }
            };
            let kind = meta
                .column_kind(column)
                .map_or(ValueKind::Text, |kind| kind[0]);
            docs.into_iter()
                .map(|mut group| {
                    let n = match group.get("n") {
                        Some(Bson::Int32(n)) => i64::from(*n),
                        Some(Bson::Int64(n)) => *n,
                        _ => 0,
                    };
                    Ok((value(group.remove("_id"), kind, meta, column)?, n))
                })
                .collect()
        })
    }

    /// The first matching document with a value in `column`, sorted by it.
    fn extreme<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
        column: &'static str,
        max: bool,
    ) -> BoxFuture<'a, Result<Option<Value>>> {
        Box::pin(async move {
            let name = field(meta, column);
            let query = doc! { "$and": [filter(meta, predicate), { name: { "$ne": Bson::Null } }] };
            let sort = doc! { name: if max { -1 } else { 1 } };
            let rows = self.find_sorted(meta, query, sort, Some(1)).await?;
            let at = meta.column_position(column);
            Ok(rows
                .into_iter()
                .next()
                .and_then(|mut row| at.map(|at| row.swap_remove(at))))
        })
    }

    /// MongoDB has no foreign keys, so nothing cascades.
    fn fetch_ids_where_in<'a>(
        &'a mut self,
        _meta: Meta,
        _column: &'a str,
        _values: &'a [KeyValue],
    ) -> BoxFuture<'a, Result<Vec<KeyValue>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Inserts rows. MongoDB stores exactly the documents given, so the stored rows are the
    /// rows given.
    fn insert<'a>(&'a mut self, meta: Meta, rows: Vec<Row>) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let docs: Vec<Document> = rows
                .iter()
                .cloned()
                .map(|row| document(meta, row))
                .collect();
            run!(self, meta, c => c.insert_many(docs))?;
            Ok(rows)
        })
    }

    /// MongoDB makes no integer ids; an `ObjectId` id is made by the client and never gets
    /// here.
    fn insert_generated<'a>(
        &'a mut self,
        _meta: Meta,
        _rows: Vec<Row>,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async {
            Err(Error::Unsupported {
                operation: "an insert with a database-generated integer id",
                store: "MongoDB",
                hint: "make the id a `bson::oid::ObjectId`: a generated ObjectId is made by the \
                       client, on any store",
            })
        })
    }

    /// `$set` on one document; returns it after the change.
    fn update<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(self.modify(meta, id, set(meta, assignments)))
    }

    /// `$set` on one document in one round trip, returning it before and after the change:
    /// the server returns the document before, and the same assignments applied to it locally
    /// are the document after (the values are known exactly).
    fn update_keeping_old<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<Option<(Row, Row)>>> {
        Box::pin(async move {
            let update = set(meta, assignments.clone());
            let before = run!(self, meta, c => c
                .find_one_and_update(by_id(id), update)
                .return_document(ReturnDocument::Before))?;
            let Some(before) = before else {
                return Ok(None);
            };
            let before = row(meta, before)?;
            let mut after = before.clone();
            for (column, value) in assignments {
                let at = meta
                    .column_position(column)
                    .expect("an assigned field is a column");
                after[at] = value;
            }
            if let Some(at) = meta.version.and_then(|v| meta.column_position(v)) {
                if let Value::Int(version) = &mut after[at] {
                    *version += 1;
                }
            }
            Ok(Some((before, after)))
        })
    }

    /// `$inc`: adds `delta` to a numeric field.
    fn add<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        column: &'static str,
        delta: i64,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        let name = field(meta, column);
        let update = bump_version(meta, doc! { "$inc": { name: delta } });
        Box::pin(self.modify(meta, id, update))
    }

    /// `$set` on the document with this id and version (and the version bump).
    fn update_if_version<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
        expected: i64,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(async move {
            let version = meta
                .version
                .expect("update_if_version needs a version field");
            let mut filter = by_id(id);
            filter.insert(field(meta, version), expected);
            let update = set(meta, assignments);
            let doc = run!(self, meta, c => c
                .find_one_and_update(filter, update)
                .return_document(ReturnDocument::After))?;
            doc.map(|doc| row(meta, doc)).transpose()
        })
    }

    /// `$push` (append) or `$pull` (remove every equal item) on an array field.
    fn list_op<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        column: &'static str,
        item: Value,
        append: bool,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        let name = field(meta, column);
        let op = if append { "$push" } else { "$pull" };
        let update = bump_version(meta, doc! { op: { name: bson(item) } });
        Box::pin(self.modify(meta, id, update))
    }

    /// Sets columns on every row with one of these ids.
    fn update_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (filter, set) = (by_ids(ids), set(meta, assignments));
            run!(self, meta, c => c.update_many(filter, set))?;
            Ok(())
        })
    }

    /// Deletes rows by id and returns the rows that existed (read in the same snapshot).
    fn delete<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let filter = by_ids(ids);
            let rows = self.find(meta, filter.clone()).await?;
            run!(self, meta, c => c.delete_many(filter))?;
            Ok(rows)
        })
    }

    fn execute<'a>(
        &'a mut self,
        _entity: &'static str,
        _sql: SqlStr,
        _values: Vec<Value>,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async {
            Err(Error::Unsupported {
                operation: "a raw SQL write",
                store: "MongoDB",
                hint: "write through the generated repository, or use the driver directly and \
                       then invalidate with `ctx.invalidate::<E>(id)`",
            })
        })
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
