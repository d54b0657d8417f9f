//! The string form of a [`Cursor`]: compact, URL-safe, versioned, and opaque to clients.
//!
//! Before base64url (no padding): a version byte, the cursor's scope (4 bytes, big-endian: a
//! hash of the entity, the order and the filter it was made for, checked when it is used),
//! then the order value and the id, each a tag byte and its bytes: 0 null, 1 false, 2 true,
//! 3 an integer (8 bytes, big-endian), 4 text (its UTF-8 length as a LEB128 varint, then the
//! bytes), 5 an `ObjectId` (12 bytes). Anything else, or anything left over, is malformed.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::Cursor;
use crate::error::Error;
use crate::value::KeyValue;

/// The format written now; a string of another version is refused (not misread).
const VERSION: u8 = 1;

/// The longest string accepted: a cursor is a position, not a document.
const MAX_LEN: usize = 4096;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(32);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.scope.to_be_bytes());
        write_value(&mut bytes, &self.order);
        write_value(&mut bytes, &self.id);
        f.write_str(&base64url(&bytes))
    }
}

impl FromStr for Cursor {
    type Err = Error;

    /// Reads a cursor from its string form. A string that is not one (cut short, edited,
    /// from a newer or older format) is [`Error::InvalidCursor`] (HTTP 400); one made for
    /// another list is refused when it is used.
    fn from_str(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_LEN {
            return Err(invalid("it is longer than any cursor"));
        }
        let bytes = from_base64url(text).ok_or_else(|| invalid("it is not base64url"))?;
        let mut input = Input(&bytes);
        match input.byte()? {
            VERSION => {}
            _ => return Err(invalid("it was made by another version of this format")),
        }
        let scope = u32::from_be_bytes(input.array()?);
        let order = input.value()?;
        let id = input.value()?;
        if !input.0.is_empty() {
            return Err(invalid("it has bytes after its end"));
        }
        Ok(Cursor { order, id, scope })
    }
}

fn invalid(reason: &str) -> Error {
    Error::InvalidCursor {
        reason: format!("not a cursor: {reason}"),
    }
}

fn write_value(out: &mut Vec<u8>, value: &KeyValue) {
    match value {
        KeyValue::Null => out.push(0),
        KeyValue::Bool(false) => out.push(1),
        KeyValue::Bool(true) => out.push(2),
        KeyValue::Int(i) => {
            out.push(3);
            out.extend_from_slice(&i.to_be_bytes());
        }
        KeyValue::Text(text) => {
            out.push(4);
            let mut len = text.len();
            loop {
                let low = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    out.push(low);
                    break;
                }
                out.push(low | 0x80);
            }
            out.extend_from_slice(text.as_bytes());
        }
        KeyValue::ObjectId(bytes) => {
            out.push(5);
            out.extend_from_slice(bytes);
        }
    }
}

/// What is left to read.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        if self.0.len() < n {
            return Err(invalid("it is cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn value(&mut self) -> Result<KeyValue, Error> {
        Ok(match self.byte()? {
            0 => KeyValue::Null,
            1 => KeyValue::Bool(false),
            2 => KeyValue::Bool(true),
            3 => KeyValue::Int(i64::from_be_bytes(self.array()?)),
            4 => {
                let mut len = 0usize;
                for shift in (0..).step_by(7) {
                    let byte = self.byte()?;
                    if shift > 28 {
                        return Err(invalid("a text length is too large"));
                    }
                    len |= usize::from(byte & 0x7f) << shift;
                    if byte & 0x80 == 0 {
                        break;
                    }
                }
                let text = std::str::from_utf8(self.take(len)?)
                    .map_err(|_| invalid("a text is not UTF-8"))?;
                KeyValue::Text(Arc::from(text))
            }
            5 => KeyValue::ObjectId(self.array()?),
            _ => return Err(invalid("a value has an unknown tag")),
        })
    }
}

fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

fn from_base64url(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let digit = ALPHABET.iter().position(|&a| a == c)? as u32;
            n |= digit << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
        // Bits beyond the last byte must be zero: one string per cursor.
        let used = (chunk.len() - 1) * 8;
        if chunk.len() < 4 && n & ((1 << (24 - used)) - 1) != 0 {
            return None;
        }
    }
    Some(out)
}

#[cfg(feature = "serde")]
impl serde::Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(order: KeyValue, id: KeyValue) -> Cursor {
        Cursor {
            order,
            id,
            scope: 0xdead_beef,
        }
    }

    #[test]
    fn every_value_survives_its_string_form() {
        let values = [
            KeyValue::Null,
            KeyValue::Bool(false),
            KeyValue::Bool(true),
            KeyValue::Int(0),
            KeyValue::Int(-1),
            KeyValue::Int(i64::MAX),
            KeyValue::Int(i64::MIN),
            KeyValue::Text("".into()),
            KeyValue::Text("draft".into()),
            KeyValue::Text("é ü ☃ 𝄞 \0 / + = ?".into()),
            KeyValue::Text("x".repeat(300).into()),
            KeyValue::ObjectId([7; 12]),
        ];
        for order in &values {
            for id in &values {
                let c = cursor(order.clone(), id.clone());
                let text = c.to_string();
                assert!(
                    text.bytes().all(|b| ALPHABET.contains(&b)),
                    "URL-safe: {text}"
                );
                assert_eq!(text.parse::<Cursor>().unwrap(), c, "{text}");
            }
        }
    }

    #[test]
    fn base64url_matches_the_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(plain.as_bytes()), encoded);
            assert_eq!(from_base64url(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn anything_but_a_cursor_is_a_typed_error() {
        let good = cursor(KeyValue::Text("b".into()), KeyValue::Int(42)).to_string();
        let mut bad: Vec<String> = vec![
            String::new(),
            "%%%".into(),
            "A".into(),
            good[..good.len() - 2].to_string(),
            format!("{good}AA"),
            "x".repeat(5000),
        ];
        // Another version of the format.
        let mut bytes = from_base64url(&good).unwrap();
        bytes[0] = 2;
        bad.push(base64url(&bytes));
        // An unknown tag, a text that is not UTF-8, a length past the end.
        for tail in [vec![9u8], vec![4, 1, 0xff], vec![4, 0x7f]] {
            let mut bytes = vec![VERSION, 0, 0, 0, 0, 0];
            bytes.extend(tail);
            bad.push(base64url(&bytes));
        }
        // Every single-character edit of a good cursor either fails or reads another cursor
        // (never panics).
        for at in 0..good.len() {
            for &c in ALPHABET {
                let mut edited = good.clone().into_bytes();
                edited[at] = c;
                let _ = String::from_utf8(edited).unwrap().parse::<Cursor>();
            }
        }
        for text in bad {
            let err = text.parse::<Cursor>().unwrap_err();
            assert!(
                matches!(err, Error::InvalidCursor { .. }),
                "{text}: {err:?}"
            );
            assert_eq!(err.http_status(), 400);
        }
    }
}
