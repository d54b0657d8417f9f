//! Keyset pages: what a caller asks for ([`Page`]) and gets ([`Paged`]), and the typed
//! position between two pages ([`Cursor`]). No `OFFSET`: a page after a cursor reads the rows
//! that sort after it, `WHERE (order, id) > (cursor)`, however deep it is.
//!
//! A cursor has a string form for clients (`codec`): `next.to_string()` in a response,
//! `text.parse::<Cursor>()` (or serde, with the `serde` feature) from a request.

mod codec;

use std::sync::Arc;

use crate::value::KeyValue;

/// Where the next page starts: the order column's value and the id of the last row of the
/// page before (ties on the order column are broken by the id).
///
/// Its string form (`Display`, `FromStr`; serde with the `serde` feature) is compact,
/// URL-safe and opaque, for an HTTP client to send back (`?after=...`):
///
/// ```
/// # use cached_runtime::{Cursor, Error};
/// let err = "not-a-cursor".parse::<Cursor>().unwrap_err();
/// assert!(matches!(err, Error::InvalidCursor { .. }));
/// assert_eq!(err.http_status(), 400);
/// ```
///
/// A cursor remembers the list it was made for (the entity, the order and the filter): used
/// for another one, the page read fails with [`Error::InvalidCursor`](crate::Error) (HTTP 400)
/// rather than returning a page of the wrong list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub(crate) order: KeyValue,
    pub(crate) id: KeyValue,
    /// A hash of the entity, order and filter the cursor was made for.
    pub(crate) scope: u32,
}

impl Cursor {
    /// The order column's value of the last row before the page.
    pub fn order_value(&self) -> &KeyValue {
        &self.order
    }

    /// The id of the last row before the page.
    pub fn id(&self) -> &KeyValue {
        &self.id
    }
}

/// Which page to read: the first `limit` rows, or the `limit` rows after a cursor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Page {
    pub(crate) after: Option<Cursor>,
    pub(crate) limit: u32,
}

impl Page {
    /// The first `limit` rows (at least 1).
    pub fn first(limit: u32) -> Self {
        Page {
            after: None,
            limit: limit.max(1),
        }
    }

    /// The `limit` rows (at least 1) after `cursor` (a [`Paged::next`]).
    pub fn after(cursor: Cursor, limit: u32) -> Self {
        Page {
            after: Some(cursor),
            limit: limit.max(1),
        }
    }

    /// The first page, or the page after `cursor`: what an HTTP handler builds from an
    /// optional `?after=` parameter.
    pub fn new(after: Option<Cursor>, limit: u32) -> Self {
        Page {
            after,
            limit: limit.max(1),
        }
    }

    /// The cursor this page starts after, if any.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.after.as_ref()
    }

    /// The most rows this page holds.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// One page of rows, in the declared order. With the `serde` feature it serializes as
/// `{"rows": [...], "next": "<cursor>"}` (`next` is `null` on the last page).
#[derive(Clone, Debug)]
pub struct Paged<T> {
    /// The rows, at most the page's limit.
    pub rows: Vec<Arc<T>>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize> serde::Serialize for Paged<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Rows<'a, T>(&'a [Arc<T>]);
        impl<T: serde::Serialize> serde::Serialize for Rows<'_, T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|row| &**row))
            }
        }
        let mut out = serializer.serialize_struct("Paged", 2)?;
        out.serialize_field("rows", &Rows(&self.rows))?;
        out.serialize_field("next", &self.next)?;
        out.end()
    }
}
