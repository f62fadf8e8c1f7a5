//! The HNSW file format, version 1 (spec: docs/FORMAT.md, "HNSW index file").
//!
//! Framed by `quarry_store::framing` (256-byte checksummed header, checksummed sections): the
//! header fields hold the parameters and entry point; the five sections are vectors (at 4096),
//! levels, level-0 links, upper-level links and the deleted bitmap. Opening checks the header and
//! the graph sections eagerly and memory-maps the vectors copy-on-write, so a query runs before
//! the vectors have been read; [`HnswIndex::verify`] checks the vectors' checksum too.

use super::builder::{Entry, HnswIndex};
use super::graph::Graph;
use super::params::HnswParams;
use crate::flat::{
    bitmap_bytes, bitmap_filter, metric_code, metric_from_code, storage_code, storage_from_code, FlatIndex,
};
use quarry_core::{Error, Result, VectorIndex};
use quarry_store::framing::FIELDS_LEN;
use quarry_store::{le, write_framed, Framed};
use std::path::Path;
use std::sync::Mutex;

/// First bytes of every HNSW file.
pub const MAGIC: [u8; 8] = *b"QRYHNSW\0";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;
const NAMES: [&str; 5] = ["vectors", "levels", "level-0 links", "upper links", "deleted bitmap"];

impl HnswIndex {
    /// Writes the index to `path` crash-safely (a reader sees the old file or the whole new one).
    pub fn save(&self, path: &Path) -> Result<()> {
        if cfg!(target_endian = "big") {
            return Err(Error::InvalidArgument(
                "index files are written on little-endian machines only".into(),
            ));
        }
        let n = self.graph.len();
        let levels = &self.graph.levels;
        let mut level0 = Vec::with_capacity(n * (self.graph.m0 + 1) * 4);
        let mut upper = Vec::new();
        for id in 0..n as u32 {
            self.graph.raw_slot(id, 0, |w| level0.extend_from_slice(&w.to_le_bytes()));
            for l in 1..=levels[id as usize] as usize {
                self.graph.raw_slot(id, l, |w| upper.extend_from_slice(&w.to_le_bytes()));
            }
        }
        let deleted = bitmap_bytes(&self.deleted, n);
        let entry = self.entry();
        let mut f = [0u8; FIELDS_LEN];
        f[0] = metric_code(self.flat.metric());
        f[1] = storage_code(self.flat.storage());
        f[4..8].copy_from_slice(&(self.flat.dim() as u32).to_le_bytes());
        f[8..12].copy_from_slice(&(self.graph.m as u32).to_le_bytes());
        f[12..16].copy_from_slice(&(self.params.ef_construction as u32).to_le_bytes());
        f[16..24].copy_from_slice(&(n as u64).to_le_bytes());
        f[24..32].copy_from_slice(&self.params.seed.to_le_bytes());
        f[32..36].copy_from_slice(&entry.map_or(u32::MAX, |e| e.id).to_le_bytes());
        f[36..40].copy_from_slice(&entry.map_or(0, |e| e.level as u32).to_le_bytes());
        let sections: [&[u8]; 5] = [self.flat.raw_bytes(), levels, &level0, &upper, &deleted];
        write_framed(path, MAGIC, VERSION, &f, &sections, 4096)
    }

    /// Opens an index saved by [`HnswIndex::save`]: header and graph are read and checked, the
    /// vectors are memory-mapped (copy-on-write; the file is never modified).
    // Build-only parameters that the file does not store keep their defaults (`..default()`).
    /// Searches walk on 8-bit codes trained and encoded here (they are not stored: see
    /// `walk_codes.rs`), which reads every row once.
    pub fn open(path: &Path) -> Result<HnswIndex> {
        let mut index = HnswIndex::open_bare(path)?;
        index.params.walk_codes = true;
        index.refresh_walk_codes()?;
        Ok(index)
    }

    /// [`HnswIndex::open`] with the classic walk on the rows (`walk_codes` off): no row is read
    /// at open, so a cold open costs only the graph and a first query pages in only the rows it
    /// touches. SPANN's head graph (which has its own head codes) opens this way.
    pub fn open_walking_rows(path: &Path) -> Result<HnswIndex> {
        HnswIndex::open_bare(path)
    }

