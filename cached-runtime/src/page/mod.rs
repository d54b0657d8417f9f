//! Keyset pages: what a caller asks for ([`Page`]) and gets ([`Paged`]), and the typed
//! position between two pages ([`Cursor`]). No `OFFSET`: a page after a cursor reads the rows
//! that sort after it, `WHERE (order, id) > (cursor)`, however deep it is.

use std::sync::Arc;

use crate::value::KeyValue;

/// Where the next page starts: the order column's value and the id of the last row of the
/// page before (ties on the order column are broken by the id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub(crate) order: KeyValue,
    pub(crate) id: KeyValue,
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
}

/// One page of rows, in the declared order.
#[derive(Clone, Debug)]
pub struct Paged<T> {
    /// The rows, at most the page's limit.
    pub rows: Vec<Arc<T>>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}
