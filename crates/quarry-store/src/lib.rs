//! Storage building blocks shared by every on-disk format.
//!
//! * [`atomic`]: crash-safe writes (temporary file, fsync, rename, directory fsync).
//! * [`objects`]: object storage (local folder; S3 and others with the `object-store` feature)
//!   and [`commit`]: manifest versions by put-if-absent, log batches and the writer lease on it;
//!   [`cache`]: a local block cache of immutable objects for query nodes; [`source`]: files
//!   read by positioned reads, from local disk or from object storage by byte range.
//! * [`checksum`]: CRC32C (Castagnoli, hardware-accelerated where available).
//! * [`framing`]: the sectioned, checksummed file layout of every index file.
//! * [`le`]: little-endian field readers that report truncation instead of panicking.
//! * [`wal`]: the write-ahead log (checksummed records, group commit, torn-tail recovery).

pub mod atomic;
pub mod cache;
pub mod commit;
pub mod framing;
pub mod heap;
pub mod le;
pub mod objects;
#[cfg(feature = "object-store")]
mod objects_remote;
pub mod source;
pub mod wal;

pub use atomic::{sync_folder, write_atomic, AtomicFile};
pub use framing::{write_framed, Framed};
pub use heap::release_free_heap;
pub use wal::{Durability, LogStore, Wal};

/// CRC32C of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Continues a CRC32C over more bytes.
pub fn checksum_append(crc: u32, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, bytes)
}
