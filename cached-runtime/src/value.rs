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

/// An `ObjectId`'s bytes from its 24 hex digits (either case).
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "axum"
    )),
    allow(dead_code)
)]
pub(crate) fn parse_hex(text: &str) -> Option<[u8; 12]> {
    let digits = text.as_bytes();
    if digits.len() != 24 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut bytes = [0u8; 12];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
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

    /// The bytes this value owns on the heap (a `String`'s buffer, a list's items), for a
    /// cache bounded by bytes. The default converts to a [`Value`] and measures that; the
    /// built-in types answer without converting.
    fn heap_size(&self) -> usize {
        self.to_value().heap_size()
    }
}

impl Value {
    /// The bytes this value owns on the heap.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Text(s) => s.capacity(),
            Value::Bytes(b) => b.capacity(),
            Value::List(items) => items
                .iter()
                .map(|v| std::mem::size_of::<Value>() + v.heap_size())
                .sum(),
            _ => 0,
        }
    }
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
    /// A stored value as a key part; `None` for a value no key can hold (a float, bytes, a
    /// list).
    pub(crate) fn of(value: &Value) -> Option<KeyValue> {
        Some(match value {
            Value::Null(_) => KeyValue::Null,
            Value::Bool(b) => KeyValue::Bool(*b),
            Value::Int(i) => KeyValue::Int(*i),
            Value::Text(t) => KeyValue::Text(t.as_str().into()),
            Value::ObjectId(bytes) => KeyValue::ObjectId(*bytes),
            Value::Float(_) | Value::Bytes(_) | Value::List(_) => return None,
        })
    }

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
    fn heap_size(&self) -> usize {
        self.capacity()
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
    fn heap_size(&self) -> usize {
        self.capacity()
    }
}

/// A type that can be an item of a list field (`Vec<T>`), which gets `append_<field>` and
/// `remove_<field>` operations.
///
/// Implemented for integers, `bool`, `String` and floats. For your own type, implement
/// [`ToValue`] and [`FromValue`], then `impl ListItem for MyType {}` (it has no methods).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an item of a list field",
    label = "a `Vec<{Self}>` field is stored as a list of `{Self}` values",
    note = "implement `cached_runtime::ToValue` and `cached_runtime::FromValue` for `{Self}`, then `impl cached_runtime::ListItem for {Self} {{}}`"
)]
pub trait ListItem: ToValue + FromValue + Clone + PartialEq + Send + Sync + 'static {}

macro_rules! list_items {
    ($($t:ty),*) => {$( impl ListItem for $t {} )*};
}
list_items!(i16, i32, i64, u16, u32, bool, String, f32, f64);

impl<T: ListItem> ToValue for Vec<T> {
    const KIND: ValueKind = ValueKind::List;
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(ToValue::to_value).collect())
    }
    fn heap_size(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>() + self.iter().map(T::heap_size).sum::<usize>()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    const KIND: ValueKind = T::KIND;
    fn to_value(&self) -> Value {
        self.as_ref()
            .map_or(Value::Null(T::KIND), ToValue::to_value)
    }
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, T::heap_size)
    }
}
impl<T: KeyPart> KeyPart for Option<T> {
    fn key_value(&self) -> KeyValue {
        self.as_ref().map_or(KeyValue::Null, KeyPart::key_value)
    }
}

/// Converts a stored [`Value`] back into a field: the inverse of [`ToValue`]. Every store
/// reads a row as one `Value` per column, and the derive's `from_values` builds the entity
/// from them with this trait, so an entity needs no driver-specific decoding (`sqlx::FromRow`,
/// `serde::Deserialize`) on any backend.
///
/// Implemented for every type that implements [`ToValue`] here. For your own type, accept
/// what your `to_value` produces (and, on SQL, what the column gives back: an integer column
/// read back is [`Value::Int`] whatever its width).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read back from a stored value",
    label = "this field's type has no `FromValue` implementation",
    note = "implement `cached_runtime::FromValue` for `{Self}` (the inverse of its `ToValue`), or mark the field `#[cache(skip)]` if it is not persisted"
)]
pub trait FromValue: Sized {
    /// The field for this stored value, or why it does not fit.
    fn from_value(value: Value) -> Result<Self, ValueError>;
}

