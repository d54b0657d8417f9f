//! What differs between the sqlx drivers, and the one generic function that runs a statement
//! on any of them.
//!
//! A backend module supplies a [`Driver`] impl: its [`Dialect`] (quoting, placeholders,
//! `RETURNING`, row locks, `BEGIN`, catalog queries), how a [`Value`] binds, and its driver
//! handle. Everything else about running SQL is written once, generic over the driver, in
//! [`run`] and [`ReadValue`]; [`Driver::run`] is that function instantiated for the driver
//! (the `sqlx` trait bounds it needs are stated here once and nowhere else).

use sqlx::error::BoxDynError;
use sqlx::{
    Arguments, Column as _, Database, Decode, Encode, Executor, Pool, Row as _, SqlStr, Type,
    TypeInfo, ValueRef,
};

use crate::store::backend::{BoxFuture, Row};
use crate::store::RawStore;
use crate::value::{Value, ValueKind};

/// How a SQL dialect spells the statements the stores build.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// The backend's name for messages.
    pub name: &'static str,
    /// The identifier quote: `"` or `` ` ``.
    pub quote: char,
    /// `$1, $2` placeholders (PostgreSQL) rather than `?`.
    pub numbered_placeholders: bool,
    /// `INSERT`/`UPDATE`/`DELETE ... RETURNING` is available.
    pub returning: bool,
    /// `SELECT ... FOR UPDATE` locks rows (SQLite has no row locks: its writers are serial).
    pub row_locks: bool,
    /// The statement that opens a write transaction, when not plain `BEGIN`.
    pub begin: Option<&'static str>,
    /// The catalog queries, over every schema (database) but the system's, each table as
    /// (schema, name): tables (schema, name, `'1'` if an unqualified name finds it), foreign
    /// keys (child schema, child, child column, parent schema, parent, parent column,
    /// ON UPDATE, ON DELETE), triggers (schema, table, name), columns (schema, table, name,
    /// declared type), the default schema (one value); all text.
    pub catalog: [&'static str; 5],
    /// Declared column types are affinities, not types (SQLite).
    pub dynamic_types: bool,
}

/// Where a statement runs: the pool (autocommit) or a transaction's connection.
pub(crate) enum On<'a, DB: Database> {
    Pool(&'a Pool<DB>),
    Conn(&'a mut DB::Connection),
}

impl<DB: Database> On<'_, DB> {
    /// A shorter borrow of the same place, for the next statement.
    pub fn reborrow(&mut self) -> On<'_, DB> {
        match self {
            On::Pool(pool) => On::Pool(pool),
            On::Conn(conn) => On::Conn(&mut **conn),
        }
    }
}

/// What a statement returns.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want {
    /// Its rows, each column read as the given kind.
    Rows(&'static [ValueKind]),
    /// The number of rows it affected.
    Affected,
    /// The id the database generated for the row it inserted.
    InsertedId,
}

/// What a statement returned.
pub(crate) enum Got {
    Rows(Vec<Row>),
    Affected(u64),
    InsertedId(Option<i64>),
}

/// A sqlx database the stores can drive.
pub(crate) trait Driver: Database {
    /// How this database spells SQL.
    const DIALECT: Dialect;

    /// Appends one value to the arguments, with the driver's type for it.
    fn bind(args: &mut <Self as Database>::Arguments, value: Value) -> Result<(), BoxDynError>;

    /// `rows_affected()` of the driver's query result (an inherent method in sqlx).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// The id the database generated for the last row a statement inserted, where the
    /// driver reports one (MySQL's `LAST_INSERT_ID()`); `None` elsewhere (those dialects
    /// return the row with `RETURNING`).
    fn last_insert_id(_result: &Self::QueryResult) -> Option<i64> {
        None
    }

    /// The driver handle behind a store, for the escape hatch.
    fn raw(pool: &Pool<Self>) -> RawStore<'_>;

    /// Column `i` as a value of `kind` when it is a column type only this driver has (MySQL's
    /// unsigned integers); `None` when the driver has nothing to add to [`ReadValue`].
    fn read_other(
        _row: &Self::Row,
        _i: usize,
        _kind: ValueKind,
    ) -> Option<Result<Value, BoxDynError>> {
        None
    }

    /// Runs one statement: [`run`] for this driver.
    fn run<'a>(
        on: On<'a, Self>,
        sql: SqlStr,
        values: Vec<Value>,
        want: Want,
    ) -> BoxFuture<'a, Result<Got, sqlx::Error>>;
}

/// Binds a value that every driver binds the same way: the non-null primitives, an ObjectId
/// as its hex digits, a list as JSON text. `None` hands the value back (a typed null, or a
/// list a driver stores as a JSON type) for the driver to bind itself.
pub(crate) fn bind_plain<DB>(
    args: &mut DB::Arguments,
    value: Value,
) -> Result<Option<Value>, BoxDynError>
where
    DB: Database,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    match value {
        Value::Bool(b) => args.add(b)?,
        Value::Int(i) => args.add(i)?,
        Value::Float(f) => args.add(f)?,
        Value::Text(s) => args.add(s)?,
        Value::Bytes(b) => args.add(b)?,
        Value::ObjectId(bytes) => args.add(crate::value::hex(&bytes))?,
        list @ Value::List(_) => args.add(super::json::list_json(&list))?,
        other @ Value::Null(_) => return Ok(Some(other)),
    }
    Ok(None)
}

