//! Building a SPANN index: validated rows, heads by hierarchical balanced k-means, the head graph,
//! closure assignment with the RNG rule and a posting cap (Chen et al., "SPANN: Highly-efficient
//! Billion-scale Approximate Nearest Neighbor Search", NeurIPS 2021, Sec. 3; the RNG test and the
//! replica count as in SPTAG's `VectorIndex.cpp` ApproximateRNG), the posting file.

use super::cluster::{choose_heads, ClusterParams};
use super::format::{HEADS_FILE, POSTINGS_FILE, VECTORS_FILE};
use super::heads::HeadCodes;
use super::params::SpannParams;
use super::postings::{write_posting_codes, write_postings, PostingCache, PostingFile, PostingStats};
use super::rows::RowFile;
use crate::flat::{FlatIndex, FlatParams};
use crate::hnsw::{HnswIndex, HnswParams, HnswSearch};
use crate::quant::codes::{with_quantizer, AnyQuantizer, Codes};
use crate::quant::QuantParams;
use quarry_core::{Error, IdFilter, Matrix, Metric, Result, VectorIndex};
use quarry_linalg::Kernels;
use quarry_quant::Quantizer;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A SPANN index: heads and their graph in memory, posting lists in a file read on demand.
#[derive(Debug)]
pub struct SpannIndex {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    /// Data ids are `0..n` (deleted ones included).
    pub(crate) n: usize,
    /// HNSW over the head vectors under squared L2; head row r owns posting list r.
    pub(crate) heads: HnswIndex,
    /// Head row → data id.
    pub(crate) head_ids: Vec<u32>,
    pub(crate) postings: PostingFile,
    pub(crate) cache: PostingCache,
    /// Validates and normalises queries (an empty exact index of the same metric).
    pub(crate) validator: FlatIndex,
    pub(crate) deleted: IdFilter,
    pub(crate) params: SpannParams,
    pub(crate) dir: PathBuf,
    /// With coded entries: the quantizer and the exact rows for re-scoring.
    pub(crate) coded: Option<Coded>,
    /// Codes of the heads: the head search reads only these (`None`: too few heads to train
    /// them; the graph is then walked with exact keys).
    pub(crate) head_codes: Option<HeadCodes>,
    /// Exact rows (`vectors.qflat`) of the ids present at build time, read by positioned reads
    /// to re-score and by updates; `None` only for folders written before it existed.
    pub(crate) rows: Option<RowFile>,
    /// Ids at build time (ids from `base_n` on were inserted; their rows are in the update log).
    pub(crate) base_n: usize,
    /// Per list, the base list and its runs in the update log (empty until the first update).
    pub(crate) lists: Vec<super::delta::ListState>,
    /// The update log, once there has been an update.
    pub(crate) delta: Option<super::delta::Delta>,
    /// Heads changed since the head graph was built: head search scans the head codes.
    pub(crate) heads_changed: bool,
    /// Deletes since the last clean-up of lists.
    pub(crate) deletes_since_clean: usize,
}

/// The quantizer of coded posting entries and the exact rows they are re-scored from.
#[derive(Debug)]
pub(crate) struct Coded {
    pub(crate) quant: AnyQuantizer,
    /// Bytes of a code (the entries pad it to a multiple of 4).
    pub(crate) code_len: usize,
    /// Every vector's code when kept in memory (`codes_in_ram`); the lists then hold ids only.
    pub(crate) arena: Option<quarry_linalg::AlignedVec<u8>>,
}

/// What the build did, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpannBuildStats {
    /// Heads chosen.
    pub heads: usize,
    /// Posting entries written (replicas included).
    pub entries: usize,
    /// Mean postings per non-head vector.
    pub replication: f64,
    /// Longest posting list.
    pub max_list: usize,
    /// Entries dropped by the posting cap.
    pub cut: usize,
    /// Vectors left in no posting and not a head (0 by construction: the cap never removes a
    /// vector's last posting).
    pub orphans: usize,
}

