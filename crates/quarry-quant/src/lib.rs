//! Quarry's vector compression: scalar quantization (faiss's `ScalarQuantizer`), product
//! quantization with 4-bit fast-scan, and RaBitQ / extended RaBitQ. Each module names its papers.
//!
//! Every family implements [`Quantizer`]: trained on a sample, it encodes a vector into a fixed
//! number of bytes (`code_len`), decodes where a reconstruction is defined, and prepares a
//! per-query [`Estimator`] that turns a code into an estimated *key* — the same lower-is-better
//! distance the exact indexes rank by (`-<q,x>` for inner product and cosine, `|q-x|²` for L2).
//! Indexes scan or walk codes with the estimator and re-score the best candidates exactly.
//!
//! * [`sq`]: scalar quantization, 8 or 4 bits per dimension with per-dimension ranges.
//! * [`pq`]: k-means ([`pq::kmeans`]), product quantization with per-query lookup tables, and
//!   4-bit fast-scan over blocks of 32 codes ([`pq::fastscan`]).
//! * [`rabitq`]: a random orthogonal rotation, 1-bit RaBitQ codes with the unbiased estimator
//!   and its error bound, and extended RaBitQ with 2–8 bits per dimension.
//! * [`quantizer`]: the traits and the code-arena helpers shared by all of them.

pub mod pq;
pub mod quantizer;
pub mod rabitq;
pub mod sq;

pub use quantizer::{encode_all, Estimator, Quantizer};
