//! What a change feed reports, the same for every backend: rows of a table changed (with
//! their old and new key-forming values, as far as the feed carries them), a whole table
//! changed, a `catch_up` marker, or something the feed could not read.

use crate::value::KeyValue;

/// One change a feed reports, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// Rows of one table changed.
    Rows {
        /// The table's schema (PostgreSQL), database (MySQL) or database (MongoDB).
        schema: String,
        /// The table (or collection).
        table: String,
        /// Each row's change.
        rows: Vec<RowChange>,
    },
    /// Rows of one table changed that the feed cannot list (`TRUNCATE`, a dropped
    /// collection, a statement whose rows did not fit in one message).
    #[cfg_attr(not(any(feature = "postgres", feature = "mongo")), allow(dead_code))]
    Whole {
        /// The table's schema.
        schema: String,
        /// The table.
        table: String,
    },
    /// A marker written by `catch_up`.
    #[cfg_attr(not(any(feature = "postgres", feature = "mongo")), allow(dead_code))]
    Mark(u64),
    /// A message the feed could not read: whatever it changed, the cache is cleared.
    Undecodable,
}

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Insert,
    Update,
    Delete,
}

/// One row's change: the values the feed carries before and after it, by column name. A
/// column absent from an image is one the feed did not carry (then every query of the entity
/// is dropped, as for a write whose old values are unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowChange {
    pub op: Op,
    pub old: Option<Image>,
    pub new: Option<Image>,
    /// For an update, the columns it assigned, when the feed says (MongoDB's
    /// `updateDescription`): an update that assigned no key-forming column changes no query
    /// even when its old values are not carried.
    pub assigned: Option<Vec<String>>,
}

/// Column values of one row image.
pub(crate) type Image = Vec<(String, KeyValue)>;
