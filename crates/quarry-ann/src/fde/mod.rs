//! MUVERA fixed dimensional encodings for multi-vector (late-interaction) fields: a token set
//! becomes one vector whose inner product with a query's encoding approximates the Chamfer
//! similarity, so any single-vector index finds candidates and exact Chamfer re-ranks them
//! (Dhulipala et al., "MUVERA: Multi-Vector Retrieval via Fixed Dimensional Encodings", NeurIPS
//! 2024, arXiv 2405.19504).
//!
//! Files: `params` (R, SimHash bits, projections, fill, seed), `encode` (the encoder),
//! `chamfer` (exact MaxSim), `candidates` (token sets, exact re-ranking, the per-token
//! heuristic), `tests` (the paper's identities and quality against exact Chamfer).

mod candidates;
mod chamfer;
mod encode;
mod params;
#[cfg(test)]
mod tests;

pub use candidates::{rerank, token_candidates, TokenSets};
pub use chamfer::chamfer;
pub use encode::FdeEncoder;
pub use params::{FdeParams, InnerProjection};
