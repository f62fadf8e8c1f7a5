//! k-NN search for an expensive cross-encoder by CUR decomposition (ANNCUR: Yadav et al.,
//! "Efficient Nearest Neighbor Search for Cross-Encoder Models using Matrix Factorization",
//! EMNLP 2022, arXiv 2210.12579).
//!
//! Offline, `k_q` anchor queries are scored by the cross-encoder against every item (`R`,
//! `k_q × N`) and `k_i` anchor items are chosen; with `A = R[:, anchors]` (`k_q × k_i`) and
//! `U = pinv(A)`, every item gets the embedding `E[:, j] = U R[:, j]` (`k_i` values). Online, a
//! query is scored by the cross-encoder against the anchor items only (`c`, `k_i` calls), every
//! item's score is approximated as `c · E[:, j]`, and the best `k_r` approximations are re-scored
//! by the cross-encoder: `k_i + k_r` calls per query instead of `N`.
//!
//! The pseudo-inverse comes from a thin SVD (`quarry_linalg::svd`) with singular values below
//! `max(k_q, k_i) · ε · s_max` treated as zero, as numpy's `pinv` does.

use quarry_core::{Error, Result};

/// Item embeddings of a CUR approximation of a cross-encoder's scores.
#[derive(Debug, Clone)]
pub struct CurIndex {
    anchors: Vec<usize>,
    /// `N × k_i`, row-major: item `j`'s embedding in row `j`.
    items: Vec<f32>,
    n: usize,
}

impl CurIndex {
    /// Fits the index from `r` (`k_q × n`, row-major: anchor queries' scores of every item) and
    /// the anchor items' indices. Errors on a shape mismatch, a non-finite score, an anchor out
    /// of range or repeated, or no anchors.
    pub fn fit(r: &[f32], k_q: usize, n: usize, anchors: Vec<usize>) -> Result<CurIndex> {
        let k_i = anchors.len();
        if k_q == 0 || n == 0 || k_i == 0 || r.len() != k_q * n {
            return Err(Error::InvalidArgument(format!(
                "ANNCUR: {} scores for {k_q} anchor queries × {n} items and {k_i} anchor items",
                r.len()
            )));
        }
        if r.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument("ANNCUR: a non-finite score".into()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(a) = anchors.iter().find(|a| **a >= n || !seen.insert(**a)) {
            return Err(Error::InvalidArgument(format!(
                "ANNCUR: anchor item {a} is out of range or repeated"
            )));
        }
        // A = R[:, anchors], k_q × k_i.
        let a: Vec<f64> =
            (0..k_q).flat_map(|q| anchors.iter().map(move |&j| f64::from(r[q * n + j]))).collect();
        let u = pinv(&a, k_q, k_i)?; // k_i × k_q
                                     // E = U R: item j's embedding is U · R[:, j].
        let mut items = vec![0f32; n * k_i];
        for j in 0..n {
            for i in 0..k_i {
                let mut s = 0.0f64;
                for q in 0..k_q {
                    s += u[i * k_q + q] * f64::from(r[q * n + j]);
                }
                items[j * k_i + i] = s as f32;
            }
        }
        Ok(CurIndex { anchors, items, n })
    }

    /// The anchor items a query must be scored against, in the order [`CurIndex::approximate`]
    /// expects.
    pub fn anchors(&self) -> &[usize] {
        &self.anchors
    }

    /// Items indexed.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no item is indexed (never, for a fitted index).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Approximate scores of every item from `c`, the query's cross-encoder scores of the anchor
    /// items.
    pub fn approximate(&self, c: &[f32]) -> Result<Vec<f32>> {
        let k_i = self.anchors.len();
        if c.len() != k_i || c.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "ANNCUR: {} finite anchor scores needed, got {}",
                k_i,
                c.len()
            )));
        }
        Ok(self
            .items
            .chunks_exact(k_i)
            .map(|e| e.iter().zip(c).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() as f32)
            .collect())
    }

    /// The `k` best items for a query: its anchor scores from `score` (called once with the
    /// anchors), the `k_r` best approximations re-scored by `score` (called once with them),
    /// best first as `(item, cross-encoder score)`. `score` returns one score per item asked.
    pub fn search(
        &self,
        score: &mut dyn FnMut(&[usize]) -> Result<Vec<f32>>,
        k_r: usize,
        k: usize,
    ) -> Result<Vec<(usize, f32)>> {
        let c = score(&self.anchors)?;
        let approx = self.approximate(&c)?;
        let mut order: Vec<usize> = (0..self.n).collect();
        order.sort_by(|a, b| approx[*b].total_cmp(&approx[*a]).then(a.cmp(b)));
        order.truncate(k_r.max(k).min(self.n));
        let exact = score(&order)?;
        if exact.len() != order.len() {
            return Err(Error::InvalidArgument(format!(
                "ANNCUR: the scorer gave {} scores for {} items",
                exact.len(),
                order.len()
            )));
        }
        let mut out: Vec<(usize, f32)> = order.into_iter().zip(exact).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        Ok(out)
    }
}

/// Moore-Penrose pseudo-inverse of the row-major `m × n` matrix `a`: `n × m`, row-major.
pub fn pinv(a: &[f64], m: usize, n: usize) -> Result<Vec<f64>> {
    // A = U S Vᵀ (m ≥ n) gives pinv(A) = V S⁺ Uᵀ; for m < n decompose Aᵀ = U S Vᵀ, so
    // A = V S Uᵀ and pinv(A) = U S⁺ Vᵀ.
    let tall = m >= n;
    let (rows, cols, mat) = if tall {
        (m, n, a.to_vec())
    } else {
        (n, m, (0..n).flat_map(|j| (0..m).map(move |i| a[i * n + j])).collect())
    };
    let d = quarry_linalg::svd::svd(&mat, rows, cols)?;
    let s_max = d.s.first().copied().unwrap_or(0.0);
    let cut = s_max * rows.max(cols) as f64 * f64::EPSILON;
    let inv: Vec<f64> = d.s.iter().map(|s| if *s > cut { 1.0 / s } else { 0.0 }).collect();
    // p = V S⁺ Uᵀ of the decomposed (rows × cols) matrix: cols × rows.
    let mut p = vec![0f64; cols * rows];
    for i in 0..cols {
        for j in 0..rows {
            let mut s = 0.0;
            for (k, w) in inv.iter().enumerate() {
                s += d.v[i * cols + k] * w * d.u[j * cols + k];
            }
            p[i * rows + j] = s;
        }
    }
    if tall {
        Ok(p) // n × m
    } else {
        // p is pinv(Aᵀ) (m × n); pinv(A) = pinv(Aᵀ)ᵀ (n × m).
        Ok((0..n).flat_map(|i| (0..m).map(move |j| (i, j))).map(|(i, j)| p[j * n + i]).collect())
    }
}

#[cfg(test)]
#[path = "anncur_tests.rs"]
mod tests;
