//! Sorting PostgreSQL failures into the two kinds callers act on differently: the
//! database could not be reached ([`StoreError::Unavailable`], retry later) and
//! everything else ([`StoreError::Internal`], a bug or a rejected row).

use anyhow::anyhow;
use deadpool_postgres::PoolError;
use tokio_postgres::error::{DbError, SqlState};

use crate::model::StoreError;

/// Wraps `error` in [`StoreError::Unavailable`] when any cause in its chain is a lost
/// or refused connection, and in [`StoreError::Internal`] otherwise, each time with
/// its PostgreSQL errors [`redact`]ed.
pub(super) fn classify(error: anyhow::Error) -> StoreError {
    if is_unavailable(&error) { StoreError::Unavailable(redact(error)) } else { StoreError::Internal(redact(error)) }
}

/// Rebuilds `error` with each PostgreSQL error cut to its severity, message and
/// SQLSTATE. The DETAIL of a constraint violation repeats the failing row ("Failing
/// row contains ..."), answers included, and callers log error chains, which must never
/// contain answers. The messages themselves name tables, columns and constraints only.
pub(super) fn redact(error: anyhow::Error) -> anyhow::Error {
    if !error.chain().any(|cause| cause.is::<DbError>()) {
        return error;
    }
    let mut messages: Vec<String> = error
        .chain()
        .filter_map(|cause| {
            if let Some(database_error) = cause.downcast_ref::<DbError>() {
                let code = database_error.code().code();
                return Some(format!("{}: {} (SQLSTATE {code})", database_error.severity(), database_error.message()));
            }
            // Its text is only "db error", and the DbError after it names the failure.
            let postgres_error = cause.downcast_ref::<tokio_postgres::Error>();
            if postgres_error.is_some_and(|error| error.as_db_error().is_some()) {
                return None;
            }
            Some(cause.to_string())
        })
        .collect();

    let innermost = messages.pop().unwrap_or_default();
    let mut rebuilt = anyhow!(innermost);
    while let Some(message) = messages.pop() {
        rebuilt = rebuilt.context(message);
    }
    rebuilt
}

/// Tells whether `error` means the database could not be reached, as opposed to a
/// statement the database rejected.
///
/// Unavailable: no connection from the pool in time, a new connection that could not
/// be opened, a connection that closed or failed on the socket, and the SQLSTATEs of a server that is shutting down,
/// starting or full. A constraint violation, a trigger's exception or a bad value is
/// not, even when it arrives on a connection that fails later.
pub(super) fn is_unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(pool_error) = cause.downcast_ref::<PoolError>() {
            // The pool returns a backend error only when it failed to open a new
            // connection, whatever the reason: refused, a database that does not
            // allow connections (SQLSTATE 55000), a failed login. Statements run on
            // the connection itself and never come back wrapped in a pool error.
            return matches!(pool_error, PoolError::Timeout(_) | PoolError::Closed | PoolError::Backend(_));
        }
        if let Some(postgres_error) = cause.downcast_ref::<tokio_postgres::Error>() {
            return postgres_error.is_closed() || postgres_error.code().is_some_and(means_unavailable);
        }
        cause.is::<std::io::Error>()
    })
}

/// SQLSTATEs that mean the server cannot serve the connection, so retrying later may
/// succeed: class 08 (connection exception), a statement cancelled by
/// `statement_timeout` or `lock_timeout` (57014, for example behind another session's
/// lock), the shutdown and startup states of class 57, and too many connections.
fn means_unavailable(state: &SqlState) -> bool {
    state.code().starts_with("08")
        || *state == SqlState::QUERY_CANCELED
        || *state == SqlState::ADMIN_SHUTDOWN
        || *state == SqlState::CRASH_SHUTDOWN
        || *state == SqlState::CANNOT_CONNECT_NOW
        || *state == SqlState::TOO_MANY_CONNECTIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_is_unavailable() {
        let error = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
            .context("failed to commit batch");

        assert!(is_unavailable(&error));
        assert!(matches!(classify(error), StoreError::Unavailable(_)));
    }

    #[test]
    fn pool_timeout_is_unavailable() {
        let error = anyhow::Error::new(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait))
            .context("failed to get a database connection");

        assert!(is_unavailable(&error));
    }

    #[test]
    fn other_error_is_internal() {
        let error = anyhow::anyhow!("scores of submission s-1 is not a JSON array");

        assert!(!is_unavailable(&error));
        assert!(matches!(classify(error), StoreError::Internal(_)));
    }

    #[test]
    fn connection_states_are_unavailable() {
        assert!(means_unavailable(&SqlState::CONNECTION_FAILURE));
        assert!(means_unavailable(&SqlState::ADMIN_SHUTDOWN));
        assert!(!means_unavailable(&SqlState::CHECK_VIOLATION));
        assert!(!means_unavailable(&SqlState::RAISE_EXCEPTION));
    }
}
