//! The contract between the cache and a database: three small traits that every store
//! implements once, and nothing above the store layer sees past.
//!
//! - [`Backend`]: the store itself (a pool or a database handle): reads outside any
//!   transaction, `BEGIN`, the catalog, the driver handle for the escape hatch.
//! - [`Ops`]: the entity-level operations the repository and the commit need ("the rows of
//!   scene where status = draft", "set these columns of scene 42"), on the pool or inside a
//!   transaction. Rows travel as one [`Value`] per column (a [`Row`]), so a store never needs
//!   the entity's Rust type, and an entity needs no driver-specific decoding.
//! - [`TxOps`]: an open transaction: its [`Ops`], `COMMIT` and `ROLLBACK`.
//!
//! The traits are object safe (the futures are boxed), so a [`Store`](super::Store) is one
//! `Arc<dyn Backend>` and adding a backend is one module that implements them. The composite
//! operations `update_keeping_old` and `list_op` have default bodies built from the
//! primitives; a store overrides them when it has a one-round-trip form (MongoDB's
//! `findOneAndUpdate`, `$push`). `fetch_where_locked` has none: which locked rows still match
//! is the database's equality to decide, in each store's own terms.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use sqlx::SqlStr;

use super::catalog::Catalog;
use super::RawStore;
use crate::entity::{EntityMeta, OrderMeta};
use crate::error::Result;
use crate::key::Predicate;
use crate::value::{KeyValue, Value};

/// A boxed, `Send` future: what the object-safe store traits return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One row: a value per column of [`EntityMeta::columns`], in that order.
pub(crate) type Row = Vec<Value>;

/// An entity's static description, which every operation takes to know its table and columns.
pub(crate) type Meta = &'static EntityMeta;

/// Column assignments of an update: `(column, new value)`.
pub(crate) type Assignments = Vec<(&'static str, Value)>;

/// A database the cache sits in front of.
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The backend's name for messages: `SQLite`, `PostgreSQL`, `MySQL/MariaDB`, `MongoDB`.
    fn name(&self) -> &'static str;

    /// Operations outside any transaction (cache fills: autocommit reads).
    fn ops(&self) -> Box<dyn Ops + '_>;

    /// Opens a transaction. The future owns what it needs (`'static`), so that it can run to
    /// its end on a task of its own when its caller is dropped.
    fn begin(&self) -> BoxFuture<'static, Result<Box<dyn TxOps>>>;

    /// Foreign keys, triggers and columns of the live database (empty for a store without
    /// foreign keys or triggers the cache cannot see).
    fn catalog(&self) -> BoxFuture<'_, Result<Catalog>>;

    /// The driver handle, for [`Store::raw_unchecked`](super::Store::raw_unchecked).
    fn raw(&self) -> RawStore<'_>;
}

/// An open database transaction.
pub(crate) trait TxOps: Send {
    /// Operations inside this transaction (they see its writes).
    fn ops(&mut self) -> Box<dyn Ops + '_>;

    /// Commits. [`Error::Conflict`](crate::Error::Conflict) means the database aborted the
    /// transaction (nothing was written); any other error leaves the outcome unknown.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>>;

    /// Rolls back.
    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
}