/// Implements [`Driver::run`] as [`run`] for the driver the `impl` is for.
macro_rules! generic_run {
    () => {
        fn run<'a>(
            on: $crate::store::sql::driver::On<'a, Self>,
            sql: sqlx::SqlStr,
            values: Vec<$crate::value::Value>,
            want: $crate::store::sql::driver::Want,
        ) -> $crate::store::backend::BoxFuture<
            'a,
            Result<$crate::store::sql::driver::Got, sqlx::Error>,
        > {
            Box::pin($crate::store::sql::driver::run::<Self>(
                on, sql, values, want,
            ))
        }
    };
}
pub(crate) use generic_run;

/// Runs one statement with its values bound, on the pool or a connection.
pub(crate) async fn run<DB>(
    on: On<'_, DB>,
    sql: SqlStr,
    values: Vec<Value>,
    want: Want,
) -> Result<Got, sqlx::Error>
where
    DB: Driver + ReadValue,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let mut args = DB::Arguments::default();
    for value in values {
        DB::bind(&mut args, value).map_err(sqlx::Error::Encode)?;
    }
    let query = sqlx::query_with::<DB, _>(sql, args);
    match want {
        Want::Affected => {
            let done = match on {
                On::Pool(pool) => query.execute(pool).await?,
                On::Conn(conn) => query.execute(conn).await?,
            };
            Ok(Got::Affected(DB::rows_affected(&done)))
        }
        Want::InsertedId => {
            let done = match on {
                On::Pool(pool) => query.execute(pool).await?,
                On::Conn(conn) => query.execute(conn).await?,
            };
            Ok(Got::InsertedId(DB::last_insert_id(&done)))
        }
        Want::Rows(kinds) => {
            let rows = match on {
                On::Pool(pool) => query.fetch_all(pool).await?,
                On::Conn(conn) => query.fetch_all(conn).await?,
            };
            let decoded = rows
                .iter()
                .map(|row| {
                    (0..kinds.len())
                        .map(|i| DB::read_value(row, i, kinds[i]))
                        .collect::<Result<Row, _>>()
                })
                .collect::<Result<_, _>>()?;
            Ok(Got::Rows(decoded))
        }
    }
}

/// Reads one column of a row as a [`Value`]: implemented for every driver that decodes the
/// primitive types (the `sqlx` bounds live on the one blanket impl).
pub(crate) trait ReadValue: Database {
    /// Column `i` as a value of `kind`, accepting every column type the driver maps to it
    /// (`INT2`, `INT4` and `INT8` are all [`ValueKind::Int`]; a list is JSON or JSON text).
    fn read_value(row: &Self::Row, i: usize, kind: ValueKind) -> Result<Value, sqlx::Error>;
}

fn accepts<DB: Database, T: Type<DB>>(ty: &DB::TypeInfo) -> bool {
    T::compatible(ty)
}

impl<DB> ReadValue for DB
where
    DB: Driver,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> i16: Decode<'r, DB> + Type<DB>,
    for<'r> f64: Decode<'r, DB> + Type<DB>,
    for<'r> f32: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> sqlx::types::JsonValue: Decode<'r, DB> + Type<DB>,
{
    fn read_value(row: &DB::Row, i: usize, kind: ValueKind) -> Result<Value, sqlx::Error> {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Value::Null(kind));
        }
        let ty = raw.type_info().into_owned();
        let is = |accepts: fn(&DB::TypeInfo) -> bool| accepts(&ty);
        let int = is(accepts::<DB, i64>) || is(accepts::<DB, i32>) || is(accepts::<DB, i16>);
        let decoded: Result<Value, BoxDynError> = match kind {
            ValueKind::Bool if is(accepts::<DB, bool>) => bool::decode(raw).map(Value::Bool),
            ValueKind::Float if is(accepts::<DB, f64>) => f64::decode(raw).map(Value::Float),
            ValueKind::Float if is(accepts::<DB, f32>) => {
                f32::decode(raw).map(|f| Value::Float(f.into()))
            }
            // An integer column read for a bool or float field: `FromValue` converts it.
            ValueKind::Int | ValueKind::Bool | ValueKind::Float if int => {
                if is(accepts::<DB, i64>) {
                    i64::decode(raw).map(Value::Int)
                } else if is(accepts::<DB, i32>) {
                    i32::decode(raw).map(|i| Value::Int(i.into()))
                } else {
                    i16::decode(raw).map(|i| Value::Int(i.into()))
                }
            }
            ValueKind::Text if is(accepts::<DB, String>) => String::decode(raw).map(Value::Text),
            ValueKind::Bytes if is(accepts::<DB, Vec<u8>>) => {
                Vec::<u8>::decode(raw).map(Value::Bytes)
            }
            // SQL stores keep an ObjectId as its 24 hex digits.
            ValueKind::ObjectId if is(accepts::<DB, String>) => {
                String::decode(raw).and_then(|hex| {
                    super::json::parse_hex(&hex)
                        .map(Value::ObjectId)
                        .ok_or_else(|| format!("`{hex}` is not an ObjectId's 24 hex digits").into())
                })
            }
            // Lists are JSON: a JSON column, or JSON text.
            ValueKind::List if is(accepts::<DB, sqlx::types::JsonValue>) => {
                sqlx::types::JsonValue::decode(raw).and_then(|json| Ok(super::json::list(json)?))
            }
            ValueKind::List if is(accepts::<DB, String>) => String::decode(raw).and_then(|text| {
                let json = serde_json::from_str(&text)?;
                Ok(super::json::list(json)?)
            }),
            _ => DB::read_other(row, i, kind).unwrap_or_else(|| {
                Err(format!("a {} column cannot be read as {kind:?}", ty.name()).into())
            }),
        };
        decoded.map_err(|source| sqlx::Error::ColumnDecode {
            index: row
                .try_column(i)
                .map_or_else(|_| i.to_string(), |c| format!("`{}`", c.name())),
            source,
        })
    }
}
