//! The MongoDB change feed: one change stream on the database (`db.watch()`), with the
//! documents' pre- and post-images where the collections record them, resumed from its last
//! resume token after a loss.
//!
//! An update event names the fields it assigned (`updateDescription`): one that assigned no
//! key-forming field changes no query even without a pre-image; otherwise the pre-image (or,
//! without one, every query of the entity) says which. [`FeedSetup::Install`] turns on
//! `changeStreamPreAndPostImages` for every cached collection.

use mongodb::bson::{doc, Bson, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::change_stream::ChangeStream;
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};
use mongodb::Database;
use tokio::sync::oneshot;

use super::{reconnect, Event, Image, OfflineOnExit, Op, RowChange, Tables, Task, HEARTBEAT};
use super::{ChangeFeed, FeedSetup, Source};
use crate::error::{Error, Result};
use crate::value::KeyValue;

/// Where `catch_up` writes its markers.
const MARKS: &str = "cached_feed_marks";
/// How long the server holds a `getMore` open when nothing changed.
const AWAIT: std::time::Duration = std::time::Duration::from_millis(500);

type Stream = ChangeStream<ChangeStreamEvent<Document>>;

impl ChangeFeed {
    /// A change feed on MongoDB: a change stream on `db`. With [`FeedSetup::Install`], every
    /// cached collection is created if missing and records pre- and post-images
    /// (`changeStreamPreAndPostImages`), so that updates and deletes invalidate exactly the
    /// queries the document left; without them, an update that assigns a key-forming field
    /// drops every query of the entity. Needs a replica set (or a sharded cluster).
    pub async fn mongo(db: &Database, setup: FeedSetup) -> Result<ChangeFeed> {
        let mut tables = Tables::with_id_field("_id");
        for meta in crate::registry::entities() {
            tables.add(db.name(), meta.table, meta);
        }
        if setup == FeedSetup::Install {
            let existing = db.list_collection_names().await.map_err(Error::Mongo)?;
            for ((_, collection), _) in tables.columns() {
                if !existing.iter().any(|c| c.eq_ignore_ascii_case(&collection)) {
                    db.create_collection(&collection)
                        .await
                        .map_err(Error::Mongo)?;
                }
                db.run_command(doc! {
                    "collMod": &collection,
                    "changeStreamPreAndPostImages": { "enabled": true },
                })
                .await
                .map_err(Error::Mongo)?;
            }
        }
        let stream = watch(db, None).await.map_err(Error::Mongo)?;
        Ok(ChangeFeed::new(Source::Mongo(Watching {
            db: db.clone(),
            stream,
            tables,
        })))
    }
}

async fn watch(db: &Database, after: Option<ResumeToken>) -> mongodb::error::Result<Stream> {
    let watch = db
        .watch()
        .full_document(FullDocumentType::WhenAvailable)
        .full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
        .max_await_time(AWAIT);
    match after {
        Some(token) => watch.start_after(token).await,
        None => watch.await,
    }
}

/// An open change stream, before the context starts the feed's task.
pub(crate) struct Watching {
    db: Database,
    stream: Stream,
    tables: Tables,
}

impl Watching {
    pub fn marker(&self) -> Marker {
        Marker {
            db: self.db.clone(),
        }
    }
}

/// Writes `catch_up`'s markers.
pub(crate) struct Marker {
    db: Database,
}

impl Marker {
    /// Inserts a marker document (its insert event follows every earlier commit in the
    /// stream), then removes it.
    pub async fn emit(&self, mark: u64) -> Result<()> {
        let marks = self.db.collection::<Document>(MARKS);
        let id = mark as i64;
        marks
            .insert_one(doc! { "_id": id })
            .await
            .map_err(Error::Mongo)?;
        marks
            .delete_one(doc! { "_id": id })
            .await
            .map_err(Error::Mongo)?;
        Ok(())
    }
}

/// Applies the stream's events until the context is dropped; after an error, takes the cache
/// offline and reopens the stream from the last resume token (or from now, if the server no
/// longer has it: the cache was cleared meanwhile).
pub(crate) async fn run(
    watching: Watching,
    task: Task,
    mut stop: oneshot::Receiver<()>,
    _offline_on_exit: OfflineOnExit,
) {
    let Watching { db, stream, tables } = watching;
    let mut stream = Some(stream);
    let mut token: Option<ResumeToken> = None;
    loop {
        let mut current = match stream.take() {
            Some(stream) => stream,
            None => match reconnect(&task, &mut stop, || reopen(&db, token.clone())).await {
                Some(stream) => stream,
                None => return,
            },
        };
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(HEARTBEAT * 5, current.next_if_any()) => next,
                _ = &mut stop => return,
            };
            match next {
                Ok(Ok(Some(event))) => {
                    let invalidated = event.operation_type == OperationType::Invalidate;
                    let written = event.wall_time.map(|at| at.to_system_time());
                    if !task.handle(&tables, decode(&event), written) {
                        return;
                    }
                    token = current.resume_token();
                    if invalidated {
                        break;
                    }
                }
                // Nothing new after a `getMore`: the feed is caught up.
                Ok(Ok(None)) if current.is_alive() => {
                    token = current.resume_token().or(token);
                    task.quiet();
                }
                // A closed stream, an error, or a server that stopped answering.
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
            }
        }
        token = current.resume_token().or(token);
        drop(current);
        if !task.lost() {
            return;
        }
    }
}

