//! [`PqQuantizer`]: product quantization (Jégou, Douze & Schmid, "Product quantization for
//! nearest neighbor search", IEEE TPAMI 33(1), 2011, Sec. II–III) — training of the per-subspace
//! codebooks, the subspace layout, code packing, encoding and decoding, and the [`Quantizer`]
//! implementation.
//!
//! **Subspaces.** `d` is split into `m` contiguous subspaces whose widths differ by at most one:
//! with `w = d / m` and `r = d % m`, subspaces `0..r` are `w + 1` wide and the others `w` wide.
//! This is zero-padding every subspace to `ceil(d / m)` components — the padded components are
//! zero in every vector and every centroid, so they change no distance and are neither stored
//! nor computed. `m` may be anything from 1 to `d`.
//!
//! **Codes.** `nbits = 8`: one byte per subspace, `m` bytes. `nbits = 4`: two subspaces per
//! byte, `ceil(m / 2)` bytes; subspace `2t` is the *low* nibble of byte `t` and subspace `2t + 1`
//! its *high* nibble (zero when `m` is odd and `2t + 1 == m`).

use super::estimator::PqEstimator;
use super::kmeans::{gather, kmeans, sample_indices, KMeansParams};
use super::subspace;
use crate::Quantizer;
use quarry_core::{check_finite, Error, Matrix, Metric, Result};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rayon::prelude::*;

/// Training knobs of [`PqQuantizer::train_with`]; the default is faiss's (25 iterations, 256
/// points per centroid, seed 1234).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PqTraining {
    /// Lloyd iterations per subspace codebook.
    pub niter: usize,
    /// The sample is subsampled to `ksub * this` rows when larger (0: use every row).
    pub max_points_per_centroid: usize,
    /// Seed of the subsampling and of every subspace's k-means (subspace `j` uses `seed + j`).
    pub seed: u64,
}

impl Default for PqTraining {
    fn default() -> Self {
        PqTraining { niter: 25, max_points_per_centroid: 256, seed: 1234 }
    }
}

/// A trained product quantizer with `m` subspaces of `2^nbits` centroids each (`nbits` 8 or 4).
#[derive(Clone, PartialEq)]
pub struct PqQuantizer {
    pub(super) dim: usize,
    pub(super) metric: Metric,
    pub(super) m: usize,
    pub(super) nbits: u8,
    /// `m + 1` subspace boundaries: subspace `j` covers components `bounds[j]..bounds[j + 1]`.
    pub(super) bounds: Vec<usize>,
    /// Codebooks: subspace `j` is a row-major `ksub x width_j` block at `ksub * bounds[j]`.
    pub(super) centroids: Vec<f32>,
    /// The same codebooks dimension-major (`width_j x ksub` at the same offsets).
    pub(super) transposed: Vec<f32>,
}

impl std::fmt::Debug for PqQuantizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PqQuantizer")
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("m", &self.m)
            .field("nbits", &self.nbits)
            .finish_non_exhaustive()
    }
}

impl PqQuantizer {
    /// Trains `m` codebooks of `2^nbits` centroids on the rows of `sample` with the default
    /// [`PqTraining`]. `nbits` must be 8 or 4, `1 <= m <= dim`, and the sample needs at least
    /// `2^nbits` rows; the metric only affects the estimator (codebooks are L2 k-means, as in
    /// faiss). Cosine samples should be unit vectors.
    pub fn train(sample: &Matrix, metric: Metric, m: usize, nbits: u8) -> Result<Self> {
        Self::train_with(sample, metric, m, nbits, &PqTraining::default())
    }

    /// [`PqQuantizer::train`] with explicit iterations, subsampling and seed.
    pub fn train_with(
        sample: &Matrix,
        metric: Metric,
        m: usize,
        nbits: u8,
        training: &PqTraining,
    ) -> Result<Self> {
        let dim = sample.dim();
        check_shape(dim, m, nbits)?;
        let ksub = 1usize << nbits;
        let n = sample.rows();
        if n < ksub {
            return Err(Error::InvalidArgument(format!(
                "PQ with nbits = {nbits} trains {ksub} centroids per subspace and needs at least \
                 {ksub} training vectors, got {n}"
            )));
        }
        for (i, row) in sample.iter().enumerate() {
            check_finite(row, || format!("PQ training vector {i}"))?;
        }
        let limit = match training.max_points_per_centroid {
            0 => n,
            p => ksub.saturating_mul(p),
        };
        let rows: std::borrow::Cow<'_, [f32]> = if n > limit {
            let mut rng = SmallRng::seed_from_u64(training.seed);
            let mut idx = sample_indices(&mut rng, n, limit);
            idx.sort_unstable();
            gather(sample.as_slice(), dim, &idx).into()
        } else {
            sample.as_slice().into()
        };
        let bounds = subspace_bounds(dim, m);
        let books = (0..m)
            .into_par_iter()
            .map(|j| {
                let (lo, hi) = (bounds[j], bounds[j + 1]);
                let sub: Vec<f32> = rows.chunks_exact(dim).flat_map(|x| x[lo..hi].iter().copied()).collect();
                let params = KMeansParams {
                    k: ksub,
                    niter: training.niter,
                    max_points_per_centroid: 0,
                    seed: training.seed.wrapping_add(j as u64),
                    spherical: false,
                };
                kmeans(&sub, hi - lo, &params).map(|km| km.centroids)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_parts(dim, metric, m, nbits, books.concat()))
    }

