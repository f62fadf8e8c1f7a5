//! The HNSW file format, version 1 (spec: docs/FORMAT.md, "HNSW index file").
//!
//! A 256-byte header (magic, version, parameters, a table of five sections with offsets, lengths
//! and CRC32C checksums, and the header's own CRC32C), then the sections at 64-byte aligned
//! offsets: vectors (at 4096), levels, level-0 links, upper-level links, deleted bitmap. Saving
//! is crash-safe (temporary file, fsync, rename). Opening checks the header and the graph sections
//! eagerly and memory-maps the vectors copy-on-write, so a query can run before the vectors have
//! been read; [`HnswIndex::verify`] checks the vectors' checksum too.

use super::builder::{Entry, HnswIndex};
use super::graph::Graph;
use super::params::HnswParams;
use crate::flat::{FlatIndex, Storage};
use quarry_core::{Error, IdFilter, Metric, Result, VectorIndex};
use quarry_store::{checksum, le, AtomicFile};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;

/// First bytes of every HNSW file.
pub const MAGIC: [u8; 8] = *b"QRYHNSW\0";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 256;
const VECTORS_AT: u64 = 4096;
const SECTIONS: usize = 5;
const NAMES: [&str; SECTIONS] = ["vectors", "levels", "level-0 links", "upper links", "deleted bitmap"];

#[derive(Debug, Clone, Copy, Default)]
struct Section {
    offset: u64,
    len: u64,
    crc: u32,
}

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::InnerProduct => 0,
        Metric::Cosine => 1,
        Metric::L2 => 2,
    }
}

fn bad(path: &Path, location: &str, message: impl Into<String>) -> Error {
    Error::malformed(path, location, message)
}

