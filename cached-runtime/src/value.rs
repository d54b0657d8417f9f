//! Backend-neutral column values and key parts.
//!
//! Generated code never binds a field to a particular database driver. It turns each field into
//! a [`Value`] (what a store binds as a parameter) and each key-forming field into a
//! [`KeyValue`] (what a cache key carries). The store modules translate values to their
//! driver's types, so the same derive output runs on every backend.

use std::fmt;
use std::sync::Arc;

/// The type of a column value, which a store needs to bind a typed `NULL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueKind {
    /// Booleans.
    Bool,
    /// Integers.
    Int,
    /// Floating point numbers.
    Float,
    /// Text.
    Text,
    /// Raw bytes.
    Bytes,
    /// A list (`Vec<T>`): a BSON array on MongoDB, a JSON array on SQL.
    List,
    /// A MongoDB `ObjectId` (its 24-digit hex text on SQL).
    ObjectId,
}

/// A column value as a store binds it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`, of a column of this kind.
    Null(ValueKind),
    /// A boolean.
    Bool(bool),
    /// Any signed integer up to 64 bits.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// Text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of values (a `Vec<T>` field).
    List(Vec<Value>),
    /// A MongoDB `ObjectId`, by its 12 bytes (its hex text on SQL).
    ObjectId([u8; 12]),
}

impl Value {
    /// This list as JSON text, as SQL stores keep lists (`["a","b"]`); `None` if not a list.
    pub(crate) fn list_json(&self) -> Option<String> {
        let Value::List(items) = self else {
            return None;
        };
        let mut out = String::from("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json(item, &mut out);
        }
        out.push(']');
        Some(out)
    }
}

fn json(value: &Value, out: &mut String) {
    use std::fmt::Write as _;
    match value {
        Value::Null(_) => out.push_str("null"),
        Value::Bool(b) => write!(out, "{b}").expect("write to a String"),
        Value::Int(i) => write!(out, "{i}").expect("write to a String"),
        Value::Float(f) if f.is_finite() => write!(out, "{f:?}").expect("write to a String"),
        Value::Float(_) => out.push_str("null"),
        Value::Text(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => {
                        write!(out, "\\u{:04x}", c as u32).expect("write to a String")
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Bytes(bytes) => {
            out.push('[');
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write!(out, "{b}").expect("write to a String");
            }
            out.push(']');
        }
        list @ Value::List(_) => out.push_str(&list.list_json().expect("a list")),
        Value::ObjectId(bytes) => write!(out, "\"{}\"", hex(bytes)).expect("write to a String"),
    }
}

/// An `ObjectId`'s bytes as the 24 lowercase hex digits MongoDB prints.
pub(crate) fn hex(bytes: &[u8; 12]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(24), |mut out, b| {
        write!(out, "{b:02x}").expect("write to a String");
        out
    })
}

/// Converts a field into a [`Value`] so that any store can bind it.
///
/// Implemented for the primitive types every backend stores natively. Implement it for your
/// own types (an enum stored as text, say) to use them as entity fields.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored by cached-runtime",
    label = "this field's type has no `ToValue` implementation",
    note = "implement `cached_runtime::ToValue` for `{Self}` (for an enum, store it as `Value::Text`), or mark the field `#[cache(skip)]` if it is not persisted"
)]
pub trait ToValue {
    /// The kind of value this type binds as (for a typed `NULL`).
    const KIND: ValueKind;

    /// The value to bind for this field.
    fn to_value(&self) -> Value;
}

/// One part of a cache key: the value of an id or an indexed field.
///
/// Keys are readable (`scene:42`, `scene?status=draft`), so key parts are integers, text,
/// booleans or null; never floats (which have no useful equality) and never hashes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    /// An absent (nullable) value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Text, shared so that cloning a key never copies the string.
    Text(Arc<str>),
    /// A MongoDB `ObjectId`, printed as its hex digits.
    ObjectId([u8; 12]),
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Null => f.write_str("null"),
            KeyValue::Bool(b) => write!(f, "{b}"),
            KeyValue::Int(i) => write!(f, "{i}"),
            KeyValue::Text(s) => f.write_str(s),
            KeyValue::ObjectId(bytes) => f.write_str(&hex(bytes)),
        }
    }
}

impl KeyValue {
    /// The value to bind when a query filters on this key part.
    pub fn to_value(&self) -> Value {
        match self {
            KeyValue::Null => Value::Null(ValueKind::Int),
            KeyValue::Bool(b) => Value::Bool(*b),
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::Text(s) => Value::Text(s.to_string()),
            KeyValue::ObjectId(bytes) => Value::ObjectId(*bytes),
        }
    }
}

