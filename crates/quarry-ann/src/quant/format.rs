//! Saving and opening quantized indexes (spec: docs/FORMAT.md, "Quantized index folder").
//!
//! A quantized index is a folder: the exact index in its own format (`vectors.qflat` for
//! `flat+…`, `graph.qhnsw` for `hnsw+…`) and the codes in `codes.qcodes`, a framed file
//! (magic `QRYCODES`, version 1) whose two sections are the quantizer's parameters and the code
//! arena. The codes file records the header checksum of the exact index it was written with, so
//! a folder whose two files come from different saves is refused. Each file is written
//! crash-safely (temp file, fsync, rename, directory fsync), the exact index first.

use super::codes::{with_quantizer, AnyQuantizer, Codes};
use super::flat::QuantFlatIndex;
use super::hnsw::QuantHnswIndex;
use super::spec::{QuantParams, QuantSpec};
use crate::flat::FlatIndex;
use crate::hnsw::HnswIndex;
use quarry_core::{Error, Result, VectorIndex};
use quarry_linalg::AlignedVec;
use quarry_quant::Quantizer;
use quarry_store::framing::{header_crc, write_framed, Framed, FIELDS_LEN};
use quarry_store::le;
use std::path::{Path, PathBuf};

/// Magic of a codes file.
pub const CODES_MAGIC: [u8; 8] = *b"QRYCODES";
/// Current codes file version.
pub const CODES_VERSION: u32 = 1;
/// File name of the codes inside a quantized index folder.
pub const CODES_FILE: &str = "codes.qcodes";
/// File name of the exact store of a `flat+…` index.
pub const FLAT_FILE: &str = "vectors.qflat";
/// File name of the graph of an `hnsw+…` index.
pub const HNSW_FILE: &str = "graph.qhnsw";

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the index folder", dir, e))
}

impl Codes {
    /// Writes the codes next to the exact index file `base` (already written).
    fn save(&self, dir: &Path, base: &Path, rows: usize) -> Result<()> {
        let mut f = [0u8; FIELDS_LEN];
        let (family, bits, m) = match self.params.spec {
            QuantSpec::Sq { bits } => (1u8, bits, 0u64),
            QuantSpec::Pq { m, nbits } => (2, nbits, m as u64),
            QuantSpec::RaBitQ { bits } => (3, bits, 0),
        };
        f[0] = family;
        f[1] = bits;
        f[2] = u8::from(self.quant.is_some());
        f[4..8].copy_from_slice(&(self.code_len as u32).to_le_bytes());
        f[8..16].copy_from_slice(&(rows as u64).to_le_bytes());
        f[16..24].copy_from_slice(&m.to_le_bytes());
        f[24..28].copy_from_slice(&(self.params.rerank as u32).to_le_bytes());
        f[28..32].copy_from_slice(&header_crc(base)?.to_le_bytes());
        f[32..40].copy_from_slice(&self.params.seed.to_le_bytes());
        let quant = self.quant.as_ref().map_or_else(Vec::new, |a| with_quantizer!(a, q => q.to_bytes()));
        write_framed(
            &dir.join(CODES_FILE),
            CODES_MAGIC,
            CODES_VERSION,
            &f,
            &[&quant, self.arena.as_slice()],
            256,
        )
    }

