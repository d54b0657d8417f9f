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

/// One broadcast invalidation, or a heartbeat (a message that names nothing).
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
pub(crate) struct Message {
    /// The sending instance, so that it can ignore its own messages.
    pub from: u64,
    /// The sender's number for this message: 1, 2, 3... for each sending instance, heartbeats
    /// included, so that a receiver sees a gap. 0: a sender that does not number them.
    #[serde(default)]
    pub seq: u64,
    /// The fingerprint of the sender's invalidation graph (0: unknown).
    #[serde(default)]
    pub graph: u64,
    /// The sender's silence bound, in milliseconds: a receiver that hears nothing from it for
    /// this long counts it as lost (0: unknown, the receiver's own bound applies).
    #[serde(default)]
    pub silence_ms: u64,
    /// When the sender applied the invalidation, in microseconds since the Unix epoch, for
    /// the receiver's lag metric (0: unknown).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at_us: u64,
    /// The sender is shutting down: nothing more will come from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bye: bool,
    /// The sender writes each commit's message to an outbox in the database first: should it
    /// fall silent, whatever it did not publish is relayed from there by the instances alive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outbox: bool,
    /// Drop every entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear: bool,
    /// Sent before the sender's database commit (its number for the commit, 0: not so): the
    /// receiver drops the keys and keeps a fence over them, storing nothing they reach until
    /// the message that names this number as `release` (see `cache::local::fence`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fence: u64,
    /// Sent after the database commit that the fence of this number announced: the same
    /// invalidation, applied again, after which the fence comes down (0: not a release).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub release: u64,
    /// With a shared cache: the number Redis gave this invalidation when it dropped the
    /// shared entries it reaches (set by the script that published it; 0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub l2: u64,
    /// The run of the Redis that numbered `l2` (its `run_id`): numbers compare only within
    /// one run (see `cache::redis::shared::watermark`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub l2run: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<WireKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bumps: Vec<WireBump>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// An entity or view, by name.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub(crate) struct WireEntity {
    /// The Rust type name (`Scene`).
    pub ty: String,
    /// The key prefix (`scene`).
    pub name: String,
}

/// One key.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub(crate) struct WireKey {
    pub entity: WireEntity,
    pub kind: WireKind,
}

/// What a key addresses.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
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
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub(crate) enum WireValue {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
    ObjectId([u8; 12]),
}

