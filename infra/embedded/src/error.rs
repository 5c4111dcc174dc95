//! The adapter's own failures. None of them is the caller's fault, so each reaches the domain as
//! [`triggerline::Error::Unavailable`], keeping this error as its source for the logs.

use std::sync::Arc;

/// Why the embedded database could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),

    #[error("sqlite read pool")]
    Pool(#[from] r2d2::Error),

    #[error("stored {what} is not valid JSON")]
    Corrupt {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot encode {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("stored {what} {value:?} is not an RFC 3339 time")]
    BadTime {
        what: &'static str,
        value: String,
        #[source]
        source: chrono::ParseError,
    },

    #[error("invocation {id} cannot be read back ({reason}); moved to the quarantine table")]
    Unreadable { id: String, reason: String },

    #[error("stored invocation state {0:?} is not a state")]
    BadState(String),

    #[error("{what} {value} does not fit in an SQLite integer")]
    OutOfRange { what: &'static str, value: u64 },

    #[error(
        "the database has schema version {found}, newer than this build knows ({known}); upgrade Triggerline"
    )]
    SchemaTooNew { found: i64, known: usize },

    #[error("the group commit failed; no write of the batch was kept")]
    Batch(#[source] Arc<StoreError>),

    #[error("a transaction control statement failed mid-batch")]
    TransactionLost,

    #[error("a write job panicked")]
    JobPanicked,

    #[error("the writer thread has stopped")]
    WriterGone,

    #[error("the database handle is closed to reads")]
    ReadsClosed(#[from] tokio::sync::AcquireError),

    #[error("cannot start the writer thread")]
    Spawn(#[source] std::io::Error),

    #[error("cannot create the database file {path}")]
    Create {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("a blocking database task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl From<StoreError> for triggerline::Error {
    fn from(e: StoreError) -> Self {
        triggerline::Error::unavailable(e)
    }
}

/// Maps a native SQLite failure into the domain error, for `map_err` in store code.
pub(crate) fn db(e: rusqlite::Error) -> triggerline::Error {
    StoreError::Sqlite(e).into()
}

/// Reads a record's `body` column back into its model.
pub(crate) fn from_body<T: serde::de::DeserializeOwned>(
    what: &'static str,
    body: &str,
) -> Result<T, triggerline::Error> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt { what, source }.into())
}

/// Serializes a model into its `body` column.
pub(crate) fn to_body<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<String, triggerline::Error> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source }.into())
}

/// Converts a count or version into SQLite's signed integer.
pub(crate) fn to_sql_int(what: &'static str, value: u64) -> Result<i64, triggerline::Error> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value }.into())
}

/// Reads a time column written with [`triggerline::time::format_time`].
pub(crate) fn parse_time(
    what: &'static str,
    value: String,
) -> Result<chrono::DateTime<chrono::Utc>, triggerline::Error> {
    match chrono::DateTime::parse_from_rfc3339(&value) {
        Ok(t) => Ok(t.with_timezone(&chrono::Utc)),
        Err(source) => Err(StoreError::BadTime {
            what,
            value,
            source,
        }
        .into()),
    }
}
