//! Evaluation and data for Quarry.
//!
//! * [`io`]: vector and id files — TEXMEX `.fvecs/.ivecs/.bvecs`, `.npy`, JSONL vectors, BEIR folders.
//! * [`trec`]: TREC qrels and run files, and the relevance measures exactly as trec_eval computes them.
//! * [`ann_recall`]: recall of an approximate index against exact neighbours.
//! * [`bench`]: the timed ANN benchmark runner and its JSON row (shared with the peer script).

pub mod ann_recall;
pub mod bench;
pub mod io;
pub mod trec;
