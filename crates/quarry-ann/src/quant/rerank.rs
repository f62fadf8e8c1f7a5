//! Exact re-scoring of candidates found on codes (by count, like faiss's `IndexRefine` `k_factor`,
//! or by RaBitQ's error bound: Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a
//! Theoretical Error Bound for Approximate Nearest Neighbor Search", SIGMOD 2024;
//! VectorDB-NTU/RaBitQ-Library `docs/docs/rabitq/reranking.md`): the f32 rows are read from the
//! index's flat store, which is memory-mapped when the index was opened from disk, so only the rows
//! actually re-scored need to be resident.

use crate::flat::FlatIndex;
use quarry_core::Hit;
use quarry_linalg::{Kernels, TopK};

/// Exact top-k among the candidate `ids` (in any order) for prepared query `q`.
pub(crate) fn rescore(flat: &FlatIndex, q: &[f32], ids: &[u32], k: usize) -> Vec<Hit> {
    let timer = flat.is_mapped().then(std::time::Instant::now);
    if timer.is_some() && flat.readahead.wanted() {
        flat.will_need(ids.iter().copied());
    }
    let kern = Kernels::get();
    let mut top = TopK::new(k);
    for (i, &id) in ids.iter().enumerate() {
        if let Some(&next) = ids.get(i + 2) {
            flat.prefetch(next as usize);
        }
        let key = flat.key(kern, q, id as usize);
        if key <= top.threshold() {
            top.push(key, id);
        }
    }
    if let Some(t) = timer {
        flat.readahead.record(t.elapsed().as_nanos());
    }
    FlatIndex::hits(top)
}

/// Exact top-k among candidates given as `(lower bound on the exact key, id)`: candidates are
/// re-scored in ascending order of their bound, and the first whose bound exceeds the k-th
/// exact key found so far ends the pass (no later one can enter the top-k). Returns the hits
/// and how many candidates were re-scored.
pub(crate) fn rescore_bounded(
    flat: &FlatIndex,
    q: &[f32],
    mut cands: Vec<(f32, u32)>,
    k: usize,
) -> (Vec<Hit>, usize) {
    cands.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let timer = flat.is_mapped().then(std::time::Instant::now);
    if timer.is_some() && flat.readahead.wanted() {
        // The candidates with the lowest bounds: those re-scored unless the k-th exact key
        // found first rules them out (about k of them, rarely more than twice that).
        flat.will_need(cands.iter().take(2 * k + 4).map(|c| c.1));
    }
    let kern = Kernels::get();
    let mut top = TopK::new(k);
    let mut scored = 0;
    for (i, &(bound, id)) in cands.iter().enumerate() {
        if bound > top.threshold() {
            break;
        }
        if let Some(&(_, next)) = cands.get(i + 2) {
            flat.prefetch(next as usize);
        }
        let key = flat.key(kern, q, id as usize);
        scored += 1;
        if key <= top.threshold() {
            top.push(key, id);
        }
    }
    if let Some(t) = timer {
        flat.readahead.record(t.elapsed().as_nanos());
    }
    (FlatIndex::hits(top), scored)
}
