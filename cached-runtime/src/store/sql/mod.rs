//! The SQL stores, written once for every sqlx driver: [`SqlStore`] implements
//! [`Backend`], [`SqlTx`] implements [`TxOps`], and [`SqlOps`] implements the entity-level
//! [`Ops`] by building the statement for the driver's [`Dialect`] and running it through
//! [`Driver::run`]. A driver module (`sqlite`, `postgres`, `mysql`) only says how its dialect
//! spells things and how values bind.

mod builder;
pub(crate) mod driver;
mod json;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt;
use std::sync::Arc;

use sqlx::{Pool, SqlStr};

use self::builder::{SqlBuilder, StatementCache};
use self::driver::{Dialect, Driver, Got, On, Want};
use super::backend::{id_position, key_of, Assignments, Backend, BoxFuture, Meta, Ops, Row, TxOps};
use super::catalog::{Action, Catalog, Column, ForeignKey, Table, TableId};
use super::RawStore;
use crate::entity::OrderMeta;
use crate::error::{Error, Result};
use crate::key::Predicate;
use crate::value::{KeyValue, Value, ValueKind};

/// SQLite allows 32766 bind parameters per statement, PostgreSQL and MySQL 65535.
const MAX_PARAMS: usize = 30_000;

/// Ids per `IN (...)` list.
const IDS_PER_STATEMENT: usize = 500;

/// A SQL database behind a sqlx pool.
pub(crate) struct SqlStore<DB: Driver> {
    pool: Pool<DB>,
    statements: Arc<StatementCache>,
}

impl<DB: Driver> SqlStore<DB> {
    pub fn new(pool: Pool<DB>) -> Self {
        SqlStore {
            pool,
            statements: Arc::default(),
        }
    }
}

impl<DB: Driver> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &DB::DIALECT.name)
            .field("pool", &self.pool)
            .finish()
    }
}

impl<DB: Driver> Backend for SqlStore<DB> {
    fn name(&self) -> &'static str {
        DB::DIALECT.name
    }

    fn ops(&self) -> Box<dyn Ops + '_> {
        Box::new(SqlOps {
            on: On::Pool(&self.pool),
            statements: &self.statements,
        })
    }

    fn begin(&self) -> BoxFuture<'static, Result<Box<dyn TxOps>>> {
        let (pool, statements) = (self.pool.clone(), self.statements.clone());
        Box::pin(async move {
            let begun = match DB::DIALECT.begin {
                Some(statement) => pool.begin_with(statement).await,
                None => pool.begin().await,
            };
            let tx = begun.map_err(|e| Error::from_sqlx("transaction", e))?;
            Ok(Box::new(SqlTx { tx, statements }) as Box<dyn TxOps>)
        })
    }

    fn catalog(&self) -> BoxFuture<'_, Result<Catalog>> {
        Box::pin(async move {
            let [tables, fks, triggers, columns, default] = DB::DIALECT.catalog;
            let mut on = On::Pool(&self.pool);
            let text = |row: &mut Row, i: usize| match std::mem::replace(
                &mut row[i],
                Value::Null(ValueKind::Text),
            ) {
                Value::Text(s) => s,
                _ => String::new(),
            };
            let table = |row: &mut Row, at: usize| TableId {
                schema: text(row, at),
                name: text(row, at + 1),
            };
            let tables = catalog_rows(&mut on, tables, 3)
                .await?
                .into_iter()
                .map(|mut row| Table {
                    id: table(&mut row, 0),
                    visible: text(&mut row, 2) == "1",
                })
                .collect();
            let foreign_keys = catalog_rows(&mut on, fks, 8)
                .await?
                .into_iter()
                .map(|mut row| ForeignKey {
                    child: table(&mut row, 0),
                    child_column: text(&mut row, 2),
                    parent: table(&mut row, 3),
                    parent_column: text(&mut row, 5),
                    on_update: Action::parse(&text(&mut row, 6)),
                    on_delete: Action::parse(&text(&mut row, 7)),
                })
                .collect();
            let triggers = catalog_rows(&mut on, triggers, 3)
                .await?
                .into_iter()
                .map(|mut row| (table(&mut row, 0), text(&mut row, 2)))
                .collect();
            let columns = catalog_rows(&mut on, columns, 4)
                .await?
                .into_iter()
                .map(|mut row| Column {
                    table: table(&mut row, 0),
                    name: text(&mut row, 2),
                    data_type: text(&mut row, 3),
                })
                .collect();
            let default_schema = catalog_rows(&mut on, default, 1)
                .await?
                .first_mut()
                .map(|row| text(row, 0))
                .unwrap_or_default();
            Ok(Catalog {
                tables,
                foreign_keys,
                triggers,
                columns,
                dynamic_types: DB::DIALECT.dynamic_types,
                default_schema,
            })
        })
    }

    fn raw(&self) -> RawStore<'_> {
        DB::raw(&self.pool)
    }
}

