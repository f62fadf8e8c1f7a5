//! Product quantization (Jégou, Douze & Schmid, "Product quantization for nearest neighbor
//! search", IEEE TPAMI 33(1), 2011): k-means, PQ codebooks with per-query lookup tables (the
//! paper's asymmetric distance computation, ADC), and 4-bit fast-scan.
//!
//! * [`kmeans`]: Lloyd k-means ([`kmeans::kmeans`], [`kmeans::KMeansParams`], [`kmeans::KMeans`]),
//!   seeded and thread-count independent; reused by IVF and SPANN.
//! * `product.rs`: [`PqQuantizer`] — training, subspace layout (`d % m != 0` is zero-padding),
//!   8-bit and 4-bit codes, encode/decode, the [`crate::Quantizer`] implementation.
//! * `estimator.rs`: [`PqEstimator`] — the per-query ADC lookup table; `key` is `m` lookups.
//! * `format.rs`: the `b"PQ"` serialised parameters.
//! * [`fastscan`]: blocked 4-bit codes, u8-quantized tables and the `vpshufb` scan kernels.
//! * `subspace.rs`: one short vector against a whole dimension-major codebook (scalar + AVX2),
//!   shared by k-means assignment, encoding and table construction.

mod estimator;
pub mod fastscan;
mod format;
pub mod kmeans;
mod product;
mod subspace;
#[cfg(test)]
mod tests;

pub use estimator::PqEstimator;
pub use fastscan::{top_candidates, FastScanCodes, QuantizedLut, ScanKernel};
pub use kmeans::{KMeans, KMeansParams};
pub use product::{PqQuantizer, PqTraining};