/// Reopens the stream after the last event applied; from now when the server cannot resume
/// there (the cache was cleared when the stream was lost, so nothing from before is served).
async fn reopen(db: &Database, token: Option<ResumeToken>) -> Option<Stream> {
    match watch(db, token.clone()).await {
        Ok(stream) => Some(stream),
        Err(_) if token.is_some() => watch(db, None).await.ok(),
        Err(_) => None,
    }
}

/// Turns one change event into a feed event.
pub(crate) fn decode(event: &ChangeStreamEvent<Document>) -> Event {
    let Some(ns) = &event.ns else {
        return match event.operation_type {
            OperationType::Invalidate => Event::Rows {
                schema: String::new(),
                table: String::new(),
                rows: Vec::new(),
            },
            _ => Event::Undecodable,
        };
    };
    let schema = ns.db.clone();
    let Some(table) = ns.coll.clone() else {
        // The whole database (dropped): whatever it held is gone.
        return Event::Undecodable;
    };
    if table == MARKS {
        return match (&event.operation_type, &event.document_key) {
            (OperationType::Insert, Some(key)) => match key.get("_id") {
                Some(Bson::Int64(mark)) => Event::Mark(*mark as u64),
                _ => Event::Undecodable,
            },
            _ => Event::Rows {
                schema,
                table,
                rows: Vec::new(),
            },
        };
    }
    let key = event.document_key.as_ref().map(image);
    let before = event.full_document_before_change.as_ref().map(image);
    let after = event.full_document.as_ref().map(image);
    let row = match &event.operation_type {
        OperationType::Insert => RowChange {
            op: Op::Insert,
            old: None,
            new: after.or(key),
            assigned: None,
        },
        OperationType::Delete => RowChange {
            op: Op::Delete,
            old: before.or(key),
            new: None,
            assigned: None,
        },
        OperationType::Update => {
            let Some(description) = &event.update_description else {
                return Event::Undecodable;
            };
            let assigned: Vec<String> = description
                .updated_fields
                .keys()
                .chain(&description.removed_fields)
                .map(|path| path.split('.').next().unwrap_or(path).to_string())
                .collect();
            // Without a post-image, the pre-image with the update applied (a key-forming
            // field is a top-level scalar: a dotted path under it leaves it unknown).
            let after = after.or_else(|| {
                let mut image = before.clone()?;
                image.retain(|(name, _)| !assigned.contains(name));
                for (path, value) in &description.updated_fields {
                    if !path.contains('.') {
                        image.extend(key_value(value).map(|v| (path.clone(), v)));
                    }
                }
                for path in &description.removed_fields {
                    if !path.contains('.') {
                        image.push((path.clone(), KeyValue::Null));
                    }
                }
                Some(image)
            });
            RowChange {
                op: Op::Update,
                old: before.or_else(|| key.clone()),
                new: after.or(key),
                assigned: Some(assigned),
            }
        }
        OperationType::Replace => RowChange {
            op: Op::Update,
            old: before.or_else(|| key.clone()),
            new: after.or(key),
            assigned: None,
        },
        OperationType::Drop | OperationType::Rename => return Event::Whole { schema, table },
        _ => return Event::Undecodable,
    };
    Event::Rows {
        schema,
        table,
        rows: vec![row],
    }
}

/// A document's top-level fields that can be key values.
fn image(document: &Document) -> Image {
    document
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), key_value(value)?)))
        .collect()
}

/// A BSON value as a key value; `None` for what no key holds.
fn key_value(value: &Bson) -> Option<KeyValue> {
    match value {
        Bson::Null => Some(KeyValue::Null),
        Bson::Boolean(b) => Some(KeyValue::Bool(*b)),
        Bson::Int32(i) => Some(KeyValue::Int(i64::from(*i))),
        Bson::Int64(i) => Some(KeyValue::Int(*i)),
        Bson::String(s) => Some(KeyValue::Text(s.as_str().into())),
        Bson::ObjectId(id) => Some(KeyValue::ObjectId(id.bytes())),
        _ => None,
    }
}