impl SpannIndex {
    /// Builds an index over `vectors` into folder `dir` (created; existing index files are
    /// replaced) and opens it with a posting cache of `cache_bytes`.
    pub fn build(
        vectors: &Matrix,
        metric: Metric,
        params: SpannParams,
        dir: &Path,
        cache_bytes: usize,
    ) -> Result<(SpannIndex, SpannBuildStats)> {
        params.check()?;
        let flat = FlatIndex::build(vectors, metric, FlatParams::default())?;
        let (n, dim) = (flat.rows(), vectors.dim());
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the index folder", dir, e))?;
        let rows = |id: u32| flat.row_query(id as usize);
        let clusters = if n == 0 {
            Vec::new()
        } else {
            let head_count = ((n as f64 * params.head_ratio).ceil() as usize).clamp(1, n);
            let cp = ClusterParams { seed: params.seed, ..ClusterParams::default() };
            choose_heads(&rows, n, dim, metric, head_count, &cp)?
        };
        let head_ids: Vec<u32> = clusters.iter().map(|c| c.head).collect();
        drop(clusters);
        let mut head_rows = Vec::with_capacity(head_ids.len() * dim);
        for &h in &head_ids {
            head_rows.extend_from_slice(&rows(h));
        }
        let head_mat = Matrix::new(head_rows, dim)?;
        // The head walk ranks by SPANN's own head codes (`HeadCodes`): no walk codes of the graph.
        let heads =
            HnswIndex::build(&head_mat, Metric::L2, HnswParams { walk_codes: false, ..params.graph })?;
        let (lists, stats) = assign(&flat, &heads, &head_mat, &head_ids, &params)?;
        let ids: Vec<Vec<u32>> =
            lists.into_iter().map(|l| l.into_iter().map(|(_, id)| id).collect()).collect();
        let postings = dir.join(POSTINGS_FILE);
        let codes = match params.codes {
            Some(spec) if n > 0 => {
                let qp = QuantParams {
                    spec,
                    rerank: spec.default_rerank(),
                    train_size: 65_536,
                    seed: params.seed,
                };
                Some(Codes::train(&flat, qp)?).filter(|c| c.quant.is_some())
            }
            _ => None,
        };
        let quantizer = if let Some(codes) = &codes {
            // Codes in the lists; the f32 rows go to a flat file read only to re-score.
            let code_len = codes.code_len;
            let payload = if params.codes_in_ram { 0 } else { code_len.next_multiple_of(4) };
            let _: PostingStats = write_posting_codes(&postings, dim, metric, payload, &ids, &|id, out| {
                if !out.is_empty() {
                    out[..code_len].copy_from_slice(codes.code(id))
                }
            })?;
            codes.quant.as_ref().map_or_else(Vec::new, |a| with_quantizer!(a, q => q.to_bytes()))
        } else {
            let _: PostingStats = write_postings(&postings, dim, metric, &ids, &|id| rows(id).into_owned())?;
            Vec::new()
        };
        // The exact rows: re-scoring of coded entries, and updates (splits read members' rows).
        flat.save(&dir.join(VECTORS_FILE))?;
        let _ = std::fs::remove_file(super::delta::Delta::path_in(dir));
        // An index too small to train its codes (PQ) keeps f32 entries.
        let params = if codes.is_none() { SpannParams { codes: None, ..params } } else { params };
        heads.save(&dir.join(HEADS_FILE))?;
        let head_codes = HeadCodes::train(&heads.flat, params.seed)?.map_or_else(Vec::new, |c| c.to_bytes());
        let meta = super::format::Meta {
            metric,
            dim,
            n,
            head_ids: &head_ids,
            deleted: &IdFilter::new(),
            params,
            quantizer: &quantizer,
            codes: match &codes {
                Some(c) if params.codes_in_ram => c.arena.as_slice(),
                _ => &[],
            },
            head_codes: &head_codes,
        };
        let index = SpannIndex::write_meta_and_open(dir, meta, cache_bytes)?;
        Ok((index, stats))
    }

