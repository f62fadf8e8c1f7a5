//! Many queries at once by blocked matrix products, as faiss's `IndexFlat` does for a batch
//! (`exhaustive_inner_product_blas`): a tile of queries times a block of rows is one GEMM
//! (the `gemm` crate's packed SIMD micro-kernels), so each row is loaded once per tile and the
//! arithmetic runs from registers instead of streaming every row once per query. The products
//! only select candidates: a GEMM sums in another order than the scan kernels, so each query's
//! best `2k + 8` are re-scored by the scan kernel and the top k of those are returned: the
//! answers and their scores are bit for bit what a one-query search gives (up to candidates
//! within a few ulps of the k-th, which the margin covers).

use super::builder::{FlatIndex, Rows};
use quarry_core::{DocId, Hit, Metric};
use quarry_linalg::{AlignedVec, TopK};
use rayon::prelude::*;

/// Queries per GEMM (a tile). With [`ROWS`] the scores of one product take 16 MiB (faiss's
/// blocks are the same size: 4,096 queries × 1,024 rows); on wndict-384 (2,000 queries, one
/// thread) 1,024 × 4,096 measured 1,676–1,700 QPS, 512 × 4,096 1,611–1,656, 256 × 1,024
/// 1,336–1,406 (decision 0015). The `gemm` crate blocks for the caches inside each product.
const TILE: usize = 1024;
/// Rows per GEMM block.
const ROWS: usize = 4096;
/// Fewest queries for which products pay off (below: the per-query scan).
pub(crate) const MIN_QUERIES: usize = 16;

impl FlatIndex {
    /// Whether [`FlatIndex::search_gemm`] serves this index: f32 rows ranked by inner product
    /// (ip, cosine). L2 by `|r|² - 2 q·r` would lose precision for near neighbours, and f16 rows
    /// would have to be widened block by block; both keep the tiled scan.
    pub(crate) fn gemm_applies(&self) -> bool {
        matches!(self.rows, Rows::F32(_)) && self.metric != Metric::L2
    }

    /// Exact top-k of each prepared query (unrestricted index), by blocked products.
    pub(crate) fn search_gemm(&self, prepared: &[AlignedVec<f32>], k: usize) -> Vec<Vec<Hit>> {
        let Rows::F32(rows) = &self.rows else { return Vec::new() };
        let rows = rows.as_slice();
        let (n, d) = (self.len, self.dim);
        let wide = (2 * k + 8).min(n);
        prepared
            .par_chunks(TILE)
            .flat_map_iter(|tile| {
                let t = tile.len();
                let mut qs = Vec::with_capacity(t * d);
                tile.iter().for_each(|q| qs.extend_from_slice(q.as_slice()));
                let mut tops: Vec<TopK> = (0..t).map(|_| TopK::new(wide)).collect();
                let mut scores = vec![0.0f32; t * ROWS];
                let mut s = 0;
                while s < n {
                    let b = ROWS.min(n - s);
                    let block = &rows[s * d..(s + b) * d];
                    // scores (t × b, row-major) = qs (t × d) · blockᵀ (d × b).
                    // SAFETY: every pointer/stride pair addresses inside its slice: dst is t × b
                    // with row stride b (≤ ROWS, the buffer's t × ROWS), lhs is t × d row-major,
                    // rhs element (kk, j) is block[j * d + kk] with j < b, kk < d.
                    unsafe {
                        gemm::gemm(
                            t,
                            b,
                            d,
                            scores.as_mut_ptr(),
                            1,
                            b as isize,
                            false,
                            qs.as_ptr(),
                            1,
                            d as isize,
                            block.as_ptr(),
                            d as isize,
                            1,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    for (i, top) in tops.iter_mut().enumerate() {
                        offer(top, &scores[i * b..(i + 1) * b], s);
                    }
                    s += b;
                }
                tops.into_iter().zip(tile).map(move |(top, q)| self.rescore_candidates(q.as_slice(), top, k))
            })
            .collect()
    }

    /// The exact top-k among a query's GEMM candidates, scored by the scan kernels' level
    /// ([`FlatIndex::search_ids`]; ascending ids, the order the scan offers them in, so ties
    /// break alike).
    fn rescore_candidates(&self, q: &[f32], cands: TopK, k: usize) -> Vec<Hit> {
        let mut ids: Vec<DocId> = cands.into_sorted().into_iter().map(|(_, id)| id).collect();
        ids.sort_unstable();
        self.search_ids(q, ids.into_iter(), k)
    }
}

/// Offers the similarities `sims` of rows `first..` to `top` (as keys, `-similarity`; NaN ranks
/// last). Most rows of a block cannot enter the top-k: a run of 16 whose best similarity is below
/// the entry bar is skipped after one vectorised maximum.
#[inline]
fn offer(top: &mut TopK, sims: &[f32], first: usize) {
    let mut thr = top.threshold();
    for (c, chunk) in sims.chunks(16).enumerate() {
        let best = chunk.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        if best < -thr {
            continue;
        }
        for (j, &x) in chunk.iter().enumerate() {
            let key = if x.is_nan() { f32::INFINITY } else { -x };
            if key <= thr && top.push(key, (first + c * 16 + j) as DocId) {
                thr = top.threshold();
            }
        }
    }
}
