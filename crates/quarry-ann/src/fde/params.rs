//! Parameters of MUVERA fixed dimensional encodings (Dhulipala et al., "MUVERA: Multi-Vector
//! Retrieval via Fixed Dimensional Encodings", NeurIPS 2024, arXiv 2405.19504), with the paper's
//! end-to-end defaults.

use quarry_core::{Error, Result};

/// How each repetition projects a token before it is added to its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerProjection {
    /// Keep the token's `dim` coordinates.
    Identity,
    /// A dense random ±1 matrix to this many coordinates, scaled by `1/sqrt(d_proj)` (the
    /// paper's choice; unbiased for inner products).
    Random(usize),
}

/// Everything an encoder is built from; queries and documents must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdeParams {
    /// Independent repetitions R, concatenated.
    pub repetitions: usize,
    /// SimHash bits per repetition (`2^bits` buckets), at most 30.
    pub simhash_bits: u32,
    /// The inner projection of each repetition.
    pub projection: InnerProjection,
    /// Fill a document's empty bucket with the token whose sign bits are nearest (Hamming).
    pub fill_empty: bool,
    /// Optional final Count-Sketch projection to this many coordinates.
    pub final_dim: Option<usize>,
    /// Seed of every random draw (Gaussians, ±1 signs, the final sketch).
    pub seed: u64,
}

impl Default for FdeParams {
    /// The paper's end-to-end setting: R = 20, 5 SimHash bits (32 buckets), projection to 16,
    /// empty document buckets filled: 20 × 32 × 16 = 10,240 coordinates.
    fn default() -> Self {
        FdeParams {
            repetitions: 20,
            simhash_bits: 5,
            projection: InnerProjection::Random(16),
            fill_empty: true,
            final_dim: None,
            seed: 1,
        }
    }
}

impl FdeParams {
    /// Coordinates of one repetition's block for tokens of `dim` coordinates.
    pub fn block_dim(&self, dim: usize) -> usize {
        match self.projection {
            InnerProjection::Identity => dim,
            InnerProjection::Random(p) => p,
        }
    }

    /// Coordinates of an encoding for tokens of `dim` coordinates (before the final projection:
    /// `R · 2^bits · d_proj`; after it: `final_dim`).
    pub fn output_dim(&self, dim: usize) -> usize {
        self.final_dim.unwrap_or(self.repetitions * (1usize << self.simhash_bits) * self.block_dim(dim))
    }

    /// Checks the values for tokens of `dim` coordinates; the error names the bad one.
    pub fn validate(&self, dim: usize) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if dim == 0 {
            return bad("multi-vector encoding: the token dimension must be at least 1".into());
        }
        if self.repetitions == 0 || self.repetitions > 1024 {
            return bad(format!("MUVERA repetitions must be in 1..=1024, got {}", self.repetitions));
        }
        if self.simhash_bits > 30 {
            return bad(format!("MUVERA SimHash bits must be at most 30, got {}", self.simhash_bits));
        }
        if let InnerProjection::Random(0) = self.projection {
            return bad("MUVERA projection dimension must be at least 1".into());
        }
        if self.final_dim == Some(0) {
            return bad("MUVERA final projection dimension must be at least 1".into());
        }
        let raw = (self.repetitions as u128) * (1u128 << self.simhash_bits) * self.block_dim(dim) as u128;
        if raw > 1 << 24 {
            return bad(format!("a MUVERA encoding of {raw} coordinates is too large (at most 2^24)"));
        }
        Ok(())
    }
}
