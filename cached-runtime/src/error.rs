//! The one error type of the runtime.
//!
//! Every failure the runtime can report is a variant of [`Error`], so callers can match on what
//! went wrong (a missing row, a constraint, a transaction that can no longer commit) instead of
//! parsing driver messages. A failed write never touches the cache.

use std::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a cached repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An update, delete or atomic operation named a row that does not exist, or `require`
    /// asked for one (HTTP 404).
    #[error("{entity} with id {id} does not exist")]
    NotFound {
        /// The entity's type name.
        entity: &'static str,
        /// The id that was asked for, as printed in its key.
        id: String,
    },

    /// The database refused a write because it would break a constraint. The transaction is
    /// rolled back (or must be) and the cache is unchanged.
    #[error("{kind} on {entity}: {message}")]
    Constraint {
        /// The entity whose write failed.
        entity: &'static str,
        /// Which kind of constraint.
        kind: ConstraintKind,
        /// The database's own message.
        message: String,
    },

    /// The database aborted the transaction to resolve a conflict with a concurrent one (a
    /// deadlock or a serialization failure). Nothing was written and the cache is unchanged;
    /// the whole transaction can be retried.
    #[error("transaction conflict on {entity} (retry the transaction): {message}")]
    Conflict {
        /// The entity whose statement hit the conflict.
        entity: &'static str,
        /// The database's own message.
        message: String,
    },

    /// `update_if_version` found another version of the row than the one the caller read:
    /// someone else changed it since. Nothing was written and the transaction can go on;
    /// read the row again and decide (retry with its version, or report the conflict to the
    /// user). If the cache held the row at another version than the database's, that copy
    /// was dropped (`stale_cache_dropped`), so the read again is the database's.
    #[error(
        "{entity} with id {id} was changed by someone else: expected version {expected}, \
         the database has version {found}; read it again and retry with that version{}",
        if *stale_cache_dropped { " (the cached copy was older and has been dropped)" } else { "" }
    )]
    VersionConflict {
        /// The entity's type name.
        entity: &'static str,
        /// The row's id, as printed in its key.
        id: String,
        /// The version the caller read and passed.
        expected: i64,
        /// The version the database holds.
        found: i64,
        /// Whether this instance's cache held the row at another version than the
        /// database's (a write it had not seen, made outside the cache): that copy, and what
        /// the unseen write may have changed, were dropped, so the next read is the
        /// database's.
        stale_cache_dropped: bool,
    },

    /// A previous statement in this transaction failed; the transaction can only be rolled back.
    #[error(
        "this transaction cannot commit because an earlier statement in it failed; \
         it was rolled back and the cache is unchanged"
    )]
    TransactionAborted,

    /// The database did not give back the rows a write just made (a trigger or a rule
    /// removed or changed them, or a collation matched other rows). The transaction can only
    /// roll back; the cache is unchanged.
    #[error(
        "{entity}: the database returned {found} of the {expected} row(s) just written \
         (a trigger or rule changed them?); the transaction was rolled back"
    )]
    ReadBack {
        /// The entity written.
        entity: &'static str,
        /// How many rows were written.
        expected: usize,
        /// How many the database returned.
        found: usize,
    },

    /// A value passed to an operation cannot be used (`decrement_x(id, i64::MIN)`, whose
    /// negation does not fit an `i64`). Nothing was written.
    #[error("{entity}.{column}: {message}")]
    OutOfRange {
        /// The entity.
        entity: &'static str,
        /// The column.
        column: &'static str,
        /// What is wrong, and what to do instead.
        message: &'static str,
    },

    /// The database's schema does not fit the entities, or does things the cache cannot hear
    /// of ([`crate::Context::check_schema`]); one line per problem, each saying what to do.
    #[error("the database schema does not fit the cached entities:\n  {}", problems.join("\n  "))]
    Schema {
        /// One readable line per mismatch.
        problems: Vec<String>,
    },

    /// A row could not be decoded into the entity (a column is missing or has the wrong type).
    #[error("cannot decode a row of {entity}: {source}")]
    Decode {
        /// The entity being decoded.
        entity: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The operation is not available on this store (a raw SQL write on MongoDB, say).
    #[error("{operation} is not supported by the {store} store: {hint}")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// The store's name.
        store: &'static str,
        /// What to do instead.
        hint: &'static str,
    },

    /// Any other SQL database error (connection lost, syntax, timeouts).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),

    /// Any other MongoDB error (server unreachable, timeouts, bad command).
    #[cfg(feature = "mongo")]
    #[error("MongoDB error: {0}")]
    Mongo(#[source] mongodb::error::Error),

    /// A page cursor from a client that is not one: malformed, cut short, of another format
    /// version, or made for another list (another entity, order or filter). Nothing was read
    /// (HTTP 400).
    #[error("invalid page cursor: {reason}")]
    InvalidCursor {
        /// What is wrong with it.
        reason: String,
    },

    /// The change feed could not do what was asked (`catch_up` timed out: the feed is
    /// disconnected or far behind).
    #[error("change feed: {message}")]
    ChangeFeed {
        /// What happened, and what to look at.
        message: String,
    },

    /// The commit was refused before the database commit: Redis has not taken this
    /// instance's invalidation messages for longer than half its
    /// [`RedisBroadcast::silence`](crate::RedisBroadcast::silence) bound, so the other
    /// instances could not be told of the write in time. Nothing was written; the transaction
    /// can be retried once Redis is back (HTTP 503).
    #[cfg(feature = "redis")]
    #[error("commit refused: Redis has not taken this instance's invalidations for {silent_for:?}, so the other instances could not hear of this write; nothing was written, retry once Redis is reachable")]
    BroadcastUnreachable {
        /// How long since Redis last took one of this instance's messages.
        silent_for: std::time::Duration,
    },

    /// The broadcast's [`Outbox`](crate::Outbox) table could not be made: the database user
    /// may not run DDL. Create the table in a migration (the message gives its columns).
    #[cfg(feature = "redis")]
    #[error("outbox: {message}")]
    Outbox {
        /// What happened, and what to do.
        message: String,
    },

    /// Redis, for the invalidation broadcast, could not be reached or refused a command.
    #[cfg(feature = "redis")]
    #[error("Redis error (invalidation broadcast): {0}; is Redis running at the URL given to `RedisBroadcast::connect`?")]
    Redis(#[source] redis::RedisError),
}

/// The kind of a constraint violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConstraintKind {
    /// A unique or primary-key constraint.
    Unique,
    /// A foreign-key constraint.
    ForeignKey,
    /// A `NOT NULL` constraint.
    NotNull,
    /// A `CHECK` constraint.
    Check,
    /// A value longer than its column allows.
    TooLong,
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConstraintKind::Unique => "unique constraint violation",
            ConstraintKind::ForeignKey => "foreign key violation",
            ConstraintKind::NotNull => "not-null violation",
            ConstraintKind::Check => "check constraint violation",
            ConstraintKind::TooLong => "value too long for its column",
        })
    }
}

