//! SQL text for an entity, per dialect.
//!
//! Statements are built from the entity's static description (table and column names the
//! derive validated as plain identifiers), never from user input: values always travel as bind
//! parameters. The fixed statements are built once per entity and dialect and shared.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use super::driver::Dialect;
use crate::entity::{EntityMeta, OrderMeta};
use crate::key::Predicate;
use crate::value::KeyValue;

/// Quoting and placeholders, as the dialect spells them.
impl Dialect {
    fn quote_ident(&self, out: &mut String, ident: &str) {
        let q = self.quote;
        for (i, part) in ident.split('.').enumerate() {
            if i > 0 {
                out.push('.');
            }
            write!(out, "{q}{part}{q}").expect("writing to a String");
        }
    }

    fn placeholder(&self, out: &mut String, n: usize) {
        match self.numbered_placeholders {
            true => write!(out, "${n}").expect("writing to a String"),
            false => out.push('?'),
        }
    }
}

/// The statements of one entity that do not depend on the call's arguments.
#[derive(Debug)]
pub(crate) struct Statements {
    select_by_id: Arc<str>,
    select_by_id_locked: Arc<str>,
    select_all: Arc<str>,
    count_all: Arc<str>,
    select_where: Box<[Arc<str>]>,
    count_where: Box<[Arc<str>]>,
    delete_by_id: Arc<str>,
}

/// The fixed statements of every entity a store has run, built on first use. One per store
/// (so per dialect), keyed by the entity's static description.
#[derive(Debug, Default)]
pub(crate) struct StatementCache(RwLock<HashMap<usize, Arc<Statements>>>);

impl StatementCache {
    fn get(&self, builder: &SqlBuilder) -> Arc<Statements> {
        let key = builder.meta as *const EntityMeta as usize;
        if let Some(found) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return found.clone();
        }
        let built = Arc::new(builder.build_statements());
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_insert(built).clone()
    }
}

fn sql(text: &Arc<str>) -> SqlStr {
    AssertSqlSafe(text.clone()).into_sql_str()
}

/// Builds SQL for one entity in one dialect.
pub(crate) struct SqlBuilder<'s> {
    meta: &'static EntityMeta,
    dialect: &'static Dialect,
    cache: &'s StatementCache,
}

impl<'s> SqlBuilder<'s> {
    pub fn new(
        meta: &'static EntityMeta,
        dialect: &'static Dialect,
        cache: &'s StatementCache,
    ) -> Self {
        SqlBuilder {
            meta,
            dialect,
            cache,
        }
    }

    fn build_statements(&self) -> Statements {
        let indexes = self.meta.indexes.iter();
        Statements {
            select_by_id: self.select_where_column(self.meta.id_column, false).into(),
            select_by_id_locked: self
                .lock(self.select_where_column(self.meta.id_column, false))
                .into(),
            select_all: self.select_pred(&Predicate::All).into(),
            count_all: self.count_pred(&Predicate::All).into(),
            select_where: indexes
                .clone()
                .map(|i| self.select_where_column(i.column, true).into())
                .collect(),
            count_where: indexes
                .map(|i| self.count_where_column(i.column).into())
                .collect(),
            delete_by_id: self.delete_where_ids(1).into(),
        }
    }

    fn statements(&self) -> Arc<Statements> {
        self.cache.get(self)
    }

