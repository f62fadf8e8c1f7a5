//! Quarry's document layer: what `quarry ingest --files` reads before a text collection
//! embeds anything.
//!
//! * [`read`]: a file (plain text, Markdown, HTML, PDF; [`Format`] by extension) becomes a
//!   [`Document`]: a title and [`Block`]s (paragraphs, headings, code, list items) with the
//!   heading path above them, the byte range they came from and, for PDF, their page.
//! * [`chunk`]: blocks packed into [`Chunk`]s of at most [`ChunkSpec::max_tokens`] tokens of the
//!   collection's model, a heading starting a new chunk, consecutive chunks sharing up to
//!   [`ChunkSpec::overlap`] tokens; a block longer than a chunk is cut at token boundaries.
//! * [`dedup`]: exact duplicates (hash of the normalised text) and near duplicates (64-bit
//!   SimHash fingerprints within a Hamming distance), found through band tables.
//! * [`files`]: the files named by paths, folders (recursively) and glob patterns.
//! * [`hash`]: SHA-256 content hashes.

pub mod chunk;
pub mod dedup;
pub mod document;
pub mod files;
pub mod hash;
mod html;
mod markdown;
#[cfg(feature = "pdf")]
mod pdf;
#[cfg(feature = "pdf")]
pub use pdf::extracting as extracting_pdf;

/// Whether this thread is extracting a PDF's text (never, without the `pdf` feature).
#[cfg(not(feature = "pdf"))]
pub fn extracting_pdf() -> bool {
    false
}
mod plain;

pub use chunk::{chunk, Chunk, ChunkSpec, Tokens};
pub use dedup::{simhash, NearDuplicates};
pub use document::{read, read_bytes, Block, BlockKind, Document, Format};