/// Whether a driver error is a lock wait that gave up: MySQL/MariaDB 1205, or SQLite's
/// `SQLITE_BUSY` / `SQLITE_LOCKED` (primary codes 5 and 6, with any extended code).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn is_lock_timeout(db: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return mysql.number() == 1205;
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
        return matches!(code & 0xff, 5 | 6);
    }
    let _ = db;
    false
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
impl Error {
    /// Classifies a driver error raised while working on `entity`.
    pub(crate) fn from_sqlx(entity: &'static str, err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match err {
            sqlx::Error::Database(db) => {
                // SQLSTATE classes shared by PostgreSQL and MySQL/MariaDB.
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                // Serialization failures and deadlocks (SQLSTATE, both servers), a lock that
                // could not be taken (PostgreSQL 55P03), a lock wait timeout (MySQL 1205,
                // SQLSTATE HY000), a busy or locked SQLite database (5, 6 and their extended
                // codes): the statement did nothing and the transaction can be retried.
                if matches!(code.as_str(), "40001" | "40P01" | "55P03") || is_lock_timeout(&*db) {
                    return Error::Conflict {
                        entity,
                        message: db.message().to_string(),
                    };
                }
                let kind = match db.kind() {
                    ErrorKind::UniqueViolation => Some(ConstraintKind::Unique),
                    ErrorKind::ForeignKeyViolation => Some(ConstraintKind::ForeignKey),
                    ErrorKind::NotNullViolation => Some(ConstraintKind::NotNull),
                    ErrorKind::CheckViolation => Some(ConstraintKind::Check),
                    _ if code == "22001" => Some(ConstraintKind::TooLong),
                    _ => None,
                };
                match kind {
                    Some(kind) => Error::Constraint {
                        entity,
                        kind,
                        message: db.message().to_string(),
                    },
                    None => Error::Database(sqlx::Error::Database(db)),
                }
            }
            err @ (sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::Decode(_)) => Error::Decode {
                entity,
                source: Box::new(err),
            },
            other => Error::Database(other),
        }
    }
}

impl Error {
    /// Whether retrying the whole transaction may succeed ([`Error::Conflict`]: a deadlock, a
    /// serialization failure, or MongoDB's `TransientTransactionError`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// Whether this is a [`Error::Constraint`] of the given kind.
    pub fn is_constraint(&self, kind: ConstraintKind) -> bool {
        matches!(self, Error::Constraint { kind: k, .. } if *k == kind)
    }
}