    fn columns(&self, out: &mut String) {
        for (i, column) in self.meta.columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.dialect.quote_ident(out, column);
        }
    }

    fn select_head(&self) -> String {
        let mut out = String::from("SELECT ");
        self.columns(&mut out);
        out.push_str(" FROM ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        out
    }

    fn returning(&self, out: &mut String) {
        if self.dialect.returning {
            out.push_str(" RETURNING ");
            self.columns(out);
        }
    }

    /// Adds `FOR UPDATE` where the dialect has row locks.
    fn lock(&self, mut select: String) -> String {
        if self.dialect.row_locks {
            select.push_str(" FOR UPDATE");
        }
        select
    }

    fn order_by_id(&self, out: &mut String) {
        out.push_str(" ORDER BY ");
        self.dialect.quote_ident(out, self.meta.id_column);
    }

    fn select_where_column(&self, column: &str, ordered: bool) -> String {
        let mut out = self.select_head();
        out.push_str(" WHERE ");
        self.dialect.quote_ident(&mut out, column);
        out.push_str(" = ");
        self.dialect.placeholder(&mut out, 1);
        if ordered {
            self.order_by_id(&mut out);
        }
        out
    }

    fn count_where_column(&self, column: &str) -> String {
        let mut out = String::from("SELECT COUNT(*) FROM ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        out.push_str(" WHERE ");
        self.dialect.quote_ident(&mut out, column);
        out.push_str(" = ");
        self.dialect.placeholder(&mut out, 1);
        out
    }

    fn select_pred(&self, predicate: &Predicate) -> String {
        let mut out = self.select_head();
        self.where_null(&mut out, predicate);
        self.order_by_id(&mut out);
        out
    }

    fn count_pred(&self, predicate: &Predicate) -> String {
        let mut out = String::from("SELECT COUNT(*) FROM ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        self.where_null(&mut out, predicate);
        out
    }

    /// `WHERE col IS NULL` for a null predicate; nothing for `All`.
    fn where_null(&self, out: &mut String, predicate: &Predicate) {
        if let Predicate::Eq(column, _) = predicate {
            out.push_str(" WHERE ");
            self.dialect.quote_ident(out, column);
            out.push_str(" IS NULL");
        }
    }

    /// `SELECT <id> FROM <table> WHERE <column> IN (?, ...) FOR UPDATE`: the rows a cascade
    /// from a parent reaches (locked, so that none joins or leaves before the commit).
    pub fn select_ids_where_in(&self, column: &str, n: usize) -> SqlStr {
        let mut out = String::from("SELECT ");
        self.dialect.quote_ident(&mut out, self.meta.id_column);
        out.push_str(" FROM ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        out.push_str(" WHERE ");
        self.in_list(&mut out, column, n, 1);
        AssertSqlSafe(self.lock(out)).into_sql_str()
    }

    fn id_list(&self, out: &mut String, n: usize, first: usize) {
        self.in_list(out, self.meta.id_column, n, first);
    }

    fn in_list(&self, out: &mut String, column: &str, n: usize, first: usize) {
        self.dialect.quote_ident(out, column);
        out.push_str(" IN (");
        for i in 0..n {
            if i > 0 {
                out.push_str(", ");
            }
            self.dialect.placeholder(out, first + i);
        }
        out.push(')');
    }

    fn delete_where_ids(&self, n: usize) -> String {
        let mut out = String::from("DELETE FROM ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        out.push_str(" WHERE ");
        self.id_list(&mut out, n, 1);
        self.returning(&mut out);
        out
    }

    /// `SELECT <columns> FROM <table> WHERE <id> = ?`.
    pub fn select_by_id(&self) -> SqlStr {
        sql(&self.statements().select_by_id)
    }

    /// `SELECT <columns> FROM <table> WHERE <id> = ? FOR UPDATE`: the old row a write needs,
    /// locked until the transaction ends (no lock clause on SQLite, whose writers are serial).
    pub fn select_by_id_locked(&self) -> SqlStr {
        sql(&self.statements().select_by_id_locked)
    }

    /// `SELECT <columns> FROM <table> WHERE <id> IN (?, ...)`, locked if `locked`.
    pub fn select_by_ids(&self, n: usize, locked: bool) -> SqlStr {
        let mut out = self.select_head();
        out.push_str(" WHERE ");
        self.id_list(&mut out, n, 1);
        if locked {
            out = self.lock(out);
        }
        AssertSqlSafe(out).into_sql_str()
    }

    /// `SELECT <columns> FROM <table> WHERE <predicate> AND <id> IN (?, ...) FOR UPDATE`: the
    /// candidates of a bulk update that still match once locked, judged by the database's own
    /// equality (a locking read sees the latest committed row on every dialect). Binds the
    /// predicate's non-null values, then the ids.
    pub fn select_by_ids_where_locked(&self, predicate: &Predicate, n: usize) -> SqlStr {
        let mut out = self.select_head();
        let bound = self.where_equal(&mut out, &predicate.parts());
        out.push_str(if predicate.parts().is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.in_list(&mut out, self.meta.id_column, n, bound + 1);
        AssertSqlSafe(self.lock(out)).into_sql_str()
    }

    /// The rows matching `predicate`, ordered by id. A `null` value needs no bind parameter
    /// (`IS NULL`); any other value is bound as the only parameter.
    pub fn select(&self, predicate: &Predicate) -> SqlStr {
        match predicate {
            Predicate::All => sql(&self.statements().select_all),
            Predicate::Eq(_, KeyValue::Null) => {
                AssertSqlSafe(self.select_pred(predicate)).into_sql_str()
            }
            Predicate::Eq(column, _) => match self.meta.index_position(column) {
                Some(i) => sql(&self.statements().select_where[i]),
                // Not a key-forming column: built for this call (and refused by the database
                // if there is no such column).
                None => AssertSqlSafe(self.select_where_column(column, true)).into_sql_str(),
            },
            Predicate::And(columns, values) => self.and(columns, values, false),
        }
    }

    /// `SELECT ... WHERE a = ? AND b IS NULL ... ORDER BY <id>` (or the count): a composite
    /// lookup, built for the call; binds the non-null values in order.
    fn and(&self, columns: &[&str], values: &[KeyValue], count: bool) -> SqlStr {
        let mut out = if count {
            let mut out = String::from("SELECT COUNT(*) FROM ");
            self.dialect.quote_ident(&mut out, self.meta.table);
            out
        } else {
            self.select_head()
        };
        let parts: Vec<(&str, &KeyValue)> = columns.iter().copied().zip(values).collect();
        self.where_equal(&mut out, &parts);
        if !count {
            self.order_by_id(&mut out);
        }
        AssertSqlSafe(out).into_sql_str()
    }

    /// ` WHERE a = ? AND b IS NULL ...` for `parts` (nothing when empty), numbering the
    /// placeholders from 1; returns how many it bound (the non-null values, in order).
    fn where_equal(&self, out: &mut String, parts: &[(&str, &KeyValue)]) -> usize {
        let mut bound = 0;
        for (i, (column, value)) in parts.iter().enumerate() {
            out.push_str(if i == 0 { " WHERE " } else { " AND " });
            self.dialect.quote_ident(out, column);
            if **value == KeyValue::Null {
                out.push_str(" IS NULL");
            } else {
                bound += 1;
                out.push_str(" = ");
                self.dialect.placeholder(out, bound);
            }
        }
        bound
    }

    /// `SELECT ... WHERE <predicate> AND (o > ? OR (o = ? AND id > ?)) ORDER BY o, id LIMIT n`
    /// (`<` and `DESC` for a descending order): one keyset page. Binds the predicate's
    /// non-null values, then, after a cursor, its order value twice and its id.
    pub fn select_page(
        &self,
        predicate: &Predicate,
        order: &OrderMeta,
        after: bool,
        limit: u32,
    ) -> SqlStr {
        let mut out = self.select_head();
        let parts = predicate.parts();
        let bound = self.where_equal(&mut out, &parts);
        let (cmp, dir) = if order.descending {
            (" < ", " DESC")
        } else {
            (" > ", "")
        };
        if after {
            out.push_str(if parts.is_empty() {
                " WHERE ("
            } else {
                " AND ("
            });
            self.dialect.quote_ident(&mut out, order.column);
            out.push_str(cmp);
            self.dialect.placeholder(&mut out, bound + 1);
            out.push_str(" OR (");
            self.dialect.quote_ident(&mut out, order.column);
            out.push_str(" = ");
            self.dialect.placeholder(&mut out, bound + 2);
            out.push_str(" AND ");
            self.dialect.quote_ident(&mut out, self.meta.id_column);
            out.push_str(cmp);
            self.dialect.placeholder(&mut out, bound + 3);
            out.push_str("))");
        }
        out.push_str(" ORDER BY ");
        self.dialect.quote_ident(&mut out, order.column);
        out.push_str(dir);
        out.push_str(", ");
        self.dialect.quote_ident(&mut out, self.meta.id_column);
        out.push_str(dir);
        write!(out, " LIMIT {limit}").expect("writing to a String");
        AssertSqlSafe(out).into_sql_str()
    }

    /// The number of rows matching `predicate` (binds as [`SqlBuilder::select`]).
    pub fn count(&self, predicate: &Predicate) -> SqlStr {
        match predicate {
            Predicate::All => sql(&self.statements().count_all),
            Predicate::Eq(_, KeyValue::Null) => {
                AssertSqlSafe(self.count_pred(predicate)).into_sql_str()
            }
            Predicate::Eq(column, _) => match self.meta.index_position(column) {
                Some(i) => sql(&self.statements().count_where[i]),
                None => AssertSqlSafe(self.count_where_column(column)).into_sql_str(),
            },
            Predicate::And(columns, values) => self.and(columns, values, true),
        }
    }

    /// `SELECT <column>, COUNT(*) FROM <table> GROUP BY <column> ORDER BY <column>`.
    pub fn count_grouped(&self, column: &str) -> SqlStr {
        let mut out = String::from("SELECT ");
        self.dialect.quote_ident(&mut out, column);
        out.push_str(", COUNT(*) FROM ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        for clause in [" GROUP BY ", " ORDER BY "] {
            out.push_str(clause);
            self.dialect.quote_ident(&mut out, column);
        }
        AssertSqlSafe(out).into_sql_str()
    }

    /// `SELECT MAX(<column>) FROM <table> WHERE <predicate>` (`MIN` unless `max`). Binds the
    /// predicate's non-null values.
    pub fn extreme(&self, predicate: &Predicate, column: &str, max: bool) -> SqlStr {
        let mut out = String::from(if max { "SELECT MAX(" } else { "SELECT MIN(" });
        self.dialect.quote_ident(&mut out, column);
        out.push_str(") FROM ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        self.where_equal(&mut out, &predicate.parts());
        AssertSqlSafe(out).into_sql_str()
    }

    /// `INSERT INTO <table> (<columns>) VALUES (...), ... RETURNING <columns>` for `rows` rows.
    pub fn insert(&self, rows: usize) -> SqlStr {
        self.insert_columns(rows, |_| true)
    }

    /// `INSERT INTO <table> (<columns but the id>) VALUES (...), ... RETURNING <columns>`:
    /// the database generates each id. The values are the rows without their id.
    pub fn insert_generated(&self, rows: usize) -> SqlStr {
        let id = self.meta.id_column;
        self.insert_columns(rows, |column| column != id)
    }

    fn insert_columns(&self, rows: usize, keep: impl Fn(&str) -> bool) -> SqlStr {
        let columns: Vec<&str> = self
            .meta
            .columns
            .iter()
            .copied()
            .filter(|c| keep(c))
            .collect();
        let mut out = String::from("INSERT INTO ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        out.push_str(" (");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.dialect.quote_ident(&mut out, column);
        }
        out.push_str(") VALUES ");
        let width = columns.len();
        for row in 0..rows {
            if row > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for col in 0..width {
                if col > 0 {
                    out.push_str(", ");
                }
                self.dialect.placeholder(&mut out, row * width + col + 1);
            }
            out.push(')');
        }
        self.returning(&mut out);
        AssertSqlSafe(out).into_sql_str()
    }

    /// `UPDATE <table> SET a = ?, b = ? WHERE <id> = ? RETURNING <columns>`.
    pub fn update(&self, columns: &[&str]) -> SqlStr {
        let mut out = self.update_set(columns);
        self.where_id_returning(&mut out, columns.len() + 1);
        AssertSqlSafe(out).into_sql_str()
    }

    /// `UPDATE <table> SET a = ?, b = ? WHERE <id> = ? AND <version> = ? RETURNING
    /// <columns>`: the write of `update_if_version` (the version is bumped by the `SET`).
    pub fn update_if_version(&self, columns: &[&str]) -> SqlStr {
        let version = self
            .meta
            .version
            .expect("update_if_version needs a version column");
        let n = columns.len();
        let mut out = self.update_set(columns);
        out.push_str(" WHERE ");
        self.dialect.quote_ident(&mut out, self.meta.id_column);
        out.push_str(" = ");
        self.dialect.placeholder(&mut out, n + 1);
        out.push_str(" AND ");
        self.dialect.quote_ident(&mut out, version);
        out.push_str(" = ");
        self.dialect.placeholder(&mut out, n + 2);
        self.returning(&mut out);
        AssertSqlSafe(out).into_sql_str()
    }

    /// `UPDATE <table> SET a = ?, b = ?` (placeholders 1..=n), and the version bump.
    fn update_set(&self, columns: &[&str]) -> String {
        let mut out = String::from("UPDATE ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        out.push_str(" SET ");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.dialect.quote_ident(&mut out, column);
            out.push_str(" = ");
            self.dialect.placeholder(&mut out, i + 1);
        }
        if !columns.is_empty() {
            self.bump_version(&mut out);
        }
        out
    }

    /// `, <version> = <version> + 1` when the entity has a version column: every write
    /// through the repository moves it on, in the statement that writes.
    fn bump_version(&self, out: &mut String) {
        if let Some(version) = self.meta.version {
            out.push_str(", ");
            self.dialect.quote_ident(out, version);
            out.push_str(" = ");
            self.dialect.quote_ident(out, version);
            out.push_str(" + 1");
        }
    }

    /// `UPDATE <table> SET c = c + ? WHERE <id> = ? RETURNING <columns>`.
    pub fn add(&self, column: &str) -> SqlStr {
        let mut out = String::from("UPDATE ");
        self.dialect.quote_ident(&mut out, self.meta.table);
        out.push_str(" SET ");
        self.dialect.quote_ident(&mut out, column);
        out.push_str(" = ");
        self.dialect.quote_ident(&mut out, column);
        out.push_str(" + ");
        self.dialect.placeholder(&mut out, 1);
        self.bump_version(&mut out);
        self.where_id_returning(&mut out, 2);
        AssertSqlSafe(out).into_sql_str()
    }

    fn where_id_returning(&self, out: &mut String, n: usize) {
        out.push_str(" WHERE ");
        self.dialect.quote_ident(out, self.meta.id_column);
        out.push_str(" = ");
        self.dialect.placeholder(out, n);
        self.returning(out);
    }

    /// `UPDATE <table> SET c = ?, ... WHERE <id> IN (?, ...)` (no `RETURNING`: the rows are
    /// read back by id).
    pub fn update_ids(&self, columns: &[&str], n: usize) -> SqlStr {
        let mut out = self.update_set(columns);
        out.push_str(" WHERE ");
        self.id_list(&mut out, n, columns.len() + 1);
        AssertSqlSafe(out).into_sql_str()
    }

    /// `DELETE FROM <table> WHERE <id> IN (?, ...) RETURNING <columns>`.
    pub fn delete(&self, n: usize) -> SqlStr {
        if n == 1 {
            sql(&self.statements().delete_by_id)
        } else {
            AssertSqlSafe(self.delete_where_ids(n)).into_sql_str()
        }
    }
}