/// The rows of a catalog query whose `width` columns are all text.
async fn catalog_rows<DB: Driver>(
    on: &mut On<'_, DB>,
    query: &'static str,
    width: usize,
) -> Result<Vec<Row>> {
    const TEXT: [ValueKind; 8] = [ValueKind::Text; 8];
    let sql = sqlx::SqlSafeStr::into_sql_str(query);
    let got = DB::run(on.reborrow(), sql, Vec::new(), Want::Rows(&TEXT[..width]))
        .await
        .map_err(|e| Error::from_sqlx("the database catalog", e))?;
    Ok(rows(got))
}

fn rows(got: Got) -> Vec<Row> {
    match got {
        Got::Rows(rows) => rows,
        Got::Affected(_) | Got::InsertedId(_) => Vec::new(),
    }
}

/// An open SQL transaction.
pub(crate) struct SqlTx<DB: Driver> {
    tx: sqlx::Transaction<'static, DB>,
    statements: Arc<StatementCache>,
}

impl<DB: Driver> TxOps for SqlTx<DB> {
    fn ops(&mut self) -> Box<dyn Ops + '_> {
        Box::new(SqlOps {
            on: On::<DB>::Conn(&mut *self.tx),
            statements: &self.statements,
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            self.tx
                .commit()
                .await
                .map_err(|e| Error::from_sqlx("transaction", e))
        })
    }

    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { self.tx.rollback().await.map_err(Error::Database) })
    }
}

/// The entity-level operations on a SQL pool or transaction.
pub(crate) struct SqlOps<'a, DB: Driver> {
    on: On<'a, DB>,
    statements: &'a StatementCache,
}

