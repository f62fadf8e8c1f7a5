//! Exact Chamfer (late-interaction MaxSim) similarity: `Σ_{q∈Q} max_{p∈P} <q, p>` (ColBERT's
//! score; Khattab & Zaharia, SIGIR 2020), the oracle MUVERA candidates are re-ranked by.

use quarry_linalg::Kernels;

/// `Σ_q max_p <q, p>` for `n_q × dim` query tokens and `n_p × dim` document tokens (row-major),
/// with the scan kernels' dot product. 0 when either set is empty.
pub fn chamfer(query: &[f32], doc: &[f32], dim: usize) -> f32 {
    if dim == 0 || doc.len() < dim {
        return 0.0;
    }
    let kern = Kernels::get();
    query
        .chunks_exact(dim)
        .map(|q| doc.chunks_exact(dim).map(|p| (kern.dot)(q, p)).fold(f32::NEG_INFINITY, f32::max))
        .sum()
}
