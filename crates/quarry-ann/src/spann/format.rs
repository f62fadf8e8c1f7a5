//! The SPANN index folder (spec: docs/FORMAT.md, "SPANN index folder"): `heads.qhnsw` (the head
//! graph, an HNSW file), `postings.qpost` (the posting lists) and `spann.meta` (magic
//! `QRYSPANN`, version 1: parameters, head row → data id, the deleted bitmap), each written
//! crash-safely; `spann.meta` is written last and records the header checksums of the other two,
//! so a folder mixing files of different builds is refused.

use super::builder::Coded;
use super::builder::SpannIndex;
use super::heads::HeadCodes;
use super::params::SpannParams;
use super::postings::{PostingCache, PostingFile};
use super::rows::RowFile;
use crate::flat::{bitmap_bytes, bitmap_filter, metric_code, metric_from_code, FlatIndex, FlatParams};
use crate::hnsw::{HnswIndex, HnswParams};
use crate::quant::codes::{with_quantizer, AnyQuantizer};
use crate::quant::QuantSpec;
use quarry_core::{Error, IdFilter, Metric, Result, VectorIndex};
use quarry_linalg::AlignedVec;
use quarry_quant::Quantizer;
use quarry_store::framing::{header_crc, write_framed, Framed, FIELDS_LEN};
use quarry_store::le;
use std::path::Path;

/// Magic of `spann.meta`.
pub const MAGIC: [u8; 8] = *b"QRYSPANN";
/// Current version of `spann.meta`.
pub const VERSION: u32 = 1;
/// The head graph inside a SPANN folder.
pub const HEADS_FILE: &str = "heads.qhnsw";
/// The posting lists inside a SPANN folder.
pub const POSTINGS_FILE: &str = "postings.qpost";
/// The parameters, id map and deletes inside a SPANN folder.
pub const META_FILE: &str = "spann.meta";
/// The update log (inserted rows, appended and rewritten lists, deletes) inside a SPANN folder.
pub const DELTA_FILE: &str = "postings.delta";
/// The exact f32 rows (a flat index file) read to re-score coded entries and by updates.
pub const VECTORS_FILE: &str = "vectors.qflat";

/// Parameters stored in the meta file's first section (little-endian).
fn params_bytes(p: &SpannParams) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&p.head_ratio.to_le_bytes());
    b.extend_from_slice(&(p.replicas as u32).to_le_bytes());
    b.extend_from_slice(&p.rng_factor.to_le_bytes());
    b.extend_from_slice(&(p.candidates as u32).to_le_bytes());
    b.extend_from_slice(&p.closure.to_le_bytes());
    b.extend_from_slice(&(p.posting_cap as u64).to_le_bytes());
    b.extend_from_slice(&p.seed.to_le_bytes());
    let (family, bits, m) = match p.codes {
        None => (0u8, 0u8, 0u32),
        Some(QuantSpec::Sq { bits }) => (1, bits, 0),
        Some(QuantSpec::Pq { m, nbits }) => (2, nbits, m as u32),
        Some(QuantSpec::RaBitQ { bits }) => (3, bits, 0),
    };
    b.push(family);
    b.push(bits);
    b.extend_from_slice(&m.to_le_bytes());
    b.push(u8::from(p.codes_in_ram));
    b
}

fn params_from(b: &[u8], graph: HnswParams) -> Option<SpannParams> {
    Some(SpannParams {
        head_ratio: f64::from_le_bytes(le::bytes(b, 0)?),
        replicas: le::u32_at(b, 8)? as usize,
        rng_factor: f32::from_le_bytes(le::bytes(b, 12)?),
        candidates: le::u32_at(b, 16)? as usize,
        closure: f32::from_le_bytes(le::bytes(b, 20)?),
        posting_cap: le::u64_at(b, 24)? as usize,
        seed: le::u64_at(b, 32)?,
        codes: match (*b.get(40)?, *b.get(41)?) {
            (0, _) => None,
            (1, bits) => Some(QuantSpec::Sq { bits }),
            (2, nbits) => Some(QuantSpec::Pq { m: le::u32_at(b, 42)? as usize, nbits }),
            (3, bits) => Some(QuantSpec::RaBitQ { bits }),
            _ => return None,
        },
        codes_in_ram: b.get(46).copied().unwrap_or(0) == 1,
        graph,
    })
}

