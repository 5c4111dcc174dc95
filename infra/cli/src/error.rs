//! The CLI's one error type, and the exit code each error means.

use std::path::PathBuf;

pub const REFUSED: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const NEGATIVE: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach Triggerline at {url} ({reason}). Is it running? Start it with `triggerline serve`, or point --url / TRIGGERLINE_URL at it."
    )]
    Unreachable {
        url: String,
        /// The innermost cause (`Connection refused (os error 111)`), which says more than
        /// reqwest's own "error sending request".
        reason: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the API token was refused ({message}). Set TRIGGERLINE_API_TOKEN (or --api-token) to the token the server accepts: it prints a generated one at start."
    )]
    Unauthorized { message: String },
    #[error("{method} {path} was refused with {status}: {message}")]
    Refused {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{what} `{id}` does not exist{hint}")]
    NotFound {
        what: &'static str,
        id: String,
        hint: &'static str,
    },
    #[error("unexpected answer from {path}: {reason}")]
    BadResponse { path: String, reason: String },
    #[error("{field}: {reason}")]
    Usage { field: String, reason: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn usage(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Usage {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The process exit code this error ends with (docs/cli.md lists them).
    pub fn exit_code(&self) -> u8 {
        // Every variant is listed, so that a new one has to choose its code.
        match self {
            Error::Unreachable { .. } => UNREACHABLE,
            Error::Unauthorized { .. }
            | Error::Refused { .. }
            | Error::NotFound { .. }
            | Error::BadResponse { .. } => REFUSED,
            Error::Usage { .. } | Error::Read { .. } => USAGE,
            Error::Io { .. } => REFUSED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