impl<DB: Driver> SqlOps<'_, DB> {
    fn sql(&self, meta: Meta) -> SqlBuilder<'_> {
        SqlBuilder::new(meta, &DB::DIALECT, self.statements)
    }

    fn dialect(&self) -> &'static Dialect {
        &DB::DIALECT
    }

    /// Runs a statement and returns its rows, every column of `meta`.
    async fn rows(&mut self, meta: Meta, sql: SqlStr, values: Vec<Value>) -> Result<Vec<Row>> {
        self.rows_of(meta, meta.kinds, sql, values).await
    }

    /// Runs a statement and returns its rows, read as `kinds`.
    async fn rows_of(
        &mut self,
        meta: Meta,
        kinds: &'static [ValueKind],
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Vec<Row>> {
        let got = DB::run(self.on.reborrow(), sql, values, Want::Rows(kinds))
            .await
            .map_err(|e| Error::from_sqlx(meta.type_name, e))?;
        Ok(rows(got))
    }

    async fn one(&mut self, meta: Meta, sql: SqlStr, values: Vec<Value>) -> Result<Option<Row>> {
        Ok(self.rows(meta, sql, values).await?.into_iter().next())
    }

    async fn affected(
        &mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<u64> {
        match DB::run(self.on.reborrow(), sql, values, Want::Affected).await {
            Ok(Got::Affected(n)) => Ok(n),
            Ok(Got::Rows(_) | Got::InsertedId(_)) => Ok(0),
            Err(e) => Err(Error::from_sqlx(entity, e)),
        }
    }

    /// Runs an `UPDATE` of one row and returns the row as updated, or `None` if it is absent
    /// (or, for a conditional update, did not match).
    async fn update_returning(
        &mut self,
        meta: Meta,
        id: &KeyValue,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Option<Row>> {
        if self.dialect().returning {
            return self.one(meta, sql, values).await;
        }
        // No RETURNING: update, then read the row back inside the same transaction. MySQL
        // counts changed rows, not matched ones: an update that matched but changed nothing
        // (and bumps no version) is read back too, as an unconditional update always is.
        let conditional = meta.version.is_some();
        if self.affected(meta.type_name, sql, values).await? == 0 && conditional {
            return Ok(None);
        }
        self.by_id(meta, id, false).await
    }

    async fn by_id(&mut self, meta: Meta, id: &KeyValue, locked: bool) -> Result<Option<Row>> {
        let sql = match locked {
            true => self.sql(meta).select_by_id_locked(),
            false => self.sql(meta).select_by_id(),
        };
        self.one(meta, sql, vec![id.to_value()]).await
    }

    async fn by_ids(&mut self, meta: Meta, ids: &[KeyValue], locked: bool) -> Result<Vec<Row>> {
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = self.sql(meta).select_by_ids(chunk.len(), locked);
            let values = chunk.iter().map(KeyValue::to_value).collect();
            rows.extend(self.rows(meta, sql, values).await?);
        }
        Ok(rows)
    }

    async fn set(
        &mut self,
        meta: Meta,
        id: &KeyValue,
        assignments: Assignments,
    ) -> Result<Option<Row>> {
        let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
        let sql = self.sql(meta).update(&columns);
        let mut values: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
        values.push(id.to_value());
        self.update_returning(meta, id, sql, values).await
    }
}

/// The kinds of a `(value, count)` row of a grouped count.
fn with_count(kind: ValueKind) -> &'static [ValueKind] {
    match kind {
        ValueKind::Bool => &[ValueKind::Bool, ValueKind::Int],
        ValueKind::Int => &[ValueKind::Int, ValueKind::Int],
        ValueKind::Float => &[ValueKind::Float, ValueKind::Int],
        ValueKind::Bytes => &[ValueKind::Bytes, ValueKind::Int],
        ValueKind::List => &[ValueKind::List, ValueKind::Int],
        ValueKind::ObjectId => &[ValueKind::ObjectId, ValueKind::Int],
        ValueKind::Text => &[ValueKind::Text, ValueKind::Int],
    }
}

/// The bind parameters of a predicate (none for `All` and for `IS NULL`).
fn predicate_values(predicate: &Predicate) -> Vec<Value> {
    match predicate {
        Predicate::All | Predicate::Eq(_, KeyValue::Null) => Vec::new(),
        Predicate::Eq(_, value) => vec![value.to_value()],
        Predicate::And(_, values) => values
            .iter()
            .filter(|v| **v != KeyValue::Null)
            .map(KeyValue::to_value)
            .collect(),
    }
}

