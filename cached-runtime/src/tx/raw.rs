//! The raw SQL escape hatch: a write the repository cannot express, on a cache transaction,
//! that must say which entities it touches before it can run.
//!
//! ```text
//! tx.raw_write(AssertSqlSafe("UPDATE scenes SET word_count = 0 WHERE chapter_id = ?"))
//!     .bind(7)
//!     .touches_all::<Scene>()
//!     .execute()
//!     .await?;
//! ```
//!
//! Without `touches::<E>(ids)` or `touches_all::<E>()`, `execute` does not compile. The
//! invalidation is deliberately coarse: the touched rows (or all rows), every query of the
//! entity, and every instance of every view that reads it.

use std::marker::PhantomData;

use sqlx::SqlStr;

use super::Transaction;
use crate::entity::{CachedEntity, EntityMeta};
use crate::error::Result;
use crate::value::{KeyPart, KeyValue, ToValue, Value};

/// A raw write that has not named what it touches yet.
pub struct Untargeted;
/// A raw write that has named what it touches.
pub struct Targeted;

/// Only a raw write that named its entities can run.
#[diagnostic::on_unimplemented(
    message = "this raw write does not say which entities it touches",
    label = "`execute` needs `.touches::<Entity>(ids)` or `.touches_all::<Entity>()` first",
    note = "name every entity the statement changes, so the cache can invalidate it: \
            `tx.raw_write(sql).touches::<Scene>([1, 2]).execute().await`"
)]
pub trait Touches {}
impl Touches for Targeted {}

/// A raw statement on a cache transaction. Build it with [`Transaction::raw_write`].
#[must_use = "a raw write does nothing until `.execute().await`"]
pub struct RawWrite<'t, State = Untargeted> {
    tx: &'t mut Transaction,
    sql: SqlStr,
    values: Vec<Value>,
    touched: Vec<(&'static EntityMeta, Option<Vec<KeyValue>>)>,
    state: PhantomData<State>,
}

impl<'t> RawWrite<'t, Untargeted> {
    pub(super) fn new(tx: &'t mut Transaction, sql: SqlStr) -> Self {
        RawWrite {
            tx,
            sql,
            values: Vec::new(),
            touched: Vec::new(),
            state: PhantomData,
        }
    }
}

impl<'t, S> RawWrite<'t, S> {
    /// Binds the next `?` parameter.
    pub fn bind(mut self, value: impl ToValue) -> Self {
        self.values.push(value.to_value());
        self
    }

    fn target(
        mut self,
        meta: &'static EntityMeta,
        ids: Option<Vec<KeyValue>>,
    ) -> RawWrite<'t, Targeted> {
        self.touched.push((meta, ids));
        RawWrite {
            tx: self.tx,
            sql: self.sql,
            values: self.values,
            touched: self.touched,
            state: PhantomData,
        }
    }

    /// Declares that the statement changes these rows of `E` (and possibly any query of `E`).
    pub fn touches<E: CachedEntity>(
        self,
        ids: impl IntoIterator<Item = E::Id>,
    ) -> RawWrite<'t, Targeted> {
        let ids = ids.into_iter().map(|id| id.key_value()).collect();
        self.target(E::meta(), Some(ids))
    }

    /// Declares that the statement may change any row of `E`.
    pub fn touches_all<E: CachedEntity>(self) -> RawWrite<'t, Targeted> {
        self.target(E::meta(), None)
    }

    /// Runs the statement inside the transaction and returns the number of rows affected. The
    /// declared invalidations apply when the transaction commits.
    pub async fn execute(self) -> Result<u64>
    where
        S: Touches,
    {
        self.tx
            .execute_raw(self.sql, self.values, self.touched)
            .await
    }
}
