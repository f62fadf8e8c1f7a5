//! Orthogonal Procrustes alignment between two embedding spaces (Schönemann, "A generalized
//! solution of the orthogonal Procrustes problem", Psychometrika 31, 1966; used for embedding
//! spaces by Smith et al., "Offline bilingual word vectors, orthogonal transformations and the
//! inverted softmax", arXiv 1702.03859).
//!
//! Given `n` items embedded by a new model (`X`, `n × d_new`) and an old one (`Y`, `n × d_old`),
//! finds `W` minimising `‖X W − Y‖_F` subject to `WᵀW = I` (or `W Wᵀ = I` when `d_new < d_old`):
//! `M = XᵀY = U S Vᵀ`, `W = U Vᵀ`. A query of the new model is served by an index of the old one
//! as `normalise(x W)`.
//!
//! Centred maps (recommended between different models: on SciFact they keep far more of the old
//! model's ranking quality) subtract each space's mean and fit on the centred directions (rows
//! scaled back to unit length), so that the common offset every sentence model's vectors share
//! does not dominate the fit; a query then maps as
//! `normalise(s̄ · normalise(x − μ_x) W + μ_y)`, with `s̄` the old rows' mean distance from their
//! mean.

use crate::svd::svd;
use quarry_core::{Error, Result};

/// A fitted map from a new model's space into an old model's space.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// Dimension of the new model (input).
    pub d_new: usize,
    /// Dimension of the old model (output).
    pub d_old: usize,
    /// `d_new × d_old`, row-major.
    pub w: Vec<f32>,
    /// Mean of the new model's (unit) rows, subtracted before the map; empty when not centred.
    pub mean_new: Vec<f32>,
    /// Mean of the old model's (unit) rows, added after the map; empty when not centred.
    pub mean_old: Vec<f32>,
    /// Centred maps: the old rows' mean distance from their mean (the length a mapped direction
    /// gets before `mean_old` is added); 1 otherwise.
    pub scale: f32,
}

/// How well a fit explains the pairs it was made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitReport {
    /// Pairs used.
    pub pairs: usize,
    /// `‖X W − Y‖²_F` over the (normalised, centred) pairs.
    pub residual: f64,
    /// The same for `W = I` when the dimensions agree (else NaN): what aligning bought.
    pub identity_residual: f64,
    /// Mean cosine between a mapped new row and its old row.
    pub mean_cosine: f64,
}

fn unit_rows(x: &[f32], d: usize) -> Vec<f64> {
    unit_rows_f64(x.iter().map(|&v| f64::from(v)).collect(), d)
}

fn unit_rows_f64(mut rows: Vec<f64>, d: usize) -> Vec<f64> {
    for row in rows.chunks_mut(d) {
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    }
    rows
}

fn centre(rows: &mut [f64], d: usize, n: usize) -> Vec<f64> {
    let mut mean = vec![0.0; d];
    for row in rows.chunks(d) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v / n as f64);
    }
    for row in rows.chunks_mut(d) {
        row.iter_mut().zip(&mean).for_each(|(v, m)| *v -= m);
    }
    mean
}