impl<DB: Driver> Ops for SqlOps<'_, DB> {
    fn fetch_by_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
        locked: bool,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(self.by_ids(meta, ids, locked))
    }

    fn fetch_by_id<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        locked: bool,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(self.by_id(meta, id, locked))
    }

    fn fetch_where<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let sql = self.sql(meta).select(predicate);
            self.rows(meta, sql, predicate_values(predicate)).await
        })
    }

    /// The matching ids first (no lock, so that no scan locks rows that do not match), then
    /// those rows locked with the predicate checked again by the database: a row that
    /// stopped matching before the lock is left out, and one spelled otherwise than asked
    /// under a case-insensitive collation is kept, as the update will change it.
    fn fetch_where_locked<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let id_at = id_position(meta);
            let candidates: Vec<KeyValue> = self
                .fetch_where(meta, predicate)
                .await?
                .iter()
                .map(|row| key_of(&row[id_at]))
                .collect();
            let mut rows = Vec::with_capacity(candidates.len());
            for chunk in candidates.chunks(IDS_PER_STATEMENT) {
                let sql = self
                    .sql(meta)
                    .select_by_ids_where_locked(predicate, chunk.len());
                let mut values = predicate_values(predicate);
                values.extend(chunk.iter().map(KeyValue::to_value));
                rows.extend(self.rows(meta, sql, values).await?);
            }
            rows.sort_by_key(|row| key_of(&row[id_at]));
            Ok(rows)
        })
    }

    fn fetch_page<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
        order: &'static OrderMeta,
        after: Option<&'a (KeyValue, KeyValue)>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let sql = self
                .sql(meta)
                .select_page(predicate, order, after.is_some(), limit);
            let mut values = predicate_values(predicate);
            if let Some((value, id)) = after {
                values.extend([value.to_value(), value.to_value(), id.to_value()]);
            }
            self.rows(meta, sql, values).await
        })
    }

    fn count_where<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let sql = self.sql(meta).count(predicate);
            let rows = self
                .rows_of(meta, &[ValueKind::Int], sql, predicate_values(predicate))
                .await?;
            match rows.first().and_then(|row| row.first()) {
                Some(Value::Int(n)) => Ok(*n),
                _ => Ok(0),
            }
        })
    }

    fn count_grouped<'a>(
        &'a mut self,
        meta: Meta,
        column: &'static str,
    ) -> BoxFuture<'a, Result<Vec<(Value, i64)>>> {
        Box::pin(async move {
            // Text for a column it does not have: the database then refuses it by name.
            let kind = meta
                .column_kind(column)
                .map_or(ValueKind::Text, |kind| kind[0]);
            let kinds = with_count(kind);
            let sql = self.sql(meta).count_grouped(column);
            let rows = self.rows_of(meta, kinds, sql, Vec::new()).await?;
            Ok(rows
                .into_iter()
                .filter_map(|mut row| match (row.pop(), row.pop()) {
                    (Some(Value::Int(n)), Some(value)) => Some((value, n)),
                    _ => None,
                })
                .collect())
        })
    }

    fn extreme<'a>(
        &'a mut self,
        meta: Meta,
        predicate: &'a Predicate,
        column: &'static str,
        max: bool,
    ) -> BoxFuture<'a, Result<Option<Value>>> {
        Box::pin(async move {
            let kind = meta.column_kind(column).unwrap_or(&[ValueKind::Text]);
            let sql = self.sql(meta).extreme(predicate, column, max);
            let rows = self
                .rows_of(meta, kind, sql, predicate_values(predicate))
                .await?;
            Ok(rows
                .into_iter()
                .next()
                .and_then(|mut row| row.pop())
                .filter(|value| !matches!(value, Value::Null(_))))
        })
    }

    fn fetch_ids_where_in<'a>(
        &'a mut self,
        meta: Meta,
        column: &'a str,
        values: &'a [KeyValue],
    ) -> BoxFuture<'a, Result<Vec<KeyValue>>> {
        Box::pin(async move {
            let at = id_position(meta);
            let id_kind = &meta.kinds[at..=at];
            let mut ids = Vec::new();
            for chunk in values.chunks(MAX_PARAMS) {
                let sql = self.sql(meta).select_ids_where_in(column, chunk.len());
                let values = chunk.iter().map(KeyValue::to_value).collect();
                let rows = self.rows_of(meta, id_kind, sql, values).await?;
                ids.extend(rows.iter().map(|row| key_of(&row[0])));
            }
            Ok(ids)
        })
    }

    fn insert<'a>(&'a mut self, meta: Meta, rows: Vec<Row>) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let width = meta.columns.len().max(1);
            let id_at = id_position(meta);
            let mut stored = Vec::with_capacity(rows.len());
            for chunk in rows.chunks((MAX_PARAMS / width).max(1)) {
                let sql = self.sql(meta).insert(chunk.len());
                let values = chunk.iter().flatten().cloned().collect();
                if self.dialect().returning {
                    stored.extend(self.rows(meta, sql, values).await?);
                } else {
                    self.affected(meta.type_name, sql, values).await?;
                    let ids: Vec<KeyValue> = chunk
                        .iter()
                        .map(|row| super::backend::key_of(&row[id_at]))
                        .collect();
                    stored.extend(self.by_ids(meta, &ids, false).await?);
                }
            }
            Ok(stored)
        })
    }

    fn insert_generated<'a>(
        &'a mut self,
        meta: Meta,
        rows: Vec<Row>,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let id_at = id_position(meta);
            let without_id = |row: &Row| -> Vec<Value> {
                let mut values = row.clone();
                values.remove(id_at);
                values
            };
            let width = meta.columns.len().saturating_sub(1).max(1);
            let mut stored = Vec::with_capacity(rows.len());
            if self.dialect().returning {
                for chunk in rows.chunks((MAX_PARAMS / width).max(1)) {
                    let sql = self.sql(meta).insert_generated(chunk.len());
                    let values = chunk.iter().flat_map(without_id).collect();
                    let mut got = self.rows(meta, sql, values).await?;
                    // RETURNING lists rows in no promised order; ids grow in the order the
                    // statement inserted the rows, which is the order given.
                    got.sort_by_key(|row| match row[id_at] {
                        Value::Int(id) => id,
                        _ => i64::MAX,
                    });
                    stored.extend(got);
                }
                return Ok(stored);
            }
            // No RETURNING (MySQL): one row per statement, so that each generated id is
            // known, then the rows read back by id.
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                let sql = self.sql(meta).insert_generated(1);
                match DB::run(self.on.reborrow(), sql, without_id(row), Want::InsertedId).await {
                    Ok(Got::InsertedId(Some(id))) => ids.push(KeyValue::Int(id)),
                    Ok(_) => {
                        return Err(Error::ReadBack {
                            entity: meta.type_name,
                            expected: rows.len(),
                            found: ids.len(),
                        })
                    }
                    Err(e) => return Err(Error::from_sqlx(meta.type_name, e)),
                }
            }
            let mut read = self.by_ids(meta, &ids, false).await?;
            for id in &ids {
                let at = read
                    .iter()
                    .position(|row| super::backend::key_of(&row[id_at]) == *id);
                if let Some(at) = at {
                    stored.push(read.swap_remove(at));
                }
            }
            Ok(stored)
        })
    }

    fn update<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(self.set(meta, id, assignments))
    }

    fn update_if_version<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        assignments: Assignments,
        expected: i64,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(async move {
            let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
            let sql = self.sql(meta).update_if_version(&columns);
            let mut values: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
            values.extend([id.to_value(), Value::Int(expected)]);
            self.update_returning(meta, id, sql, values).await
        })
    }

    fn add<'a>(
        &'a mut self,
        meta: Meta,
        id: &'a KeyValue,
        column: &'static str,
        delta: i64,
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(async move {
            let sql = self.sql(meta).add(column);
            let values = vec![Value::Int(delta), id.to_value()];
            self.update_returning(meta, id, sql, values).await
        })
    }

    fn update_ids<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
        assignments: Assignments,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
            let set: Vec<Value> = assignments.into_iter().map(|(_, v)| v).collect();
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let sql = self.sql(meta).update_ids(&columns, chunk.len());
                let mut values = set.clone();
                values.extend(chunk.iter().map(KeyValue::to_value));
                self.affected(meta.type_name, sql, values).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(
        &'a mut self,
        meta: Meta,
        ids: &'a [KeyValue],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let mut deleted = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let sql = self.sql(meta).delete(chunk.len());
                let values: Vec<Value> = chunk.iter().map(KeyValue::to_value).collect();
                if self.dialect().returning {
                    deleted.extend(self.rows(meta, sql, values).await?);
                } else {
                    // No RETURNING: lock and read the rows, then delete them.
                    let rows = self.by_ids(meta, chunk, true).await?;
                    self.affected(meta.type_name, sql, values).await?;
                    deleted.extend(rows);
                }
            }
            Ok(deleted)
        })
    }

    fn execute<'a>(
        &'a mut self,
        entity: &'static str,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.affected(entity, sql, values))
    }
}

/// A store for a sqlx pool.
pub(crate) fn store<DB: Driver>(pool: Pool<DB>) -> Arc<dyn Backend> {
    Arc::new(SqlStore::new(pool))
}
