//! The wire form of an invalidation, as one instance broadcasts it to the others.
//!
//! A message names what an applied invalidation dropped: keys (rows, queries, counts, view
//! instances), whole-entity or whole-query generation bumps, or a clear. A write-through
//! (`Change::Write`) travels as a plain drop: the receiver reloads the row on its next miss,
//! it never trusts a value from the wire. Entities are named by their Rust type name and key
//! prefix; the receiver resolves them against the entities and views registered in its own
//! binary, and drops a key for every match (dropping too much is safe, too little is not).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Bump;
use crate::entity::Namespace;
use crate::key::{CacheKey, Predicate};
use crate::registry;
use crate::value::KeyValue;

/// One broadcast invalidation.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct Message {
    /// The sending instance, so that it can ignore its own messages.
    pub from: u64,
    /// Drop every entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<WireKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bumps: Vec<WireBump>,
}

/// An entity or view, by name.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct WireEntity {
    /// The Rust type name (`Scene`).
    pub ty: String,
    /// The key prefix (`scene`).
    pub name: String,
}

/// One key.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct WireKey {
    pub entity: WireEntity,
    pub kind: WireKind,
}

/// What a key addresses.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) enum WireKind {
    Row(WireValue),
    /// The predicate's `(column, value)` pairs: none for `All`, one for a field, several for
    /// a composite.
    List(Vec<(String, WireValue)>),
    Count(Vec<(String, WireValue)>),
    /// The tag of a predicate's keyset pages.
    Pages(Vec<(String, WireValue)>),
}

/// A key-forming value.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) enum WireValue {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
    ObjectId([u8; 12]),
}

/// A generation bump.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct WireBump {
    pub entity: WireEntity,
    /// Only the queries (and counts), not the rows.
    pub queries_only: bool,
}

/// What a received message asks of the local cache.
pub(crate) struct Remote {
    pub clear: bool,
    pub keys: Vec<CacheKey>,
    pub bumps: Vec<Bump>,
}

impl Message {
    /// The message for an invalidation applied here.
    pub fn new(from: u64, clear: bool, keys: &[CacheKey], bumps: &[Bump]) -> Self {
        Message {
            from,
            clear,
            // A page is dropped through its tag, which every instance resolves itself.
            keys: keys
                .iter()
                .filter(|key| !key.is_page())
                .map(WireKey::from_key)
                .collect(),
            bumps: bumps
                .iter()
                .map(|bump| {
                    let (meta, queries_only) = match bump {
                        Bump::Entity(meta) => (meta, false),
                        Bump::Queries(meta) => (meta, true),
                    };
                    WireBump {
                        entity: WireEntity::of(meta),
                        queries_only,
                    }
                })
                .collect(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an invalidation message always serializes")
    }

    pub fn decode(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }

    /// The keys and bumps this message names, for the entities this binary knows. Names it
    /// does not know (another version of the program) resolve to nothing: this binary cannot
    /// have cached them.
    pub fn resolve(&self) -> Remote {
        let mut keys = Vec::new();
        for key in &self.keys {
            for meta in lookup(&key.entity) {
                keys.extend(key.to_key(meta));
            }
        }
        let mut bumps = Vec::new();
        for bump in &self.bumps {
            for meta in lookup(&bump.entity) {
                bumps.push(if bump.queries_only {
                    Bump::Queries(meta)
                } else {
                    Bump::Entity(meta)
                });
            }
        }
        Remote {
            clear: self.clear,
            keys,
            bumps,
        }
    }
}

impl WireEntity {
    fn of(meta: &Namespace) -> Self {
        WireEntity {
            ty: meta.type_name.to_owned(),
            name: meta.name.to_owned(),
        }
    }
}

impl WireKey {
    fn from_key(key: &CacheKey) -> Self {
        let meta = key.namespace();
        let predicate = |p: &Predicate| match p {
            Predicate::All => Vec::new(),
            Predicate::Eq(column, v) => vec![((*column).to_owned(), WireValue::from(v))],
            Predicate::And(columns, values) => columns
                .iter()
                .zip(values.iter())
                .map(|(column, v)| ((*column).to_owned(), WireValue::from(v)))
                .collect(),
        };
        let kind = match (key.row_id(), key.predicate()) {
            (Some(id), _) => WireKind::Row(WireValue::from(id)),
            (None, Some(p)) if key.is_count() => WireKind::Count(predicate(p)),
            (None, Some(p)) if key.is_pages_tag() => WireKind::Pages(predicate(p)),
            (None, Some(p)) => WireKind::List(predicate(p)),
            (None, None) => unreachable!("a key is a row, a query or a count"),
        };
        WireKey {
            entity: WireEntity::of(meta),
            kind,
        }
    }

    /// The key in `namespace`, or `None` if it has no such index (another version of it).
    fn to_key(&self, namespace: &'static Namespace) -> Option<CacheKey> {
        let (predicate, kind) = match &self.kind {
            WireKind::Row(id) => return Some(CacheKey::row(namespace, id.to_value())),
            WireKind::List(predicate) => (predicate, 0),
            WireKind::Count(predicate) => (predicate, 1),
            WireKind::Pages(predicate) => (predicate, 2),
        };
        // Only an entity has queries.
        let meta = registry::entity_of(namespace)?;
        let predicate = match predicate.as_slice() {
            [] => Predicate::All,
            [(column, value)] => {
                let index = meta.indexes.iter().find(|ix| ix.column == column)?;
                Predicate::Eq(index.column, value.to_value())
            }
            parts => {
                let composite = meta.composites.iter().find(|c| {
                    c.columns.len() == parts.len()
                        && c.columns.iter().zip(parts).all(|(a, (b, _))| a == b)
                })?;
                let values = parts.iter().map(|(_, v)| v.to_value()).collect();
                Predicate::And(composite.columns, values)
            }
        };
        Some(match kind {
            0 => CacheKey::list(meta, predicate),
            1 => CacheKey::count(meta, predicate),
            _ => CacheKey::pages(meta, predicate),
        })
    }
}

impl From<&KeyValue> for WireValue {
    fn from(value: &KeyValue) -> Self {
        match value {
            KeyValue::Null => WireValue::Null,
            KeyValue::Bool(b) => WireValue::Bool(*b),
            KeyValue::Int(i) => WireValue::Int(*i),
            KeyValue::Text(t) => WireValue::Text(t.to_string()),
            KeyValue::ObjectId(bytes) => WireValue::ObjectId(*bytes),
        }
    }
}

impl WireValue {
    fn to_value(&self) -> KeyValue {
        match self {
            WireValue::Null => KeyValue::Null,
            WireValue::Bool(b) => KeyValue::Bool(*b),
            WireValue::Int(i) => KeyValue::Int(*i),
            WireValue::Text(t) => KeyValue::Text(Arc::from(t.as_str())),
            WireValue::ObjectId(bytes) => KeyValue::ObjectId(*bytes),
        }
    }
}

/// The registered entities and view namespaces of this binary named `entity` (usually one; a
/// few dozen are scanned, no index needed).
fn lookup(entity: &WireEntity) -> impl Iterator<Item = &'static Namespace> + '_ {
    registry::namespaces()
        .iter()
        .copied()
        .filter(|meta| meta.type_name == entity.ty && meta.name == entity.name)
}