    #[allow(clippy::needless_update)]
    pub(crate) fn open_bare(path: &Path) -> Result<HnswIndex> {
        let mut file = Framed::open(path, MAGIC, VERSION, "HNSW index")?;
        let bad = |loc: &str, msg: String| Error::corrupt(path, loc, msg);
        let f = file.fields;
        let field = |at: usize| le::u32_at(&f, at).unwrap_or(0);
        let metric =
            metric_from_code(f[0]).ok_or_else(|| bad("header", format!("unknown metric code {}", f[0])))?;
        let storage =
            storage_from_code(f[1]).ok_or_else(|| bad("header", format!("unknown storage code {}", f[1])))?;
        let (dim, m, efc) = (field(4) as usize, field(8) as usize, field(12) as usize);
        let n64 = le::u64_at(&f, 16).unwrap_or(0);
        let seed = le::u64_at(&f, 24).unwrap_or(0);
        let (entry_id, entry_level) = (field(32), field(36) as usize);
        if dim == 0 || !(2..=256).contains(&m) || n64 > u32::MAX as u64 || file.sections.len() != NAMES.len()
        {
            return Err(bad("header", format!("inconsistent parameters: dim {dim}, M {m}, n {n64}")));
        }
        let n = n64 as usize;
        let sections = file.sections.clone();
        let expect = |i: usize, len: u64| -> Result<()> {
            match sections[i].len == len {
                true => Ok(()),
                false => Err(bad(NAMES[i], format!("holds {} bytes, {len} expected", sections[i].len))),
            }
        };
        expect(0, n64 * dim as u64 * storage.bytes_per_component() as u64)?;
        expect(1, n64)?;
        expect(2, n64 * (2 * m as u64 + 1) * 4)?;
        expect(4, n64.div_ceil(64) * 8)?;
        let levels = file.read(1, NAMES[1])?;
        if levels.iter().any(|&l| l > 32) {
            return Err(bad(NAMES[1], "a level above 32".into()));
        }
        expect(3, levels.iter().map(|&l| l as u64).sum::<u64>() * (m as u64 + 1) * 4)?;
        let words = |b: Vec<u8>| {
            b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>()
        };
        let level0 = words(file.read(2, NAMES[2])?);
        let upper = words(file.read(3, NAMES[3])?);
        let deleted = bitmap_filter(&file.read(4, NAMES[4])?, n);
        let graph = Graph::from_raw(levels, m, &level0, &upper).map_err(|msg| bad("links", msg))?;
        let entry = match n {
            0 => None,
            _ if (entry_id as usize) < n && graph.levels[entry_id as usize] as usize == entry_level => {
                Some(Entry { id: entry_id, level: entry_level })
            }
            _ => {
                return Err(bad(
                    "header",
                    format!("entry point {entry_id} at level {entry_level} is not a node of that level"),
                ))
            }
        };
        let map = file.map(0, NAMES[0])?;
        // A graph walk reads scattered rows: turn off fault read-ahead so a query pages in only
        // the rows it touches (a hint; failure is harmless). Measured on the dev set, a cold first
        // query then reads 2.6% of the file instead of 29% (docs/benchmarks/hnsw-open.md).
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        let flat = FlatIndex::from_mapped(map, n, dim, metric, storage).map_err(|msg| bad(NAMES[0], msg))?;
        Ok(HnswIndex {
            flat,
            graph,
            entry: Mutex::new(entry),
            deleted,
            params: HnswParams {
                m,
                ef_construction: efc,
                seed,
                storage,
                walk_codes: false,
                ..HnswParams::default()
            },
            walk_codes: None,
        })
    }

    /// Opens a saved index and copies its vectors into memory (huge-page backed), checking the
    /// vector checksum: slower to open than [`HnswIndex::open`] but searches avoid page faults
    /// and the TLB misses of 4 KiB file pages.
    pub fn load(path: &Path) -> Result<HnswIndex> {
        HnswIndex::verify(path)?;
        let mut index = HnswIndex::open_bare(path)?;
        index.flat.move_to_heap();
        index.params.walk_codes = true;
        index.refresh_walk_codes()?;
        Ok(index)
    }

    /// Checks every section's checksum of a saved index, vectors included (reads the whole file).
    pub fn verify(path: &Path) -> Result<()> {
        HnswIndex::open_bare(path)?;
        Framed::open(path, MAGIC, VERSION, "HNSW index")?.verify(0, NAMES[0])
    }
}
