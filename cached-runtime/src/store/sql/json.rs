//! Lists on SQL: a `Vec<T>` field is stored as a JSON array (a JSON column, or text) and read
//! back into a [`Value::List`].

use crate::value::{Value, ValueKind};

/// A list as JSON text, as SQL stores keep lists (`["a","b"]`); `None` if not a list.
pub(crate) fn list_json(value: &Value) -> Option<String> {
    let Value::List(items) = value else {
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
        list @ Value::List(_) => out.push_str(&list_json(list).expect("a list")),
        Value::ObjectId(bytes) => {
            write!(out, "\"{}\"", crate::value::hex(bytes)).expect("write to a String")
        }
    }
}

pub(crate) use crate::value::parse_hex;

/// A stored JSON array as a list value; `null` is a null list.
pub(crate) fn list(json: serde_json::Value) -> Result<Value, String> {
    match json {
        serde_json::Value::Null => Ok(Value::Null(ValueKind::List)),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(item)
            .collect::<Result<_, _>>()
            .map(Value::List),
        other => Err(format!("a list column holds `{other}`, not a JSON array")),
    }
}

fn item(json: serde_json::Value) -> Result<Value, String> {
    Ok(match json {
        serde_json::Value::Null => Value::Null(ValueKind::Text),
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s),
        array @ serde_json::Value::Array(_) => list(array)?,
        object @ serde_json::Value::Object(_) => {
            return Err(format!("a list item is the JSON object `{object}`"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ToValue;

    #[test]
    fn lists_encode_as_json() {
        let list = vec!["a\"b".to_string(), "c\\".to_string(), "\n".to_string()].to_value();
        assert_eq!(list_json(&list).unwrap(), r#"["a\"b","c\\","\u000a"]"#);
        assert_eq!(list_json(&vec![1i64, -2].to_value()).unwrap(), "[1,-2]");
        assert_eq!(list_json(&Vec::<bool>::new().to_value()).unwrap(), "[]");
        assert_eq!(list_json(&Value::Int(1)), None);
    }

    #[test]
    fn object_ids_are_their_hex_digits() {
        let mut id = [0u8; 12];
        id[0] = 0x65;
        id[11] = 0x0f;
        let json = list_json(&Value::List(vec![Value::ObjectId(id)])).unwrap();
        assert_eq!(json, r#"["65000000000000000000000f"]"#);
        assert_eq!(parse_hex("65000000000000000000000F"), Some(id));
        assert_eq!(parse_hex("+5000000000000000000000f"), None);
        assert_eq!(parse_hex("650000"), None);
    }

    #[test]
    fn json_arrays_read_back_as_the_lists_they_were_written_from() {
        let written = Value::List(vec![
            Value::Text("a\"b".into()),
            Value::Int(-2),
            Value::Float(1.5),
            Value::Bool(true),
        ]);
        let json = serde_json::from_str(&list_json(&written).unwrap()).unwrap();
        assert_eq!(list(json).unwrap(), written);
        assert_eq!(
            list(serde_json::Value::Null).unwrap(),
            Value::Null(ValueKind::List)
        );
        assert!(list(serde_json::json!({"a": 1})).is_err());
    }
}
