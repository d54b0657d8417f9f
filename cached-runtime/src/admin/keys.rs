//! Keys and values typed into the admin router as text: `scene:42`, `scene?status=draft`,
//! `scene#count?all`, `scene#count_by(status)`, read back into the [`CacheKey`] they print as.

use crate::entity::{EntityMeta, Namespace};
use crate::key::{CacheKey, Predicate};
use crate::registry;
use crate::value::{KeyValue, Value, ValueKind};

/// The namespace (entity or view) whose key prefix is `name` (unique in a binary), or else
/// the one whose type name is `name`, if only one is (two modules may each have a `Ticket`).
pub(crate) fn namespace(name: &str) -> Option<&'static Namespace> {
    let all = registry::namespaces().iter().copied();
    all.clone().find(|ns| ns.name == name).or_else(|| {
        let mut typed = all.filter(|ns| ns.type_name == name);
        typed.next().filter(|_| typed.next().is_none())
    })
}

/// The entity whose key prefix or type name is `name`.
pub(crate) fn entity(name: &str) -> Option<&'static EntityMeta> {
    registry::entity_of(namespace(name)?)
}

/// `text` as a value of a column of `kind` (`null` is no value).
pub(crate) fn value(kind: ValueKind, text: &str) -> Option<Value> {
    if text == "null" {
        return Some(Value::Null(kind));
    }
    Some(match kind {
        ValueKind::Bool => Value::Bool(text.parse().ok()?),
        ValueKind::Int => Value::Int(text.parse().ok()?),
        ValueKind::Float => Value::Float(text.parse().ok()?),
        ValueKind::Text => Value::Text(text.to_owned()),
        ValueKind::ObjectId => Value::ObjectId(crate::value::parse_hex(text)?),
        ValueKind::Bytes | ValueKind::List => return None,
    })
}

/// `text` as a key part of `column` of `meta`.
fn key_value(meta: &EntityMeta, column: &str, text: &str) -> Option<KeyValue> {
    let kind = meta.column_kind(column)?[0];
    KeyValue::of(&value(kind, text)?)
}

/// `text` as an id of `namespace`: by the id column's kind for an entity, else (a view's
/// key) an integer if it reads as one, else text.
pub(crate) fn id(namespace: &'static Namespace, text: &str) -> Option<KeyValue> {
    match registry::entity_of(namespace) {
        Some(meta) => key_value(meta, meta.id_column, text),
        None => Some(match text.parse() {
            Ok(i) => KeyValue::Int(i),
            Err(_) => KeyValue::Text(text.into()),
        }),
    }
}

/// The predicate `all`, `column=value` or `a=1&b=2` of `meta`: one of its indexes or
/// composites.
fn predicate(meta: &'static EntityMeta, text: &str) -> Option<Predicate> {
    if text == "all" {
        return Some(Predicate::All);
    }
    let parts: Vec<(&str, &str)> = text
        .split('&')
        .map(|part| part.split_once('='))
        .collect::<Option<_>>()?;
    if let [(column, v)] = parts.as_slice() {
        let index = meta.indexes.iter().find(|ix| ix.column == *column)?;
        return Some(Predicate::Eq(index.column, key_value(meta, column, v)?));
    }
    let composite = meta.composites.iter().find(|c| {
        c.columns.len() == parts.len() && c.columns.iter().zip(&parts).all(|(a, (b, _))| a == b)
    })?;
    let values = parts
        .iter()
        .map(|(column, v)| key_value(meta, column, v))
        .collect::<Option<Vec<_>>>()?;
    Some(Predicate::And(composite.columns, values.into()))
}

/// The key `text` prints as: a row (`scene:42`, a view's `story_outline:3`), a query
/// (`scene?status=draft`, `scene?all`), a count (`scene#count?status=draft`) or a grouped
/// count (`scene#count_by(status)`). `None` if it names nothing this program caches.
pub(crate) fn parse(text: &str) -> Option<CacheKey> {
    let text = text.trim();
    if let Some((name, rest)) = text.split_once("#count?") {
        return Some(CacheKey::count(
            entity(name)?,
            predicate(entity(name)?, rest)?,
        ));
    }
    if let Some((name, rest)) = text.split_once("#count_by(") {
        let meta = entity(name)?;
        let column = rest.strip_suffix(')')?;
        let index = meta.indexes.iter().find(|ix| ix.column == column)?;
        return Some(CacheKey::groups(meta, index.column));
    }
    if let Some((name, rest)) = text.split_once('?') {
        let meta = entity(name)?;
        return Some(CacheKey::list(meta, predicate(meta, rest)?));
    }
    let (name, rest) = text.split_once(':')?;
    let namespace = namespace(name)?;
    Some(CacheKey::row(namespace, id(namespace, rest)?))
}
