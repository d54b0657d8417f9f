//! What an [`Error`] means to an HTTP client, defined once: a status code and a message that
//! is safe to show (no SQL, no driver text, no server address). With the `axum` feature,
//! `Error` is an `axum` response, so a handler can return `Result<Json<T>, Error>`.
//!
//! | error | status |
//! |---|---|
//! | `NotFound` | 404 Not Found |
//! | `Constraint { kind: Unique }`, `Conflict`, `VersionConflict` | 409 Conflict |
//! | `Constraint { .. }` (any other kind), `OutOfRange` | 422 Unprocessable Content |
//! | `InvalidCursor` (a page cursor that is not one, or is another list's) | 400 Bad Request |
//! | `BroadcastUnreachable` (a write while Redis is unreachable) | 503 Service Unavailable |
//! | anything else (database down, decode, schema, ...) | 500 Internal Server Error |

use crate::error::{ConstraintKind, Error};

impl Error {
    /// The HTTP status code this error maps to (see the table in the module docs).
    pub fn http_status(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::Constraint {
                kind: ConstraintKind::Unique,
                ..
            }
            | Error::Conflict { .. }
            | Error::VersionConflict { .. } => 409,
            Error::Constraint { .. } | Error::OutOfRange { .. } => 422,
            Error::InvalidCursor { .. } => 400,
            #[cfg(feature = "redis")]
            Error::BroadcastUnreachable { .. } => 503,
            _ => 500,
        }
    }

    /// A message for the client: this error's own text where it names only what the client
    /// sent (an entity, an id, versions), a fixed text where the error carries the database's
    /// words, and "internal error" for every 5xx. Log the error itself (its `Display`) on the
    /// server.
    pub fn public_message(&self) -> String {
        match self {
            Error::NotFound { .. }
            | Error::VersionConflict { .. }
            | Error::OutOfRange { .. }
            | Error::InvalidCursor { .. } => self.to_string(),
            Error::Constraint { entity, kind, .. } => format!("{kind} on {entity}"),
            Error::Conflict { .. } => {
                "the request conflicted with a concurrent change; send it again".to_string()
            }
            #[cfg(feature = "redis")]
            Error::BroadcastUnreachable { .. } => {
                "writes are unavailable for a moment; nothing was written, send it again shortly"
                    .to_string()
            }
            _ => "internal error".to_string(),
        }
    }
}

/// The full text of an error answered with a 5xx, in the response's extensions (never in its
/// body), for a logging middleware: `response.extensions().get::<ErrorDetail>()`.
#[cfg(feature = "axum")]
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub String);

/// `{"error": "<public message>", "status": <code>}` with the status of
/// [`Error::http_status`]; a 5xx also carries an [`ErrorDetail`] extension.
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Error {
    fn into_response(self) -> axum_core::response::Response {
        let status = http::StatusCode::from_u16(self.http_status())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.public_message(), "status": status.as_u16() });
        let mut response = (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if status.is_server_error() {
            response
                .extensions_mut()
                .insert(ErrorDetail(self.to_string()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        let not_found = Error::NotFound {
            entity: "Scene",
            id: "9".into(),
        };
        assert_eq!(not_found.http_status(), 404);
        assert_eq!(not_found.public_message(), "Scene with id 9 does not exist");
        let unique = Error::Constraint {
            entity: "Character",
            kind: ConstraintKind::Unique,
            message: "duplicate key value violates unique constraint \"characters_name_key\""
                .into(),
        };
        assert_eq!(unique.http_status(), 409);
        assert_eq!(
            unique.public_message(),
            "unique constraint violation on Character"
        );
        let check = Error::Constraint {
            entity: "Scene",
            kind: ConstraintKind::Check,
            message: "new row violates check constraint \"scenes_title_check\"".into(),
        };
        assert_eq!(check.http_status(), 422);
        assert!(!check.public_message().contains("scenes_title_check"));
        assert_eq!(Error::TransactionAborted.http_status(), 500);
        assert_eq!(Error::TransactionAborted.public_message(), "internal error");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_write_refused_for_want_of_redis_is_a_503_to_retry() {
        let refused = Error::BroadcastUnreachable {
            silent_for: std::time::Duration::from_secs(2),
        };
        assert_eq!(refused.http_status(), 503);
        assert!(refused.public_message().contains("send it again"));
        assert!(refused.to_string().contains("nothing was written"));
    }
}
