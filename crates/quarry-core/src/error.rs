//! The error type shared by the core crates: every variant names what was wrong.

use std::path::PathBuf;

/// Result alias used across Quarry's library crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong below the CLI/server layer. Messages name the problem precisely.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vector's length differs from the dimension the index or file expects.
    #[error("wrong dimension: expected {expected}, got {got}{}", context_suffix(.context))]
    DimensionMismatch {
        /// Dimension required.
        expected: usize,
        /// Dimension supplied.
        got: usize,
        /// Where it happened (e.g. "query 17").
        context: String,
    },
    /// A NaN or infinite component was supplied.
    #[error("non-finite value {value} at component {component} of {what}")]
    NonFinite {
        /// Which vector (e.g. "base vector 42").
        what: String,
        /// Component index.
        component: usize,
        /// The offending value, printed.
        value: f32,
    },
    /// A zero vector cannot be normalised for cosine similarity.
    #[error("{what} is a zero vector, which has no direction under the cosine metric")]
    ZeroVector {
        /// Which vector.
        what: String,
    },
    /// A named thing (a collection, a vector field, a model) does not exist; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// An argument is out of its valid range or inconsistent with another.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An input file could not be parsed; names the file, the location and what is wrong.
    /// (Damage to Quarry's own stored files is [`Error::Corrupt`].)
    #[error("malformed file {path}: {location}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Record number, line or byte offset.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// Stored data failed validation (a checksum, a structure, or fields that do not match the
    /// schema): the file is damaged or was written by something else. Names the file and where.
    #[error("corrupt file {path}: {location}: {message}")]
    Corrupt {
        /// The file or folder.
        path: PathBuf,
        /// Record number, section or byte offset.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A log refuses writes after a write or fsync it could not undo; reopening the database
    /// recovers every acknowledged write.
    #[error("{0}")]
    Poisoned(String),
    /// The request conflicts with the current state: the thing already exists, or another
    /// process holds the database folder.
    #[error("{0}")]
    Conflict(String),
    /// An operation did not finish in time. `may_commit` says whether a write it started can
    /// still take effect (then the caller must check before retrying).
    #[error("{what} did not finish within {seconds} s{}", if *.may_commit { "; the write may still be applied: check before retrying" } else { "; nothing was written" })]
    Timeout {
        /// What timed out.
        what: String,
        /// The limit, in seconds.
        seconds: f64,
        /// Whether a write may still be applied after the error.
        may_commit: bool,
    },
    /// An I/O failure on a named file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    }
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// A copy of this error (an I/O source is copied as its kind and message), for telling one
    /// failure to several waiters.
    pub fn replicate(&self) -> Error {
        match self {
            Error::DimensionMismatch { expected, got, context } => {
                Error::DimensionMismatch { expected: *expected, got: *got, context: context.clone() }
            }
            Error::NonFinite { what, component, value } => {
                Error::NonFinite { what: what.clone(), component: *component, value: *value }
            }
            Error::ZeroVector { what } => Error::ZeroVector { what: what.clone() },
            Error::NotFound(m) => Error::NotFound(m.clone()),
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Malformed { path, location, message } => {
                Error::Malformed { path: path.clone(), location: location.clone(), message: message.clone() }
            }
            Error::Corrupt { path, location, message } => {
                Error::Corrupt { path: path.clone(), location: location.clone(), message: message.clone() }
            }
            Error::Poisoned(m) => Error::Poisoned(m.clone()),
            Error::Conflict(m) => Error::Conflict(m.clone()),
            Error::Timeout { what, seconds, may_commit } => {
                Error::Timeout { what: what.clone(), seconds: *seconds, may_commit: *may_commit }
            }
            Error::Io { action, path, source } => Error::Io {
                action,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
        }
    }

    /// Builds an [`Error::Corrupt`] for stored file `path` at `location`.
    pub fn corrupt(
        path: impl Into<PathBuf>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Corrupt { path: path.into(), location: location.into(), message: message.into() }
    }

    /// Builds an [`Error::Malformed`] for `path` at `location`.
    pub fn malformed(
        path: impl Into<PathBuf>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Malformed { path: path.into(), location: location.into(), message: message.into() }
    }
}
