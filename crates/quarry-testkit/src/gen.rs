//! Deterministic generators of test matrices.

use quarry_core::Matrix;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn normal(rng: &mut SmallRng) -> f32 {
    // Box-Muller; u1 in (0,1] so the log is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `n` vectors of standard normal components.
pub fn gaussian(n: usize, dim: usize, seed: u64) -> Matrix {
    let mut rng = SmallRng::seed_from_u64(seed);
    let data = (0..n * dim).map(|_| normal(&mut rng)).collect();
    Matrix::new(data, dim.max(1)).unwrap_or_else(|e| panic!("generator shape: {e}"))
}

/// `n` vectors around `clusters` Gaussian centres (spread `noise`), like real embeddings.
pub fn clustered(n: usize, dim: usize, clusters: usize, noise: f32, seed: u64) -> Matrix {
    let centres = gaussian(clusters.max(1), dim, seed ^ 0xC1);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = centres.row(rng.random_range(0..centres.rows()));
        data.extend(c.iter().map(|&x| x + noise * normal(&mut rng)));
    }
    Matrix::new(data, dim.max(1)).unwrap_or_else(|e| panic!("generator shape: {e}"))
}

/// `m` followed by `copies` extra copies of each of its first rows (interleaved at the end).
pub fn with_duplicates(m: &Matrix, copies: usize) -> Matrix {
    let mut data = m.as_slice().to_vec();
    let dups = m.rows() / 4;
    for _ in 0..copies {
        for i in 0..dups {
            data.extend_from_slice(m.row(i));
        }
    }
    Matrix::new(data, m.dim()).unwrap_or_else(|e| panic!("generator shape: {e}"))
}

/// A seeded source of f64 draws for tests that build their own data (uniform and standard
/// normal), so test files do not each carry a generator.
#[derive(Debug, Clone)]
pub struct TestRng(SmallRng);

impl TestRng {
    /// Seeded with `seed`.
    pub fn new(seed: u64) -> TestRng {
        TestRng(SmallRng::seed_from_u64(seed))
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.random()
    }

    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f64 {
        f64::from(normal(&mut self.0))
    }
}
