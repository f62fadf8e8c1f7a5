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
    /// A file could not be parsed; names the file, the location and what is wrong.
    #[error("malformed file {path}: {location}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Record number, line or byte offset.
        location: String,
        /// What is wrong.
        message: String,
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

    /// Builds an [`Error::Malformed`] for `path` at `location`.
    pub fn malformed(
        path: impl Into<PathBuf>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Malformed { path: path.into(), location: location.into(), message: message.into() }
    }
}
