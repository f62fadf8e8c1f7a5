//! `Matrix`: a dense row-major block of f32 vectors, validated on construction.

use crate::{Error, Result};

/// Row-major `rows x dim` f32 matrix. Construction checks the shape; [`check_finite`] checks values.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    data: Vec<f32>,
    dim: usize,
}

impl Matrix {
    /// Wraps `data` as rows of `dim` components. Errors if `dim == 0` or the length is not a multiple.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidArgument("vector dimension must be at least 1".into()));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "{} values do not split into rows of dimension {dim}",
                data.len()
            )));
        }
        Ok(Matrix { data, dim })
    }

    /// Builds a matrix from rows, all of which must have the same length.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self> {
        let dim = rows.first().map(|r| r.as_ref().len()).unwrap_or(0);
        let mut data = Vec::with_capacity(dim * rows.len());
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != dim {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    got: r.len(),
                    context: format!("row {i}"),
                });
            }
            data.extend_from_slice(r);
        }
        Matrix::new(data, dim)
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Row `i` (panics if out of range, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// Iterates over the rows.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.dim)
    }
    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    /// All values, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }
    /// Consumes the matrix, returning its values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
    /// Keeps only the first `n` rows.
    pub fn truncate_rows(&mut self, n: usize) {
        self.data.truncate(n.saturating_mul(self.dim));
    }
}

/// Errors with [`Error::NonFinite`] naming `what` and the component if any value is NaN or infinite.
pub fn check_finite(v: &[f32], what: impl FnOnce() -> String) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(component) => Err(Error::NonFinite { what: what(), component, value: v[component] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked() {
        assert!(Matrix::new(vec![1.0; 6], 4).is_err());
        assert!(Matrix::new(vec![], 0).is_err());
        let m = Matrix::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).expect("valid");
        assert_eq!(m.rows(), 2);
        assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
        assert!(Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).is_err());
    }

    #[test]
    fn non_finite_is_named() {
        let err = check_finite(&[0.0, f32::NAN], || "query 3".into()).expect_err("NaN");
        assert!(err.to_string().contains("query 3"), "{err}");
        assert!(err.to_string().contains("component 1"), "{err}");
    }
}
