//! Exact Chamfer (late-interaction MaxSim) similarity: `Σ_{q∈Q} max_{p∈P} <q, p>` (ColBERT's
//! score; Khattab & Zaharia, SIGIR 2020), the oracle MUVERA candidates are re-ranked by.

use quarry_linalg::Kernels;

/// `Σ_q max_p <q, p>` for `n_q × dim` query tokens and `n_p × dim` document tokens (row-major),
/// each query token scanned over the document's tokens with the scan kernel (`dot_many`, several
/// rows per step). 0 when either set is empty.
pub fn chamfer(query: &[f32], doc: &[f32], dim: usize) -> f32 {
    if dim == 0 || doc.len() < dim {
        return 0.0;
    }
    let doc = &doc[..doc.len() / dim * dim];
    let kern = Kernels::get();
    let mut buf = [0f32; 256];
    let rows_per = (buf.len()).max(1);
    let mut total = 0f32;
    for q in query.chunks_exact(dim) {
        let mut best = f32::NEG_INFINITY;
        for block in doc.chunks(rows_per * dim) {
            let out = &mut buf[..block.len() / dim];
            (kern.dot_many)(q, block, out);
            best = out.iter().copied().fold(best, f32::max);
        }
        total += best;
    }
    total
}