    /// Assembles a quantizer from validated parts (`centroids` in the stored layout).
    pub(super) fn from_parts(dim: usize, metric: Metric, m: usize, nbits: u8, centroids: Vec<f32>) -> Self {
        let ksub = 1usize << nbits;
        let bounds = subspace_bounds(dim, m);
        let mut transposed = Vec::with_capacity(centroids.len());
        for j in 0..m {
            let (lo, hi) = (bounds[j], bounds[j + 1]);
            let book = &centroids[ksub * lo..ksub * hi];
            transposed.extend(subspace::transpose(book, ksub, hi - lo));
        }
        PqQuantizer { dim, metric, m, nbits, bounds, centroids, transposed }
    }

    /// Number of subspaces.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Bits per subspace code (8 or 4).
    pub fn nbits(&self) -> u8 {
        self.nbits
    }

    /// Centroids per subspace, `2^nbits`.
    pub fn ksub(&self) -> usize {
        1 << self.nbits
    }

    /// Components `start..end` of subspace `j` (panics if `j >= m`).
    pub fn subspace(&self, j: usize) -> std::ops::Range<usize> {
        self.bounds[j]..self.bounds[j + 1]
    }

    /// Codebook of subspace `j`: row-major `ksub x width` (panics if `j >= m`).
    pub fn codebook(&self, j: usize) -> &[f32] {
        let ksub = self.ksub();
        &self.centroids[ksub * self.bounds[j]..ksub * self.bounds[j + 1]]
    }

    /// Dimension-major codebook of subspace `j` (`width x ksub`).
    pub(super) fn codebook_t(&self, j: usize) -> &[f32] {
        let ksub = self.ksub();
        &self.transposed[ksub * self.bounds[j]..ksub * self.bounds[j + 1]]
    }

    /// Code of subspace `j` in `code` (see the module docs for the nibble order).
    #[inline]
    pub fn sub_code(&self, code: &[u8], j: usize) -> usize {
        if self.nbits == 8 {
            code[j] as usize
        } else {
            ((code[j / 2] >> (4 * (j % 2))) & 0x0F) as usize
        }
    }
}

impl Quantizer for PqQuantizer {
    type Estimator<'a> = PqEstimator<'a>;

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn code_len(&self) -> usize {
        code_len(self.m, self.nbits)
    }

    /// Nearest centroid per subspace. Panics if `x` or `code` has the wrong length.
    fn encode(&self, x: &[f32], code: &mut [u8]) {
        assert_eq!(x.len(), self.dim, "PqQuantizer::encode: wrong dimension");
        assert_eq!(code.len(), self.code_len(), "PqQuantizer::encode: wrong code length");
        let ksub = self.ksub();
        code.fill(0);
        for j in 0..self.m {
            let (c, _) = subspace::l2_argmin(&x[self.subspace(j)], self.codebook_t(j), ksub);
            if self.nbits == 8 {
                code[j] = c as u8;
            } else {
                code[j / 2] |= (c as u8) << (4 * (j % 2));
            }
        }
    }

    /// Concatenates the chosen centroids. Panics if `code` or `out` has the wrong length.
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        assert_eq!(out.len(), self.dim, "PqQuantizer::decode: wrong dimension");
        assert_eq!(code.len(), self.code_len(), "PqQuantizer::decode: wrong code length");
        for j in 0..self.m {
            let range = self.subspace(j);
            let w = range.len();
            let c = self.sub_code(code, j);
            out[range].copy_from_slice(&self.codebook(j)[c * w..(c + 1) * w]);
        }
    }

    fn estimator<'a>(&'a self, q: &[f32]) -> PqEstimator<'a> {
        PqEstimator::new(self, q)
    }

    fn to_bytes(&self) -> Vec<u8> {
        super::format::write(self)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        super::format::read(bytes)
    }
}

/// Bytes per code for `m` subspaces of `nbits` (8 or 4) bits.
pub(super) fn code_len(m: usize, nbits: u8) -> usize {
    if nbits == 8 {
        m
    } else {
        m.div_ceil(2)
    }
}

/// Checks `nbits` ∈ {4, 8} and `1 <= m <= dim`.
pub(super) fn check_shape(dim: usize, m: usize, nbits: u8) -> Result<()> {
    if nbits != 8 && nbits != 4 {
        return Err(Error::InvalidArgument(format!("PQ nbits must be 8 or 4, got {nbits}")));
    }
    if dim == 0 {
        return Err(Error::InvalidArgument("PQ dimension must be at least 1".into()));
    }
    if m == 0 || m > dim {
        return Err(Error::InvalidArgument(format!(
            "PQ needs 1 <= m <= dim subspaces, got m = {m} for dim = {dim}"
        )));
    }
    Ok(())
}

/// The `m + 1` subspace boundaries (widths `dim / m + 1` for the first `dim % m`, then `dim / m`).
pub(super) fn subspace_bounds(dim: usize, m: usize) -> Vec<usize> {
    let (w, r) = (dim / m, dim % m);
    let mut bounds = Vec::with_capacity(m + 1);
    let mut at = 0;
    bounds.push(0);
    for j in 0..m {
        at += w + usize::from(j < r);
        bounds.push(at);
    }
    bounds
}