/// What `spann.meta` records.
pub(crate) struct Meta<'a> {
    pub(crate) metric: Metric,
    pub(crate) dim: usize,
    pub(crate) n: usize,
    pub(crate) head_ids: &'a [u32],
    pub(crate) deleted: &'a IdFilter,
    pub(crate) params: SpannParams,
    /// The quantizer's bytes when entries are codes (else empty).
    pub(crate) quantizer: &'a [u8],
    /// The codes of every vector when they are kept in memory (else empty).
    pub(crate) codes: &'a [u8],
    /// The head codes ([`HeadCodes::to_bytes`]; empty: none).
    pub(crate) head_codes: &'a [u8],
}

/// Writes `spann.meta` for the head graph and posting file already in `dir`.
fn write_meta(dir: &Path, m: Meta<'_>) -> Result<()> {
    let mut f = [0u8; FIELDS_LEN];
    f[0] = metric_code(m.metric);
    f[4..8].copy_from_slice(&(m.dim as u32).to_le_bytes());
    f[8..16].copy_from_slice(&(m.n as u64).to_le_bytes());
    f[16..20].copy_from_slice(&(m.head_ids.len() as u32).to_le_bytes());
    f[20..24].copy_from_slice(&header_crc(&dir.join(HEADS_FILE))?.to_le_bytes());
    f[24..28].copy_from_slice(&header_crc(&dir.join(POSTINGS_FILE))?.to_le_bytes());
    let ids: Vec<u8> = m.head_ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    // Section 5: u64 length of the head codes, the head codes, then the vector codes (if in RAM).
    let mut codes = Vec::with_capacity(8 + m.head_codes.len() + m.codes.len());
    codes.extend_from_slice(&(m.head_codes.len() as u64).to_le_bytes());
    codes.extend_from_slice(m.head_codes);
    codes.extend_from_slice(m.codes);
    write_framed(
        &dir.join(META_FILE),
        MAGIC,
        VERSION,
        &f,
        &[&params_bytes(&m.params), &ids, &bitmap_bytes(m.deleted, m.n), m.quantizer, &codes],
        256,
    )
}

impl SpannIndex {
    /// Writes `spann.meta` for the files already in `dir` and opens the folder.
    pub(crate) fn write_meta_and_open(dir: &Path, meta: Meta<'_>, cache_bytes: usize) -> Result<SpannIndex> {
        write_meta(dir, meta)?;
        SpannIndex::open(dir, cache_bytes)
    }