    /// Build parameters.
    pub fn params(&self) -> SpannParams {
        self.params
    }

    /// Number of heads (= posting lists).
    pub fn head_count(&self) -> usize {
        self.head_ids.len()
    }

    /// The folder the index lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One posting list under construction: `(squared L2 to the head, data id)`, nearest first.
type PostingEntries = Vec<(f32, u32)>;

/// Closure assignment with the RNG rule, then the posting cap. Returns per head row its entries
/// `(squared L2 to the head, data id)`, nearest first.
fn assign(
    flat: &FlatIndex,
    heads: &HnswIndex,
    head_mat: &Matrix,
    head_ids: &[u32],
    p: &SpannParams,
) -> Result<(Vec<PostingEntries>, SpannBuildStats)> {
    let n = flat.rows();
    let h = head_ids.len();
    // A head is a data vector too: it is the first entry of its own list (and of no other).
    let mut head_row = vec![u32::MAX; n];
    for (r, &id) in head_ids.iter().enumerate() {
        head_row[id as usize] = r as u32;
    }
    let kern = Kernels::get();
    let probe = HnswSearch::ef(p.candidates.max(64));
    let chosen: Vec<Vec<(u32, f32)>> = (0..n as u32)
        .into_par_iter()
        .with_min_len(64)
        .map(|id| -> Result<Vec<(u32, f32)>> {
            if h == 0 {
                return Ok(Vec::new());
            }
            if head_row[id as usize] != u32::MAX {
                return Ok(vec![(head_row[id as usize], 0.0)]);
            }
            let x = flat.row_query(id as usize);
            let cands = heads.search_with(&x, p.candidates.min(h), &probe, None)?;
            let d1 = cands.first().map_or(0.0, |c| -c.score);
            let mut accepted: Vec<(u32, f32)> = Vec::with_capacity(p.replicas);
            for c in &cands {
                let d = -c.score;
                if d > p.closure * d1 && !accepted.is_empty() {
                    break;
                }
                let hj = head_mat.row(c.id as usize);
                let blocked = accepted
                    .iter()
                    .any(|&(a, _)| p.rng_factor * (kern.l2_sq)(head_mat.row(a as usize), hj) < d);
                if !blocked {
                    accepted.push((c.id, d));
                    if accepted.len() == p.replicas {
                        break;
                    }
                }
            }
            Ok(accepted)
        })
        .collect::<Result<_>>()?;
    let mut lists: Vec<PostingEntries> = vec![Vec::new(); h];
    let mut copies = vec![0u8; n];
    for (id, acc) in chosen.iter().enumerate() {
        copies[id] = acc.len() as u8;
        for &(r, d) in acc {
            lists[r as usize].push((d, id as u32));
        }
    }
    let cap = p.cap_for(flat.dim());
    let mut cut = 0;
    for list in &mut lists {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if list.len() <= cap {
            continue;
        }
        // Drop the farthest entries whose vector has another posting; keep last copies.
        let mut keep = Vec::with_capacity(list.len());
        let mut excess = list.len() - cap;
        for &(d, id) in list.iter().rev() {
            if excess > 0 && copies[id as usize] > 1 {
                copies[id as usize] -= 1;
                excess -= 1;
                cut += 1;
            } else {
                keep.push((d, id));
            }
        }
        keep.reverse();
        *list = keep;
    }
    let entries: usize = lists.iter().map(Vec::len).sum();
    let non_heads = n - h.min(n);
    let orphans = (0..n).filter(|&i| copies[i] == 0).count();
    let stats = SpannBuildStats {
        heads: h,
        entries,
        replication: (entries - h.min(entries)) as f64 / non_heads.max(1) as f64,
        max_list: lists.iter().map(Vec::len).max().unwrap_or(0),
        cut,
        orphans,
    };
    Ok((lists, stats))
}