    /// Reads the codes of the folder `dir` whose exact index file is `base` with `rows` rows
    /// of dimension `dim`.
    fn open(dir: &Path, base: &Path, rows: usize, dim: usize) -> Result<Codes> {
        let path = dir.join(CODES_FILE);
        let mut file = Framed::open(&path, CODES_MAGIC, CODES_VERSION, "codes")?;
        let bad = |loc: &str, msg: String| Error::corrupt(&path, loc, msg);
        let f = file.fields;
        let code_len = le::u32_at(&f, 4).unwrap_or(0) as usize;
        let n = le::u64_at(&f, 8).unwrap_or(0);
        let m = le::u64_at(&f, 16).unwrap_or(0) as usize;
        let rerank = le::u32_at(&f, 24).unwrap_or(0) as usize;
        let crc = le::u32_at(&f, 28).unwrap_or(0);
        let seed = le::u64_at(&f, 32).unwrap_or(0);
        let spec = match (f[0], f[1]) {
            (1, b @ (4 | 8)) => QuantSpec::Sq { bits: b },
            (2, b @ (4 | 8)) if m > 0 => QuantSpec::Pq { m, nbits: b },
            (3, b @ 1..=8) => QuantSpec::RaBitQ { bits: b },
            (fam, b) => return Err(bad("header", format!("unknown codes family {fam} with {b} bits"))),
        };
        if n != rows as u64 {
            return Err(bad("header", format!("codes for {n} vectors, but the index holds {rows}")));
        }
        if crc != header_crc(base)? {
            return Err(bad(
                "header",
                format!(
                    "written with another version of {} (the two files come from different saves)",
                    base.display()
                ),
            ));
        }
        if file.sections.len() != 2 || file.sections[1].len != (n as u64).saturating_mul(code_len as u64) {
            return Err(bad("header", "section lengths do not match the code length and count".into()));
        }
        let params = QuantParams { spec, rerank, train_size: QuantParams::new(spec).train_size, seed };
        if f[2] == 0 {
            return Ok(Codes { quant: None, code_len: 0, arena: AlignedVec::new(), params, fastscan: None });
        }
        let quant = AnyQuantizer::from_bytes(f[0], &file.read(0, "quantizer")?)
            .map_err(|e| bad("quantizer", e.to_string()))?;
        let (qdim, qlen) = with_quantizer!(&quant, q => (q.dim(), q.code_len()));
        if qdim != dim || qlen != code_len {
            return Err(bad(
                "quantizer",
                format!(
                    "quantizer for dimension {qdim} with {qlen}-byte codes; expected {dim} and {code_len}"
                ),
            ));
        }
        let mut arena = AlignedVec::zeroed(file.section_len(1, "codes")?);
        file.read_into(1, "codes", arena.as_mut_slice())?;
        Codes::assemble(quant, code_len, arena, params).map_err(|e| bad("codes", e.to_string()))
    }

    fn verify(dir: &Path) -> Result<()> {
        let mut file = Framed::open(&dir.join(CODES_FILE), CODES_MAGIC, CODES_VERSION, "codes")?;
        file.verify(0, "quantizer")?;
        file.verify(1, "codes")
    }
}

fn in_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

impl QuantFlatIndex {
    /// Writes the index into folder `dir` (created if needed) crash-safely, file by file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        let base = in_dir(dir, FLAT_FILE);
        self.flat.save(&base)?;
        self.codes.save(dir, &base, self.flat.rows())
    }

    /// Opens a saved index: codes loaded into memory, f32 rows memory-mapped.
    pub fn open(dir: &Path) -> Result<QuantFlatIndex> {
        let base = in_dir(dir, FLAT_FILE);
        let flat = FlatIndex::open(&base)?;
        let codes = Codes::open(dir, &base, flat.rows(), flat.dim())?;
        Ok(QuantFlatIndex { flat, codes })
    }

    /// Checks every checksum of both files.
    pub fn verify(dir: &Path) -> Result<()> {
        FlatIndex::verify(&in_dir(dir, FLAT_FILE))?;
        Codes::verify(dir)
    }
}

impl QuantHnswIndex {
    /// Writes the index into folder `dir` (created if needed) crash-safely, file by file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        let base = in_dir(dir, HNSW_FILE);
        self.hnsw.save(&base)?;
        self.codes.save(dir, &base, self.hnsw.flat.rows())
    }

    /// Opens a saved index: codes loaded into memory, graph and f32 rows memory-mapped.
    pub fn open(dir: &Path) -> Result<QuantHnswIndex> {
        let base = in_dir(dir, HNSW_FILE);
        let hnsw = HnswIndex::open_bare(&base)?;
        let codes = Codes::open(dir, &base, hnsw.flat.rows(), hnsw.flat.dim())?;
        Ok(QuantHnswIndex { hnsw, codes })
    }

    /// Checks every checksum of both files.
    pub fn verify(dir: &Path) -> Result<()> {
        HnswIndex::verify(&in_dir(dir, HNSW_FILE))?;
        Codes::verify(dir)
    }
}