    /// Opens a SPANN folder: head graph memory-mapped, posting lists read on demand through an
    /// LRU cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<SpannIndex> {
        let meta_path = dir.join(META_FILE);
        let mut meta = Framed::open(&meta_path, MAGIC, VERSION, "SPANN index")?;
        let bad = |loc: &str, msg: String| Error::corrupt(&meta_path, loc, msg);
        let f = meta.fields;
        let metric =
            metric_from_code(f[0]).ok_or_else(|| bad("header", format!("unknown metric code {}", f[0])))?;
        let dim = le::u32_at(&f, 4).unwrap_or(0) as usize;
        let n = le::u64_at(&f, 8).unwrap_or(0);
        let h = le::u32_at(&f, 16).unwrap_or(0) as usize;
        if dim == 0 || n > u32::MAX as u64 || h as u64 > n || meta.sections.len() != 5 {
            return Err(bad("header", format!("inconsistent parameters: dim {dim}, n {n}, heads {h}")));
        }
        let n = n as usize;
        let heads_path = dir.join(HEADS_FILE);
        let postings_path = dir.join(POSTINGS_FILE);
        if le::u32_at(&f, 20) != Some(header_crc(&heads_path)?)
            || le::u32_at(&f, 24) != Some(header_crc(&postings_path)?)
        {
            return Err(bad("header", "the head graph or posting file comes from another build".into()));
        }
        // The head walk ranks by SPANN's own head codes (`HeadCodes`): no walk codes of the graph.
        let heads = HnswIndex::open_walking_rows(&heads_path)?;
        let params = params_from(&meta.read(0, "parameters")?, heads.params())
            .ok_or_else(|| bad("parameters", "section too short".into()))?;
        let ids_bytes = meta.read(1, "head ids")?;
        if ids_bytes.len() != h * 4 || heads.len() != h || (h > 0 && heads.dim() != dim) {
            return Err(bad("head ids", format!("{} bytes for {h} heads", ids_bytes.len())));
        }
        let head_ids: Vec<u32> =
            ids_bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if head_ids.iter().any(|&id| id as usize >= n) {
            return Err(bad("head ids", "a head id is out of range".into()));
        }
        let deleted_bytes = meta.read(2, "deleted bitmap")?;
        if deleted_bytes.len() != n.div_ceil(64) * 8 {
            return Err(bad("deleted bitmap", "wrong length".into()));
        }
        let deleted = bitmap_filter(&deleted_bytes, n);
        let postings = PostingFile::open(&postings_path)?;
        let quantizer = meta.read(3, "quantizer")?;
        let mut codes = AlignedVec::zeroed(meta.section_len(4, "codes")?);
        meta.read_into(4, "codes", codes.as_mut_slice())?;
        let codes = codes.as_slice();
        let head_len = le::u64_at(codes, 0).ok_or_else(|| bad("codes", "shorter than 8 bytes".into()))?;
        let (head_bytes, vector_codes) =
            match usize::try_from(head_len).ok().and_then(|l| codes.get(8..)?.split_at_checked(l)) {
                Some(parts) => parts,
                None => {
                    return Err(bad(
                        "codes",
                        format!("head codes of {head_len} bytes in a section of {}", codes.len()),
                    ))
                }
            };
        let coded = if postings.has_codes() {
            let tag = match params.codes {
                Some(QuantSpec::Sq { .. }) => 1,
                Some(QuantSpec::Pq { .. }) => 2,
                Some(QuantSpec::RaBitQ { .. }) => 3,
                None => return Err(bad("parameters", "coded posting entries without a code spec".into())),
            };
            let quant =
                AnyQuantizer::from_bytes(tag, &quantizer).map_err(|e| bad("quantizer", e.to_string()))?;
            let (qdim, code_len) = with_quantizer!(&quant, q => (q.dim(), q.code_len()));
            if qdim != dim {
                return Err(bad("quantizer", format!("quantizer for dimension {qdim}")));
            }
            let arena = if params.codes_in_ram {
                let mut arena = AlignedVec::zeroed(vector_codes.len());
                arena.as_mut_slice().copy_from_slice(vector_codes);
                if arena.len() != n * code_len {
                    return Err(bad(
                        "codes",
                        format!("{} bytes for {n} codes of {code_len} bytes", arena.len()),
                    ));
                }
                Some(arena)
            } else {
                None
            };
            if !quarry_store::source::exists(&dir.join(VECTORS_FILE)) {
                return Err(bad(
                    "files",
                    format!("{VECTORS_FILE} is missing (coded entries are re-scored from it)"),
                ));
            }
            Some(Coded { quant, code_len, arena })
        } else {
            None
        };
        if postings.len() != h || (h > 0 && postings.dim() != dim) {
            return Err(bad("header", format!("{} posting lists for {h} heads", postings.len())));
        }
        let head_codes = HeadCodes::from_bytes(head_bytes, h, dim, params.seed)
            .map_err(|e| bad("head codes", e.to_string()))?;
        let rows = match dir.join(VECTORS_FILE) {
            p if quarry_store::source::exists(&p) => Some(RowFile::open(&p, n, dim)?),
            _ => None,
        };
        let log =
            super::delta::Delta::open(dir, header_crc(&postings_path)?, postings.entry_bytes(), dim, false)?;
        let mut index = SpannIndex {
            dim,
            metric,
            n,
            heads,
            head_ids,
            postings,
            cache: PostingCache::new(cache_bytes),
            validator: FlatIndex::new(dim, metric, FlatParams::default())?,
            deleted,
            params,
            dir: dir.to_path_buf(),
            coded,
            head_codes,
            rows,
            base_n: n,
            lists: Vec::new(),
            delta: None,
            heads_changed: false,
            deletes_since_clean: 0,
        };
        if let Some((log, records)) = log {
            index.replay(log, records)?;
        }
        Ok(index)
    }

    /// Saves the index into `dir`: its own folder (only the deletes change), or a copy. After
    /// updates ([`SpannIndex::insert_batch`], [`SpannIndex::delete_batch`]) everything is already
    /// durable in the folder's update log, so saving into its own folder does nothing more; saving
    /// an updated index into another folder compacts it ([`SpannIndex::compact_into`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        if self.delta.is_some() {
            if dir == self.dir {
                return Ok(());
            }
            return self.compact_into(dir, 0).map(drop);
        }
        if dir != self.dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the index folder", dir, e))?;
            let names: &[&str] = if self.rows.is_some() {
                &[HEADS_FILE, POSTINGS_FILE, VECTORS_FILE]
            } else {
                &[HEADS_FILE, POSTINGS_FILE]
            };
            for &name in names {
                let bytes = std::fs::read(self.dir.join(name))
                    .map_err(|e| Error::io("reading", self.dir.join(name), e))?;
                quarry_store::write_atomic(&dir.join(name), |w| w.write_all(&bytes))?;
            }
        }
        write_meta(
            dir,
            Meta {
                metric: self.metric,
                dim: self.dim,
                n: self.n,
                head_ids: &self.head_ids,
                deleted: &self.deleted,
                params: self.params,
                quantizer: &self
                    .coded
                    .as_ref()
                    .map_or_else(Vec::new, |c| with_quantizer!(&c.quant, q => q.to_bytes())),
                codes: self.coded.as_ref().and_then(|c| c.arena.as_ref()).map_or(&[], |a| a.as_slice()),
                head_codes: &self.head_codes.as_ref().map_or_else(Vec::new, HeadCodes::to_bytes),
            },
        )
    }

    /// Opens a SPANN folder within a memory budget: the resident part (head codes, head graph
    /// links, id map, deleted bitmap, in-memory codes and the update state) must fit in
    /// `budget_bytes`, and what is left becomes the LRU cache of hot posting lists. An error names
    /// both figures when the resident part alone exceeds the budget.
    pub fn open_with_budget(dir: &Path, budget_bytes: usize) -> Result<SpannIndex> {
        let mut index = SpannIndex::open(dir, 0)?;
        let fixed = index.resident_bytes();
        if fixed > budget_bytes {
            return Err(Error::InvalidArgument(format!(
                "spann: the resident part of {} needs {fixed} bytes, over the memory budget of {budget_bytes} bytes",
                dir.display()
            )));
        }
        index.cache = PostingCache::new(budget_bytes - fixed);
        Ok(index)
    }

    /// Checks every checksum of the folder's files (the update log's too, if there is one).
    pub fn verify(dir: &Path) -> Result<()> {
        HnswIndex::verify(&dir.join(HEADS_FILE))?;
        PostingFile::verify(&dir.join(POSTINGS_FILE))?;
        let mut meta = Framed::open(&dir.join(META_FILE), MAGIC, VERSION, "SPANN index")?;
        for (i, name) in ["parameters", "head ids", "deleted bitmap", "quantizer", "codes"].iter().enumerate()
        {
            meta.verify(i, name)?;
        }
        if dir.join(VECTORS_FILE).exists() {
            RowFile::verify(&dir.join(VECTORS_FILE))?;
        }
        let postings = PostingFile::open(&dir.join(POSTINGS_FILE))?;
        let dim = postings.dim();
        let crc = header_crc(&dir.join(POSTINGS_FILE))?;
        // Opening the log for reading only: `Delta::open` cuts a torn tail, which a check must not.
        if let Some((log, records)) =
            super::delta::Delta::open_read_only(dir, crc, postings.entry_bytes(), dim)?
        {
            log.verify(&records)?;
        }
        Ok(())
    }
}
