//! The flat index file format, version 1 (spec: docs/FORMAT.md, "Flat index file"), and the
//! helpers other index formats share (metric codes, deleted bitmaps).
//!
//! Framed by `quarry_store::framing`; header fields: metric, storage, dim, n; sections: vectors
//! (at 4096, memory-mapped copy-on-write when opened) and the deleted bitmap.

use super::builder::FlatIndex;
use super::params::Storage;
use quarry_core::{Error, IdFilter, Metric, Result};
use quarry_store::framing::FIELDS_LEN;
use quarry_store::{le, write_framed, Framed};
use std::path::Path;

/// First bytes of every flat index file.
pub const MAGIC: [u8; 8] = *b"QRYFLAT\0";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;

/// The on-disk code of a metric.
pub(crate) fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::InnerProduct => 0,
        Metric::Cosine => 1,
        Metric::L2 => 2,
    }
}

/// The metric of an on-disk code.
pub(crate) fn metric_from_code(c: u8) -> Option<Metric> {
    [Metric::InnerProduct, Metric::Cosine, Metric::L2].get(c as usize).copied()
}

/// The on-disk code of a storage type.
pub(crate) fn storage_code(s: Storage) -> u8 {
    (s == Storage::F16) as u8
}

/// The storage type of an on-disk code.
pub(crate) fn storage_from_code(c: u8) -> Option<Storage> {
    [Storage::F32, Storage::F16].get(c as usize).copied()
}

/// `deleted` as ⌈n/64⌉ little-endian u64 words (bit i = id i).
pub(crate) fn bitmap_bytes(deleted: &IdFilter, n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n.div_ceil(64) * 8];
    for id in deleted.iter().filter(|&id| (id as usize) < n) {
        bytes[id as usize / 8] |= 1 << (id % 8);
    }
    bytes
}

/// The ids set in a bitmap written by [`bitmap_bytes`].
pub(crate) fn bitmap_filter(bytes: &[u8], n: usize) -> IdFilter {
    IdFilter::from_ids(
        (0..n as u32).filter(|&id| bytes.get(id as usize / 8).is_some_and(|b| b >> (id % 8) & 1 == 1)),
    )
}

impl FlatIndex {
    /// Writes the index to `path` crash-safely.
    pub fn save(&self, path: &Path) -> Result<()> {
        if cfg!(target_endian = "big") {
            return Err(Error::InvalidArgument(
                "index files are written on little-endian machines only".into(),
            ));
        }
        let mut f = [0u8; FIELDS_LEN];
        f[0] = metric_code(self.metric);
        f[1] = storage_code(self.storage());
        f[4..8].copy_from_slice(&(self.dim as u32).to_le_bytes());
        f[8..16].copy_from_slice(&(self.len as u64).to_le_bytes());
        write_framed(
            path,
            MAGIC,
            VERSION,
            &f,
            &[self.raw_bytes(), &bitmap_bytes(&self.deleted, self.len)],
            4096,
        )
    }

    /// Opens a saved flat index, memory-mapping its vectors (copy-on-write).
    pub fn open(path: &Path) -> Result<FlatIndex> {
        let mut file = Framed::open(path, MAGIC, VERSION, "flat index")?;
        let bad = |loc: &str, msg: String| Error::corrupt(path, loc, msg);
        let f = file.fields;
        let metric =
            metric_from_code(f[0]).ok_or_else(|| bad("header", format!("unknown metric code {}", f[0])))?;
        let storage =
            storage_from_code(f[1]).ok_or_else(|| bad("header", format!("unknown storage code {}", f[1])))?;
        let dim = le::u32_at(&f, 4).unwrap_or(0) as usize;
        let n64 = le::u64_at(&f, 8).unwrap_or(0);
        if dim == 0 || n64 > u32::MAX as u64 || file.sections.len() != 2 {
            return Err(bad("header", format!("inconsistent parameters: dim {dim}, n {n64}")));
        }
        let want = n64 * dim as u64 * storage.bytes_per_component() as u64;
        if file.sections[0].len != want || file.sections[1].len != n64.div_ceil(64) * 8 {
            return Err(bad("header", "section lengths do not match dim and n".into()));
        }
        let n = n64 as usize;
        let deleted = bitmap_filter(&file.read(1, "deleted bitmap")?, n);
        let mut index = FlatIndex::from_mapped(file.map(0, "vectors")?, n, dim, metric, storage)
            .map_err(|m| bad("vectors", m))?;
        index.deleted = deleted;
        Ok(index)
    }

    /// Checks every checksum of a saved flat index (reads the whole file).
    pub fn verify(path: &Path) -> Result<()> {
        let mut file = Framed::open(path, MAGIC, VERSION, "flat index")?;
        file.verify(0, "vectors")?;
        file.verify(1, "deleted bitmap")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flat::FlatParams;
    use quarry_core::{Matrix, SearchParams, VectorIndex};

    #[test]
    fn round_trip_keeps_vectors_deletes_and_answers() {
        let base = Matrix::new((0..600).map(|i| ((i * 37) % 101) as f32 - 50.0).collect(), 6).expect("shape");
        for storage in [Storage::F32, Storage::F16] {
            let mut index = FlatIndex::build(&base, Metric::L2, FlatParams { storage }).expect("valid");
            index.delete(4).expect("in range");
            let path =
                std::env::temp_dir().join(format!("quarry-flat-{}-{storage:?}.qflat", std::process::id()));
            index.save(&path).expect("save");
            let opened = FlatIndex::open(&path).expect("open");
            FlatIndex::verify(&path).expect("intact");
            assert_eq!((opened.len(), opened.dim(), opened.storage()), (99, 6, storage));
            let p = SearchParams::top(5);
            assert_eq!(
                opened.search(base.row(4), &p).expect("ok"),
                index.search(base.row(4), &p).expect("ok")
            );
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[4096] ^= 0x10;
            std::fs::write(&path, bytes).expect("write");
            assert!(FlatIndex::verify(&path).expect_err("damaged").to_string().contains("vectors"));
            let _ = std::fs::remove_file(&path);
        }
    }
}