/// A stored value that does not fit the field it is read into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError {
    expected: &'static str,
    found: String,
}

impl ValueError {
    /// `expected` describes the field's type ("an integer that fits `u8`"); `found` is the
    /// value the store returned.
    pub fn new(expected: &'static str, found: &Value) -> Self {
        let mut shown = format!("{found:?}");
        if shown.len() > 60 {
            let cut = (0..=60)
                .rev()
                .find(|i| shown.is_char_boundary(*i))
                .unwrap_or(0);
            shown.truncate(cut);
            shown.push_str("...");
        }
        ValueError {
            expected,
            found: shown,
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {}", self.expected, self.found)
    }
}

impl std::error::Error for ValueError {}

/// A row whose column does not fit its field (a wrong column type, a value out of range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The column.
    pub column: &'static str,
    /// What was wrong with its value.
    pub error: ValueError,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column `{}`: {}", self.column, self.error)
    }
}

impl std::error::Error for DecodeError {}

/// Reads the next column of a row into a field (what generated `from_values` calls).
pub fn read_column<T: FromValue>(
    row: &mut std::vec::IntoIter<Value>,
    column: &'static str,
) -> Result<T, DecodeError> {
    let value = row.next().ok_or(DecodeError {
        column,
        error: ValueError {
            expected: "a value",
            found: "no such column in the row".into(),
        },
    })?;
    T::from_value(value).map_err(|error| DecodeError { column, error })
}

macro_rules! int_from_values {
    ($($t:ty => $expected:literal),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self, ValueError> {
                match value {
                    Value::Int(i) => {
                        <$t>::try_from(i).map_err(|_| ValueError::new($expected, &value))
                    }
                    other => Err(ValueError::new($expected, &other)),
                }
            }
        }
    )*};
}
int_from_values!(
    i8 => "an integer that fits `i8`",
    i16 => "an integer that fits `i16`",
    i32 => "an integer that fits `i32`",
    i64 => "an integer",
    u8 => "an integer that fits `u8`",
    u16 => "an integer that fits `u16`",
    u32 => "an integer that fits `u32`"
);

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Bool(b) => Ok(b),
            // MySQL's BOOLEAN is TINYINT(1); SQLite has no boolean type.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(ValueError::new("a boolean", &other)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(ValueError::new("text", &other)),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Float(f) => Ok(f),
            // A JSON list item written as `1.0` may come back as the integer 1.
            Value::Int(i) => Ok(i as f64),
            other => Err(ValueError::new("a number", &other)),
        }
    }
}

impl FromValue for f32 {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        f64::from_value(value).map(|f| f as f32)
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Bytes(b) => Ok(b),
            other => Err(ValueError::new("bytes", &other)),
        }
    }
}

impl<T: ListItem> FromValue for Vec<T> {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::List(items) => items.into_iter().map(T::from_value).collect(),
            other => Err(ValueError::new("a list", &other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Null(_) => Ok(None),
            value => T::from_value(value).map(Some),
        }
    }
}

/// `ObjectId` ids, indexes and list items, for entities stored on MongoDB.
#[cfg(feature = "mongo")]
mod object_id {
    use super::{FromValue, KeyPart, KeyValue, ListItem, ToValue, Value, ValueError, ValueKind};
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

    impl FromValue for ObjectId {
        fn from_value(value: Value) -> Result<Self, ValueError> {
            match value {
                Value::ObjectId(bytes) => Ok(ObjectId::from_bytes(bytes)),
                // SQL stores keep an ObjectId as its hex digits.
                Value::Text(hex) => ObjectId::parse_str(&hex)
                    .map_err(|_| ValueError::new("an ObjectId", &Value::Text(hex))),
                other => Err(ValueError::new("an ObjectId", &other)),
            }
        }
    }
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
