//! The billing crate's error; each variant knows its Lago HTTP rendering through `From<Error> for ApiError`.

use schemas::{ApiError, ValidationErrors};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed: {0:?}")]
    Validation(ValidationErrors),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 405: the object's state or settings forbid the action (Lago's `not_allowed` codes).
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ValidationErrors> for Error {
    fn from(e: ValidationErrors) -> Self {
        Error::Validation(e)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Validation(v) => ApiError::Validation(v),
            Error::NotFound(object) => ApiError::NotFound(object),
            Error::Forbidden(code) => ApiError::Forbidden(code),
            Error::NotAllowed(code) => ApiError::NotAllowed(code),
            // The database being down or saturated is not a fault of this request: the client should retry.
            Error::Database(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))) => {
                ApiError::Unavailable(format!("database: {e}"))
            }
            Error::Database(e) => ApiError::internal(format!("database: {e}")),
            Error::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// True when `e` is a unique-constraint violation, i.e. a concurrent insert of the same key won the race.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