/// The entity-level operations of a store, on its pool or inside a transaction.
pub(crate) trait Ops: Send {
    /// The rows with these ids, in no particular order; locked to the end of the transaction
    /// when `locked` (the old rows of a write).
    fn fetch_by_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
        locked: bool,
    ) -> BoxFuture<'a, Result<Vec<Row>>>;

    /// The row with this id (locked when `locked`).
    fn fetch_by_id<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        locked: bool,
    ) -> BoxFuture<'a, Result<Option<Row>>>;

    /// The rows matching `predicate`, ordered by id.
    fn fetch_where<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<Vec<Row>>>;

    /// At most `limit` rows matching `predicate` in `order` (ties broken by id), starting
    /// after `after` (the order value and the id of the last row before the page).
    fn fetch_page<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
        order: &'static OrderMeta,
        after: Option<&'a (KeyValue, KeyValue)>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Row>>>;

    /// The number of rows matching `predicate`.
    fn count_where<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<i64>>;

    /// Each distinct value of `column` with the number of rows holding it (`GROUP BY`), in
    /// the database's order of the values.
    fn count_grouped<'a>(
        &'a mut self,
        meta: Meta,
        column: &'static str,
    ) -> BoxFuture<'a, Result<Vec<(Value, i64)>>>;

    /// The largest (`max`) or smallest value of `column` among the rows matching
    /// `predicate`, by the database's comparison; `None` when no such row has one (no row,
    /// or only nulls).
    fn extreme<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
        column: &'static str,
        max: bool,
    ) -> BoxFuture<'a, Result<Option<Value>>>;

    /// The ids of the rows of `meta` whose `column` is one of `values`, locked: the rows a
    /// cascade from the parents with these ids reaches.
    fn fetch_ids_where_in<'a>(
        &'a mut self,
        meta: Meta,
        column: &'a str,
        values: &'a [KeyValue],
    ) -> BoxFuture<'a, Result<Vec<KeyValue>>>;

    /// Inserts rows and returns them as stored.
    fn insert<'a>(&'a mut self, meta: Meta, rows: Vec<Row>) -> BoxFuture<'a, Result<Vec<Row>>>;

    /// Inserts rows whose id slot is null, letting the database generate each id (an identity
    /// or serial column, `AUTO_INCREMENT`, SQLite's rowid), and returns them as stored, in
    /// the order given.
    fn insert_generated<'a>(
        &'a mut self,
        meta: Meta,
        rows: Vec<Row>,
    ) -> BoxFuture<'a, Result<Vec<Row>>>;

    /// Assigns columns of one row; returns the row as updated, or `None` if it is absent.
    fn update<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<Option<Row>>>;

    /// Assigns columns of one row if its version column holds `expected`, in one statement;
    /// returns the row as updated, or `None` if no row has this id and version.
    fn update_if_version<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
        expected: i64,
    ) -> BoxFuture<'a, Result<Option<Row>>>;

    /// Adds `delta` to an integer column in one statement; returns the updated row.
    fn add<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        column: &'static str,
        delta: i64,
    ) -> BoxFuture<'a, Result<Option<Row>>>;

    /// Assigns columns on every row with one of these ids (the caller reads them back).
    fn update_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<()>>;

    /// Deletes rows by id and returns the rows that existed.
    fn delete<'a>(&'a mut self, meta: Meta, ids: &'a [KeyValue])
        -> BoxFuture<'a, Result<Vec<Row>>>;

    /// Runs a raw statement (the `raw_write` escape hatch); returns the rows affected.
    fn execute<'a>(
        &'a mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Assigns columns of one row and returns the row before and after, or `None` if it is
    /// absent. By default: the old row read locked, then updated.
    fn update_keeping_old<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<Option<(Row, Row)>>> {
        Box::pin(async move {
            let Some(old) = self.fetch_by_id(meta, id, true).await? else {
                return Ok(None);
            };
            let new = self.update(meta, id, assignments).await?;
            Ok(new.map(|new| (old, new)))
        })
    }

    /// Appends `item` to (or removes every item equal to it from) a list column of one row
    /// and returns the row as updated. By default: the row read locked, the list edited and
    /// written back.
    fn list_op<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        column: &'static str,
        item: Value,
        append: bool,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(async move {
            let Some(mut row) = self.fetch_by_id(meta, id, true).await? else {
                return Ok(None);
            };
            let position = meta
                .column_position(column)
                .expect("a list field is a column");
            let mut items = match row.swap_remove(position) {
                Value::List(items) => items,
                // A null list column holds no items.
                _ => Vec::new(),
            };
            match append {
                true => items.push(item),
                false => items.retain(|i| *i != item),
            }
            self.update(meta, id, vec![(column, Value::List(items))])
                .await
        })
    }

    /// The rows with these ids, locked against other writers until the transaction ends
    /// (`get_for_update`). By default the locked read of [`Ops::fetch_by_ids`]; a store whose
    /// reads take no locks overrides it.
    fn lock_by_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        self.fetch_by_ids(meta, ids, true)
    }

    /// The rows matching `predicate`, locked for the rest of the transaction (the old rows of
    /// a bulk update), ordered by id. Which rows match is the database's to decide (its
    /// collation), never a comparison of bytes here.
    fn fetch_where_locked<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<Vec<Row>>>;
}

/// The position of the id in a row of `meta`.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) fn id_position(meta: Meta) -> usize {
    meta.column_position(meta.id_column)
        .expect("the id is a column")
}

/// A stored value as a key part (ids and key-forming columns are integers, text, booleans,
/// ObjectIds or null).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) fn key_of(value: &Value) -> KeyValue {
    KeyValue::of(value).unwrap_or(KeyValue::Null)
}
