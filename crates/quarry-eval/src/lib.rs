//! Evaluation and data for Quarry.
//!
//! * [`io`]: vector and id files — TEXMEX `.fvecs/.ivecs/.bvecs`, `.npy`, JSONL vectors, BEIR folders.
//! * [`trec`]: TREC qrels and run files, and the relevance measures exactly as trec_eval computes them.
//! * [`ann_recall`]: recall of an approximate index against exact neighbours.

pub mod ann_recall;
pub mod io;
pub mod trec;
