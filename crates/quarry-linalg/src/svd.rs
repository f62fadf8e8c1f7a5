//! Thin singular value decomposition of a small dense matrix by one-sided Jacobi rotations
//! (Hestenes, "Inversion of Matrices by Biorthogonalization", J. SIAM 6(1), 1958; Demmel &
//! Veselić, "Jacobi's method is more accurate than QR", SIAM J. Matrix Anal. Appl. 13(4), 1992).
//!
//! Meant for the few hundred by few hundred matrices of embedding alignment (Procrustes maps) and
//! pseudo-inverses, computed in f64. Columns are stored contiguously so each rotation streams two
//! columns.

use quarry_core::{Error, Result};

/// `A = U · diag(s) · Vᵀ` for an `m × n` matrix with `m ≥ n`: `U` is `m × n` with orthonormal
/// columns, `s` the `n` singular values (descending), `V` is `n × n` orthogonal. All row-major.
#[derive(Debug, Clone)]
pub struct Svd {
    /// Rows of the decomposed matrix.
    pub m: usize,
    /// Columns of the decomposed matrix.
    pub n: usize,
    /// `m × n`, row-major.
    pub u: Vec<f64>,
    /// Singular values, descending.
    pub s: Vec<f64>,
    /// `n × n`, row-major.
    pub v: Vec<f64>,
}

/// Decomposes the row-major `m × n` matrix `a` (`m ≥ n ≥ 1`). Errors on a shape mismatch,
/// `m < n`, a non-finite entry, or no convergence within 60 sweeps.
pub fn svd(a: &[f64], m: usize, n: usize) -> Result<Svd> {
    if n == 0 || m < n || a.len() != m * n {
        return Err(Error::InvalidArgument(format!(
            "svd of a {m}×{n} matrix with {} entries: need m ≥ n ≥ 1 and m·n entries",
            a.len()
        )));
    }
    if a.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidArgument("svd of a matrix with a non-finite entry".into()));
    }
    // Column-major working copies: cols[j] is column j of A·V, vcols[j] column j of V.
    let mut cols: Vec<Vec<f64>> = (0..n).map(|j| (0..m).map(|i| a[i * n + j]).collect()).collect();
    let mut vcols: Vec<Vec<f64>> =
        (0..n).map(|j| (0..n).map(|i| f64::from(u8::from(i == j))).collect()).collect();
    let eps = 1e-15;
    let mut converged = false;
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let (alpha, beta, gamma) = {
                    let (cp, cq) = (&cols[p], &cols[q]);
                    let mut al = 0.0;
                    let mut be = 0.0;
                    let mut ga = 0.0;
                    for i in 0..m {
                        al += cp[i] * cp[i];
                        be += cq[i] * cq[i];
                        ga += cp[i] * cq[i];
                    }
                    (al, be, ga)
                };
                if gamma == 0.0 || gamma.abs() <= eps * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                rotate(&mut cols, p, q, c, s);
                rotate(&mut vcols, p, q, c, s);
            }
        }
        if !rotated {
            converged = true;
            break;
        }
    }
    if !converged {
        return Err(Error::InvalidArgument(
            "svd: Jacobi rotations did not converge in 60 sweeps (badly scaled matrix)".into(),
        ));
    }
    let mut order: Vec<(usize, f64)> =
        cols.iter().enumerate().map(|(j, c)| (j, c.iter().map(|x| x * x).sum::<f64>().sqrt())).collect();
    order.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    let mut u = vec![0.0; m * n];
    let mut v = vec![0.0; n * n];
    let mut s = Vec::with_capacity(n);
    for (k, &(j, sigma)) in order.iter().enumerate() {
        s.push(sigma);
        for i in 0..m {
            u[i * n + k] = if sigma > 0.0 { cols[j][i] / sigma } else { 0.0 };
        }
        for i in 0..n {
            v[i * n + k] = vcols[j][i];
        }
    }
    Ok(Svd { m, n, u, s, v })
}

fn rotate(cols: &mut [Vec<f64>], p: usize, q: usize, c: f64, s: f64) {
    let (lo, hi) = cols.split_at_mut(q);
    let (cp, cq) = (&mut lo[p], &mut hi[0]);
    for (x, y) in cp.iter_mut().zip(cq.iter_mut()) {
        let (a, b) = (*x, *y);
        *x = c * a - s * b;
        *y = s * a + c * b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn reconstructs_the_matrix_with_orthonormal_factors() {
        let (m, n) = (9, 5);
        let mut seed = 7;
        let a: Vec<f64> = (0..m * n).map(|_| lcg(&mut seed)).collect();
        let d = svd(&a, m, n).expect("svd");
        for i in 0..m {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| d.u[i * n + k] * d.s[k] * d.v[j * n + k]).sum();
                assert!((r - a[i * n + j]).abs() < 1e-12, "A = U S Vᵀ at ({i},{j})");
            }
        }
        for p in 0..n {
            for q in 0..n {
                let uu: f64 = (0..m).map(|i| d.u[i * n + p] * d.u[i * n + q]).sum();
                let vv: f64 = (0..n).map(|i| d.v[i * n + p] * d.v[i * n + q]).sum();
                let want = f64::from(u8::from(p == q));
                assert!((uu - want).abs() < 1e-12 && (vv - want).abs() < 1e-12);
            }
        }
        assert!(d.s.windows(2).all(|w| w[0] >= w[1]), "descending");
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(svd(&[1.0, 2.0], 1, 2).is_err());
        assert!(svd(&[1.0], 2, 1).is_err());
        assert!(svd(&[f64::NAN], 1, 1).is_err());
    }
}