impl Alignment {
    /// Fits the map from `new` (`n × d_new`, row-major) to `old` (`n × d_old`); rows are scaled to
    /// unit length first and, with `centre_means`, centred. Errors on shape mismatches, non-finite
    /// values, or fewer pairs than `max(d_new, d_old)` (the map would not be unique).
    pub fn fit(
        new: &[f32],
        d_new: usize,
        old: &[f32],
        d_old: usize,
        centre_means: bool,
    ) -> Result<(Alignment, FitReport)> {
        if d_new == 0 || d_old == 0 || !new.len().is_multiple_of(d_new) || !old.len().is_multiple_of(d_old) {
            return Err(Error::InvalidArgument("alignment: rows do not match the dimensions".into()));
        }
        let n = new.len() / d_new;
        if old.len() / d_old != n {
            return Err(Error::InvalidArgument(format!(
                "alignment: {n} rows of the new model but {} of the old",
                old.len() / d_old
            )));
        }
        if n < d_new.max(d_old) {
            return Err(Error::InvalidArgument(format!(
                "alignment needs at least max(d_new, d_old) = {} paired items, got {n}",
                d_new.max(d_old)
            )));
        }
        if new.iter().chain(old).any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument("alignment: a non-finite value in the pairs".into()));
        }
        let mut x = unit_rows(new, d_new);
        let mut y = unit_rows(old, d_old);
        let (mx, my, scale) = if centre_means {
            let (mx, my) = (centre(&mut x, d_new, n), centre(&mut y, d_old, n));
            let scale =
                y.chunks(d_old).map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt()).sum::<f64>() / n as f64;
            x = unit_rows_f64(x, d_new);
            y = unit_rows_f64(y, d_old);
            (mx, my, scale)
        } else {
            (Vec::new(), Vec::new(), 1.0)
        };
        // M = Xᵀ Y (d_new × d_old).
        let mut m = vec![0.0f64; d_new * d_old];
        for (xr, yr) in x.chunks(d_new).zip(y.chunks(d_old)) {
            for (i, &xi) in xr.iter().enumerate() {
                if xi == 0.0 {
                    continue;
                }
                let row = &mut m[i * d_old..(i + 1) * d_old];
                row.iter_mut().zip(yr).for_each(|(r, &yj)| *r += xi * yj);
            }
        }
        let w = if d_new >= d_old {
            let mut d = svd(&m, d_new, d_old)?;
            complete_null_columns(&mut d.u, &d.s, d_new, d_old);
            // W = U Vᵀ: (d_new × d_old)(d_old × d_old).
            mat_mul_t(&d.u, &d.v, d_new, d_old, d_old)
        } else {
            // Mᵀ = U' S V'ᵀ, so M = V' S U'ᵀ and W = V' U'ᵀ.
            let mt: Vec<f64> = (0..d_old)
                .flat_map(|j| (0..d_new).map(move |i| (i, j)))
                .map(|(i, j)| m[i * d_old + j])
                .collect();
            let mut d = svd(&mt, d_old, d_new)?;
            complete_null_columns(&mut d.u, &d.s, d_old, d_new);
            mat_mul_t(&d.v, &d.u, d_new, d_new, d_old)
        };
        let residual = residual_of(&x, &y, &w, n, d_new, d_old);
        let identity_residual = if d_new == d_old {
            let eye: Vec<f64> =
                (0..d_new * d_old).map(|k| f64::from(u8::from(k / d_old == k % d_old))).collect();
            residual_of(&x, &y, &eye, n, d_new, d_old)
        } else {
            f64::NAN
        };
        let a = Alignment {
            d_new,
            d_old,
            w: w.iter().map(|&v| v as f32).collect(),
            mean_new: mx.iter().map(|&v| v as f32).collect(),
            mean_old: my.iter().map(|&v| v as f32).collect(),
            scale: scale as f32,
        };
        let mut cos = 0.0;
        for (xr, yr) in new.chunks(d_new).zip(old.chunks(d_old)) {
            let mapped = a.apply(xr)?;
            let yn = yr.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt().max(1e-30);
            cos += mapped.iter().zip(yr).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>() / yn;
        }
        let report = FitReport { pairs: n, residual, identity_residual, mean_cosine: cos / n as f64 };
        Ok((a, report))
    }

    /// Maps one vector of the new model into the old model's space, scaled to unit length.
    pub fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        if x.len() != self.d_new {
            return Err(Error::InvalidArgument(format!(
                "alignment takes {}-d vectors of the new model, got {}",
                self.d_new,
                x.len()
            )));
        }
        let norm = x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(Error::InvalidArgument("alignment of a zero or non-finite vector".into()));
        }
        let mut v: Vec<f64> = x.iter().map(|&xi| f64::from(xi) / norm).collect();
        if !self.mean_new.is_empty() {
            v.iter_mut().zip(&self.mean_new).for_each(|(a, m)| *a -= f64::from(*m));
            let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if n > 0.0 {
                v.iter_mut().for_each(|a| *a *= f64::from(self.scale) / n);
            }
        }
        let mut out = vec![0.0f64; self.d_old];
        for (i, &vi) in v.iter().enumerate() {
            let row = &self.w[i * self.d_old..(i + 1) * self.d_old];
            out.iter_mut().zip(row).for_each(|(o, &w)| *o += vi * f64::from(w));
        }
        out.iter_mut()
            .zip(self.mean_old.iter().chain(std::iter::repeat(&0.0)))
            .for_each(|(o, m)| *o += f64::from(*m));
        let n = out.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n == 0.0 {
            return Err(Error::InvalidArgument("the aligned vector is zero".into()));
        }
        Ok(out.iter().map(|v| (v / n) as f32).collect())
    }
}

/// Replaces the columns of `u` (`m × n`, row-major) whose singular value is (numerically) zero
/// by unit vectors orthogonal to every other column. Embeddings often span less than their
/// dimension (sentence models leave a direction unused), so `XᵀY` is rank-deficient; any
/// orthonormal completion then gives an equally good map, and `W` stays orthogonal.
fn complete_null_columns(u: &mut [f64], s: &[f64], m: usize, n: usize) {
    let max = s.first().copied().unwrap_or(0.0);
    let mut done: Vec<bool> = s.iter().map(|&x| x > max * 1e-10).collect();
    let mut basis = 0usize;
    for k in 0..n {
        while !done[k] && basis < m {
            // The next standard basis vector minus its projection on every finished column.
            let mut c = vec![0.0f64; m];
            c[basis] = 1.0;
            basis += 1;
            for j in (0..n).filter(|&j| done[j]) {
                let dot: f64 = (0..m).map(|i| c[i] * u[i * n + j]).sum();
                (0..m).for_each(|i| c[i] -= dot * u[i * n + j]);
            }
            let norm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-6 {
                (0..m).for_each(|i| u[i * n + k] = c[i] / norm);
                done[k] = true;
            }
        }
    }
}

/// `A Bᵀ` for row-major `A` (`r × k`) and `B` (`c × k`): an `r × c` product.
fn mat_mul_t(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[i * c + j] = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
        }
    }
    out
}

fn residual_of(x: &[f64], y: &[f64], w: &[f64], n: usize, d_new: usize, d_old: usize) -> f64 {
    let mut total = 0.0;
    for r in 0..n {
        let xr = &x[r * d_new..(r + 1) * d_new];
        let yr = &y[r * d_old..(r + 1) * d_old];
        for j in 0..d_old {
            let p: f64 = (0..d_new).map(|i| xr[i] * w[i * d_old + j]).sum();
            total += (p - yr[j]) * (p - yr[j]);
        }
    }
    total
}

#[cfg(test)]
mod tests;
