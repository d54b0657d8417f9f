//! Whether a column's declared type can hold a field's values and give them back: the type
//! half of the schema check. Conservative by design: a declared type it does not know (dates,
//! enums, domains, `uuid`) is never reported; only pairs that are sure to fail are (an integer
//! field on a text column, text on an integer column, a float on `NUMERIC`, ...).

use crate::value::ValueKind;

/// What a column's declared type holds, as far as reading it back is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Int,
    Bool,
    Float,
    Text,
    Bytes,
    Json,
    /// SQLite `NUMERIC`/`DECIMAL` affinity: any number reads back as a number.
    Number,
    /// A type the drivers cannot read into any field (`NUMERIC` on a server, `citext`), with
    /// what to use instead.
    Unreadable(&'static str),
    /// A type this check does not judge.
    Other,
}

fn class(declared: &str, dynamic: bool) -> Class {
    let t = declared.trim().to_ascii_lowercase();
    let has = |part: &str| t.contains(part);
    if t.is_empty() || t.starts_with("interval") || has("point") {
        return Class::Other;
    }
    if t == "citext" {
        return Class::Unreadable(
            "sqlx reads `citext` only as its own `PgCiText`: use `text` with a \
             case-insensitive (nondeterministic) collation",
        );
    }
    if has("json") {
        Class::Json
    } else if has("blob") || has("bytea") || has("binary") {
        Class::Bytes
    } else if has("char") || has("text") || has("clob") {
        Class::Text
    } else if has("real") || has("floa") || has("doub") {
        Class::Float
    } else if t == "bool" || t == "boolean" {
        Class::Bool
    } else if has("int") || has("serial") {
        Class::Int
    } else if t.starts_with("numeric") || t.starts_with("decimal") {
        if dynamic {
            Class::Number
        } else {
            Class::Unreadable(
                "sqlx reads NUMERIC/DECIMAL only as a decimal type: use an integer column, \
                 or DOUBLE PRECISION for a float field",
            )
        }
    } else {
        Class::Other
    }
}

fn fits(kind: ValueKind, class: Class) -> bool {
    use Class as C;
    match class {
        C::Other => true,
        C::Unreadable(_) => false,
        C::Number => matches!(kind, ValueKind::Int | ValueKind::Bool | ValueKind::Float),
        class => match kind {
            ValueKind::Int => class == C::Int,
            ValueKind::Bool => matches!(class, C::Bool | C::Int),
            ValueKind::Float => matches!(class, C::Float | C::Int),
            ValueKind::Text | ValueKind::ObjectId => class == C::Text,
            ValueKind::Bytes => class == C::Bytes,
            ValueKind::List => matches!(class, C::Json | C::Text),
        },
    }
}

/// What a field of `kind` is, for a message.
fn described(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Bool => "a boolean",
        ValueKind::Int => "an integer",
        ValueKind::Float => "a float",
        ValueKind::Text => "text",
        ValueKind::Bytes => "bytes",
        ValueKind::List => "a list (stored as JSON)",
        ValueKind::ObjectId => "an ObjectId (stored as its 24 hex digits)",
    }
}

/// `None` if a column declared `declared` can hold a field of `kind`; otherwise why not.
pub(super) fn mismatch(kind: ValueKind, declared: &str, dynamic: bool) -> Option<String> {
    let class = class(declared, dynamic);
    if fits(kind, class) {
        return None;
    }
    let field = described(kind);
    Some(match class {
        Class::Unreadable(why) => format!("is `{declared}`, which cannot be read back: {why}"),
        _ => format!(
            "is `{declared}`, which cannot hold the field's values ({field}); see the column \
             types in the README"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_types_each_backend_documents_fit() {
        let fine = [
            (ValueKind::Int, "BIGINT"),
            (ValueKind::Int, "integer"),
            (ValueKind::Int, "bigint(20) unsigned"),
            (ValueKind::Int, "smallint"),
            (ValueKind::Bool, "boolean"),
            (ValueKind::Bool, "tinyint(1)"),
            (ValueKind::Float, "double precision"),
            (ValueKind::Float, "REAL"),
            (ValueKind::Text, "character varying(100)"),
            (ValueKind::Text, "varchar(50)"),
            (ValueKind::Text, "TEXT"),
            (ValueKind::Bytes, "bytea"),
            (ValueKind::Bytes, "BLOB"),
            (ValueKind::List, "jsonb"),
            (ValueKind::List, "longtext"),
            (ValueKind::ObjectId, "char(24)"),
            // Not judged: the check stays quiet about what it does not know.
            (ValueKind::Text, "timestamp with time zone"),
            (ValueKind::Text, "enum('a','b')"),
            (ValueKind::Int, ""),
        ];
        for (kind, declared) in fine {
            assert_eq!(
                mismatch(kind, declared, false),
                None,
                "{kind:?} on {declared}"
            );
        }
        assert_eq!(mismatch(ValueKind::Float, "NUMERIC", true), None);
    }

    #[test]
    fn pairs_that_cannot_round_trip_are_named() {
        let wrong = [
            (ValueKind::Int, "text"),
            (ValueKind::Text, "bigint"),
            (ValueKind::Text, "INTEGER"),
            (ValueKind::Float, "numeric(10,2)"),
            (ValueKind::Text, "citext"),
            (ValueKind::Bytes, "text"),
            (ValueKind::Int, "interval"),
        ];
        for (kind, declared) in wrong {
            let found = mismatch(kind, declared, false);
            // `interval` is not judged (it is not an integer despite its name).
            if declared == "interval" {
                assert_eq!(found, None);
                continue;
            }
            let why = found.unwrap_or_else(|| panic!("{kind:?} on {declared} passed"));
            assert!(why.contains(declared), "{why}");
        }
    }
}
