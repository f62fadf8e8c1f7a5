//! Quarry's numeric building blocks.
//!
//! * [`kernels`]: inner product and squared L2 for f32 and f16-stored vectors, with a scalar
//!   reference and SIMD paths (AVX-512, AVX2+FMA, NEON) chosen once at run time.
//! * [`AlignedVec`]: 64-byte aligned storage (huge-page advised when large) for scanned data.
//! * [`TopK`]: bounded selection of the k smallest distances with the engine's tie rule.
//! * [`svd`]: thin SVD by one-sided Jacobi rotations; [`procrustes`]: orthogonal maps between
//!   embedding spaces (querying an old model's index with a new model).

mod aligned;
pub mod kernels;
pub mod procrustes;
pub mod svd;
mod topk;

pub use aligned::AlignedVec;
pub use kernels::{detected_isa, Isa, Kernels};
pub use topk::TopK;