/// A generation bump.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
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
            seq: 0,
            graph: 0,
            silence_ms: 0,
            at_us: now_us(),
            bye: false,
            outbox: false,
            fence: 0,
            release: 0,
            l2: 0,
            l2run: String::new(),
            // A page is dropped through its tag, and grouped counts with the counts of their
            // groups, which every instance resolves itself.
            keys: keys
                .iter()
                .filter(|key| WireKey::travels(key))
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

    /// Names nothing: a heartbeat (or a goodbye).
    pub fn is_heartbeat(&self) -> bool {
        !self.clear && self.keys.is_empty() && self.bumps.is_empty()
    }

    /// The same invalidation in a smaller form: every entity a key names goes as a whole
    /// (rows and queries), so no key needs to travel.
    pub fn coarsened(&self) -> Message {
        let mut bumps = self.bumps.clone();
        for key in &self.keys {
            let bump = WireBump {
                entity: key.entity.clone(),
                queries_only: false,
            };
            match bumps.iter_mut().find(|b| b.entity == bump.entity) {
                Some(existing) => existing.queries_only = false,
                None => bumps.push(bump),
            }
        }
        Message {
            keys: Vec::new(),
            bumps,
            ..self.clone()
        }
    }

    /// The widest invalidation: drop everything.
    pub fn cleared(&self) -> Message {
        Message {
            clear: true,
            keys: Vec::new(),
            bumps: Vec::new(),
            ..self.clone()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an invalidation message always serializes")
    }

    pub fn decode(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }

    /// The message encoded within `max_bytes`: as it is, else as whole-entity bumps, else as
    /// a clear; and whether it had to be made smaller.
    pub fn encode_within(&self, max_bytes: usize) -> (Vec<u8>, bool) {
        let payload = self.encode();
        if payload.len() <= max_bytes {
            return (payload, false);
        }
        let coarse = self.coarsened().encode();
        if coarse.len() <= max_bytes {
            return (coarse, true);
        }
        (self.cleared().encode(), true)
    }

    /// What this message asks of this binary's cache: [`Message::resolve`] when the sender's
    /// graph is this binary's, else [`Message::resolve_conservatively`]; and whether it was
    /// another graph's.
    pub fn resolve_here(&self) -> (Remote, bool) {
        match self.graph == registry::fingerprint() {
            true => (self.resolve(), false),
            false => (self.resolve_conservatively(), true),
        }
    }

    /// The keys and bumps this message names, for the entities this binary knows. Names it
    /// does not know (another version of the program) resolve to nothing: this binary cannot
    /// have cached them.
    pub fn resolve(&self) -> Remote {
        let mut keys = Vec::new();
        // The grouped counts each changed count reaches (the sender does not send them):
        // one per field, however many of its groups changed.
        let mut groups: Vec<CacheKey> = Vec::new();
        for key in &self.keys {
            for meta in lookup(&key.entity) {
                let Some(key) = key.to_key(meta) else {
                    continue;
                };
                if let Some(group) = key.groups_of_count() {
                    if !groups.contains(&group) {
                        groups.push(group);
                    }
                }
                keys.push(key);
            }
        }
        keys.extend(groups);
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

    /// [`Message::resolve`] for a sender whose graph differs from this binary's (another
    /// version): its keys were computed from indexes, views and entities this binary may
    /// have more of, so besides what it names, every query and count of each entity it names
    /// is dropped, with the views that read them and every entity over the same table.
    pub fn resolve_conservatively(&self) -> Remote {
        let mut remote = self.resolve();
        let named: Vec<&'static Namespace> = remote
            .keys
            .iter()
            .map(CacheKey::namespace)
            .chain(remote.bumps.iter().map(Bump::namespace))
            .collect();
        for namespace in named {
            let Some(meta) = registry::entity_of(namespace) else {
                continue;
            };
            Bump::push(&mut remote.bumps, Bump::Queries(&meta.namespace));
            // The views that declared `reads_all` of it (a bump of the queries reaches
            // those that read them through the dependency index).
            for view in registry::coarse_readers(meta) {
                Bump::push(&mut remote.bumps, Bump::Entity(&view.namespace));
            }
            for other in registry::same_table(meta) {
                Bump::push(&mut remote.bumps, Bump::Entity(&other.namespace));
            }
        }
        remote
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
    /// The wire form of `key` (not of a page entry nor of grouped counts, which each
    /// instance derives itself: see [`WireKey::travels`]).
    pub(crate) fn from_key(key: &CacheKey) -> Self {
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

    /// Whether `key` has a wire form.
    pub(crate) fn travels(key: &CacheKey) -> bool {
        !key.is_page() && key.grouped_column().is_none()
    }

    /// The key in the one namespace of this binary it names, or `None` if there is none
    /// (another version of the program).
    pub(crate) fn resolve_one(&self) -> Option<CacheKey> {
        lookup(&self.entity).find_map(|meta| self.to_key(meta))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scene_row(id: i64) -> WireKey {
        WireKey {
            entity: WireEntity {
                ty: "Scene".into(),
                name: "scene".into(),
            },
            kind: WireKind::Row(WireValue::Int(id)),
        }
    }

    #[test]
    fn a_message_from_a_sender_that_does_not_number_them_still_decodes() {
        let old = br#"{"from":7,"keys":[{"entity":{"ty":"Scene","name":"scene"},"kind":{"Row":{"Int":1}}}]}"#;
        let message = Message::decode(old).unwrap();
        assert_eq!((message.seq, message.graph, message.silence_ms), (0, 0, 0));
        assert!(!message.bye && !message.is_heartbeat());
        assert_eq!(message.keys, [scene_row(1)]);
    }

    #[test]
    fn a_coarsened_message_names_each_entity_once_and_no_key() {
        let message = Message {
            from: 1,
            seq: 4,
            keys: vec![scene_row(1), scene_row(2)],
            bumps: vec![WireBump {
                entity: scene_row(1).entity,
                queries_only: true,
            }],
            ..Message::default()
        };
        let coarse = message.coarsened();
        assert!(coarse.keys.is_empty());
        assert_eq!(coarse.seq, 4, "the same number");
        assert_eq!(
            coarse.bumps,
            [WireBump {
                entity: scene_row(1).entity,
                queries_only: false,
            }],
            "rows and queries of Scene, once"
        );
        assert!(coarse.encode().len() < message.encode().len());
        let cleared = message.cleared();
        assert!(cleared.clear && cleared.keys.is_empty() && cleared.bumps.is_empty());
        assert!(Message::default().is_heartbeat());
    }
}