/// A type whose values can form part of a cache key: ids, indexed fields and foreign keys.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "ids, indexed fields and foreign keys must be integers, text, booleans (or, on MongoDB, ObjectIds)",
    note = "cache keys are compared for equality and printed (`scene?status=draft`); use an integer, `String` or `bool` field, or implement `cached_runtime::KeyPart` for your type"
)]
pub trait KeyPart: ToValue + Clone + Send + Sync + 'static {
    /// This value as a key part.
    fn key_value(&self) -> KeyValue;
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            const KIND: ValueKind = ValueKind::Int;
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
        impl KeyPart for $t {
            fn key_value(&self) -> KeyValue {
                KeyValue::Int(i64::from(*self))
            }
        }
    )*};
}
int_values!(i8, i16, i32, i64, u8, u16, u32);

impl ToValue for bool {
    const KIND: ValueKind = ValueKind::Bool;
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}
impl KeyPart for bool {
    fn key_value(&self) -> KeyValue {
        KeyValue::Bool(*self)
    }
}

impl ToValue for String {
    const KIND: ValueKind = ValueKind::Text;
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl KeyPart for String {
    fn key_value(&self) -> KeyValue {
        KeyValue::Text(Arc::from(self.as_str()))
    }
}

impl ToValue for f32 {
    const KIND: ValueKind = ValueKind::Float;
    fn to_value(&self) -> Value {
        Value::Float(f64::from(*self))
    }
}
impl ToValue for f64 {
    const KIND: ValueKind = ValueKind::Float;
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
}
impl ToValue for Vec<u8> {
    const KIND: ValueKind = ValueKind::Bytes;
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
}

/// A type that can be an item of a list field (`Vec<T>`), which gets `append_<field>` and
/// `remove_<field>` operations.
///
/// Implemented for integers, `bool`, `String` and floats. For your own type, implement
/// [`ToValue`] and then `impl ListItem for MyType {}` (it has no methods).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an item of a list field",
    label = "a `Vec<{Self}>` field is stored as a list of `{Self}` values",
    note = "implement `cached_runtime::ToValue` for `{Self}`, then `impl cached_runtime::ListItem for {Self} {{}}`"
)]
pub trait ListItem: ToValue + Clone + PartialEq + Send + Sync + 'static {}

macro_rules! list_items {
    ($($t:ty),*) => {$( impl ListItem for $t {} )*};
}
list_items!(i16, i32, i64, u16, u32, bool, String, f32, f64);

impl<T: ListItem> ToValue for Vec<T> {
    const KIND: ValueKind = ValueKind::List;
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(ToValue::to_value).collect())
    }
}

impl<T: ToValue> ToValue for Option<T> {
    const KIND: ValueKind = T::KIND;
    fn to_value(&self) -> Value {
        self.as_ref()
            .map_or(Value::Null(T::KIND), ToValue::to_value)
    }
}
impl<T: KeyPart> KeyPart for Option<T> {
    fn key_value(&self) -> KeyValue {
        self.as_ref().map_or(KeyValue::Null, KeyPart::key_value)
    }
}

/// `ObjectId` ids, indexes and list items, for entities stored on MongoDB.
#[cfg(feature = "mongo")]
mod object_id {
    use super::{KeyPart, KeyValue, ListItem, ToValue, Value, ValueKind};
    use mongodb::bson::oid::ObjectId;

    impl ToValue for ObjectId {
        const KIND: ValueKind = ValueKind::ObjectId;
        fn to_value(&self) -> Value {
            Value::ObjectId(self.bytes())
        }
    }
    impl KeyPart for ObjectId {
        fn key_value(&self) -> KeyValue {
            KeyValue::ObjectId(self.bytes())
        }
    }
    impl ListItem for ObjectId {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_print_readably() {
        assert_eq!(42i64.key_value().to_string(), "42");
        assert_eq!("draft".to_string().key_value().to_string(), "draft");
        assert_eq!(None::<i64>.key_value().to_string(), "null");
        assert_eq!(Some(true).key_value().to_string(), "true");
        let mut id = [0u8; 12];
        id[0] = 0x65;
        id[11] = 0x0f;
        assert_eq!(
            KeyValue::ObjectId(id).to_string(),
            "65000000000000000000000f"
        );
        assert_eq!(
            Value::List(vec![Value::ObjectId(id)]).list_json().unwrap(),
            r#"["65000000000000000000000f"]"#
        );
    }

    #[test]
    fn lists_encode_as_json() {
        let list = vec!["a\"b".to_string(), "c\\".to_string(), "\n".to_string()].to_value();
        assert_eq!(list.list_json().unwrap(), r#"["a\"b","c\\","\u000a"]"#);
        assert_eq!(vec![1i64, -2].to_value().list_json().unwrap(), "[1,-2]");
        assert_eq!(Vec::<bool>::new().to_value().list_json().unwrap(), "[]");
        assert_eq!(Value::Int(1).list_json(), None);
    }

    #[test]
    fn key_values_round_trip_to_bind_values() {
        assert_eq!(7i32.key_value().to_value(), Value::Int(7));
        assert_eq!(None::<String>.to_value(), Value::Null(ValueKind::Text));
        assert_eq!(
            "x".to_string().key_value().to_value(),
            Value::Text("x".into())
        );
    }
}