impl HnswIndex {
    /// Writes the index to `path` crash-safely (a reader sees the old file or the whole new one).
    pub fn save(&self, path: &Path) -> Result<()> {
        if cfg!(target_endian = "big") {
            return Err(Error::InvalidArgument(
                "saving HNSW files is supported on little-endian machines only".into(),
            ));
        }
        let n = self.graph.len();
        let (m, m0) = (self.graph.m, self.graph.m0);
        let vectors: &[u8] = self.flat.raw_bytes();
        let levels: Vec<u8> = self.graph.levels.clone();
        let mut level0 = Vec::with_capacity(n * (m0 + 1) * 4);
        let mut upper = Vec::new();
        for id in 0..n as u32 {
            self.graph.raw_slot(id, 0, |w| level0.extend_from_slice(&w.to_le_bytes()));
            for l in 1..=levels[id as usize] as usize {
                self.graph.raw_slot(id, l, |w| upper.extend_from_slice(&w.to_le_bytes()));
            }
        }
        let mut deleted = vec![0u8; n.div_ceil(64) * 8];
        for id in self.deleted.iter().filter(|&id| (id as usize) < n) {
            deleted[id as usize / 8] |= 1 << (id % 8);
        }
        let bodies: [&[u8]; SECTIONS] = [vectors, &levels, &level0, &upper, &deleted];
        let mut table = [Section::default(); SECTIONS];
        let mut at = VECTORS_AT;
        for (s, body) in table.iter_mut().zip(bodies) {
            *s = Section { offset: at, len: body.len() as u64, crc: checksum(body) };
            at = (at + body.len() as u64).next_multiple_of(64);
        }
        let entry = self.entry();
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        h.extend_from_slice(&[
            metric_code(self.flat.metric()),
            (self.flat.storage() == Storage::F16) as u8,
            0,
            0,
        ]);
        for v in [self.flat.dim() as u32, m as u32, self.params.ef_construction as u32] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&(n as u64).to_le_bytes());
        h.extend_from_slice(&self.params.seed.to_le_bytes());
        h.extend_from_slice(&entry.map_or(u32::MAX, |e| e.id).to_le_bytes());
        h.extend_from_slice(&entry.map_or(0, |e| e.level as u32).to_le_bytes());
        h.extend_from_slice(&(SECTIONS as u32).to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        for (kind, s) in table.iter().enumerate() {
            h.extend_from_slice(&(kind as u32 + 1).to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
            h.extend_from_slice(&s.offset.to_le_bytes());
            h.extend_from_slice(&s.len.to_le_bytes());
            h.extend_from_slice(&s.crc.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
        }
        h.resize(HEADER_LEN - 4, 0);
        let crc = checksum(&h);
        h.extend_from_slice(&crc.to_le_bytes());

        let mut out = AtomicFile::create(path)?;
        out.write_bytes(&h)?;
        let mut written = HEADER_LEN as u64;
        for (s, body) in table.iter().zip(bodies) {
            out.write_bytes(&vec![0u8; (s.offset - written) as usize])?;
            out.write_bytes(body)?;
            written = s.offset + s.len;
        }
        out.commit()
    }

    /// Opens an index saved by [`HnswIndex::save`]: header and graph are read and checked, the
    /// vectors are memory-mapped (copy-on-write; the file is never modified).
    pub fn open(path: &Path) -> Result<HnswIndex> {
        let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io("reading", path, e))?.len();
        let mut h = vec![0u8; HEADER_LEN];
        file.read_exact(&mut h)
            .map_err(|_| bad(path, "header", "file is shorter than the 256-byte header"))?;
        if h[..8] != MAGIC {
            return Err(bad(path, "byte 0", "not a Quarry HNSW index file (bad magic number)"));
        }
        let field = |at: usize| le::u32_at(&h, at).unwrap_or(0);
        let version = field(8);
        if version != VERSION {
            return Err(bad(
                path,
                "byte 8",
                format!("unsupported format version {version} (this build reads {VERSION})"),
            ));
        }
        if field(252) != checksum(&h[..252]) {
            return Err(bad(path, "header", "header checksum mismatch: the file is corrupted"));
        }
        let metric = match h[16] {
            0 => Metric::InnerProduct,
            1 => Metric::Cosine,
            2 => Metric::L2,
            x => return Err(bad(path, "byte 16", format!("unknown metric code {x}"))),
        };
        let storage = match h[17] {
            0 => Storage::F32,
            1 => Storage::F16,
            x => return Err(bad(path, "byte 17", format!("unknown storage code {x}"))),
        };
        let (dim, m, efc) = (field(20) as usize, field(24) as usize, field(28) as usize);
        let n64 = le::u64_at(&h, 32).unwrap_or(0);
        let seed = le::u64_at(&h, 40).unwrap_or(0);
        let (entry_id, entry_level) = (field(48), field(52) as usize);
        if dim == 0 || !(2..=256).contains(&m) || n64 > u32::MAX as u64 || field(56) as usize != SECTIONS {
            return Err(bad(path, "header", format!("inconsistent parameters: dim {dim}, M {m}, n {n64}")));
        }
        let n = n64 as usize;
        let mut table = [Section::default(); SECTIONS];
        for (i, s) in table.iter_mut().enumerate() {
            let at = 64 + i * 32;
            *s = Section {
                offset: le::u64_at(&h, at + 8).unwrap_or(0),
                len: le::u64_at(&h, at + 16).unwrap_or(0),
                crc: field(at + 24),
            };
            if s.offset % 64 != 0 || s.offset.checked_add(s.len).is_none_or(|end| end > file_len) {
                return Err(bad(path, NAMES[i], "section lies outside the file (truncated?)"));
            }
        }
        let elem = storage.bytes_per_component() as u64;
        let expect = |i: usize, len: u64| -> Result<()> {
            if table[i].len != len {
                return Err(bad(path, NAMES[i], format!("holds {} bytes, {len} expected", table[i].len)));
            }
            Ok(())
        };
        expect(0, n64 * dim as u64 * elem)?;
        expect(1, n64)?;
        expect(2, n64 * (2 * m as u64 + 1) * 4)?;
        expect(4, n64.div_ceil(64) * 8)?;
        let mut read = |i: usize| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; table[i].len as usize];
            file.seek(SeekFrom::Start(table[i].offset)).map_err(|e| Error::io("reading", path, e))?;
            file.read_exact(&mut buf).map_err(|e| Error::io("reading", path, e))?;
            if checksum(&buf) != table[i].crc {
                return Err(bad(path, NAMES[i], "checksum mismatch: the file is corrupted"));
            }
            Ok(buf)
        };
        let levels = read(1)?;
        if levels.iter().any(|&l| l > 32) {
            return Err(bad(path, NAMES[1], "a level above 32"));
        }
        expect(3, levels.iter().map(|&l| l as u64).sum::<u64>() * (m as u64 + 1) * 4)?;
        let level0 = read(2)?;
        let upper = read(3)?;
        let deleted_bits = read(4)?;
        let words = |b: &[u8]| {
            b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>()
        };
        let graph = Graph::from_raw(levels, m, &words(&level0), &words(&upper))
            .map_err(|msg| bad(path, "links", msg))?;
        let entry = if n == 0 {
            None
        } else if (entry_id as usize) < n && graph.levels[entry_id as usize] as usize == entry_level {
            Some(Entry { id: entry_id, level: entry_level })
        } else {
            return Err(bad(
                path,
                "header",
                format!("entry point {entry_id} at level {entry_level} is not a node of that level"),
            ));
        };
        let deleted = IdFilter::from_ids(
            (0..n as u32).filter(|&id| deleted_bits[id as usize / 8] >> (id % 8) & 1 == 1),
        );
        // SAFETY: the mapping is private (copy-on-write); the file is opened read-only by us.
        // Another process truncating the file while it is mapped would make reads fault — the
        // usual caveat of memory-mapped indexes, documented in docs/FORMAT.md.
        let map = unsafe {
            memmap2::MmapOptions::new().offset(table[0].offset).len(table[0].len as usize).map_copy(&file)
        }
        .map_err(|e| Error::io("memory-mapping", path, e))?;
        let flat =
            FlatIndex::from_mapped(map, n, dim, metric, storage).map_err(|msg| bad(path, NAMES[0], msg))?;
        Ok(HnswIndex {
            flat,
            graph,
            entry: Mutex::new(entry),
            deleted,
            params: HnswParams { m, ef_construction: efc, seed, storage },
        })
    }

    /// Checks every section's checksum of a saved index, vectors included (reads the whole file).
    pub fn verify(path: &Path) -> Result<()> {
        let index = HnswIndex::open(path)?;
        let h = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        let (offset, len, crc) = (
            le::u64_at(&h, 64 + 8).unwrap_or(0) as usize,
            le::u64_at(&h, 64 + 16).unwrap_or(0) as usize,
            le::u32_at(&h, 64 + 24).unwrap_or(0),
        );
        let body =
            h.get(offset..offset + len).ok_or_else(|| bad(path, NAMES[0], "section outside the file"))?;
        if checksum(body) != crc {
            return Err(bad(path, NAMES[0], "checksum mismatch: the file is corrupted"));
        }
        drop(index);
        Ok(())
    }
}
