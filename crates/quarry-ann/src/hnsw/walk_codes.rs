//! The codes a plain `hnsw` walk ranks by: 8-bit scalar codes of every row, held beside the rows
//! (a quarter of the f32 rows' bytes, half of f16 rows'; L2 codes add 4 bytes for the norm), with
//! the best `3k` of the beam re-scored exactly from the rows, so every reported score is exact. A
//! hop then reads one 8-bit row (100 bytes at 100-d, 384 at 384-d) instead of the f32 row; the
//! graph is built and re-linked with exact distances. The walk's beam is at least `3k` wide.
//! Decision 0015 records the measurements; `HnswParams::walk_codes = false` walks on the rows.
//!
//! The codes are derived data: they are not stored in the index file but trained (a seeded
//! sample, so the same on every open) and encoded when an index is built or opened. Indexes with
//! fewer than [`MIN_ROWS`] rows walk exactly. Appends encode the new rows with the trained
//! quantizer and retrain once the index has doubled since the last training, so ranges learned
//! on a small first batch do not clamp a large later one.

use super::builder::HnswIndex;
use super::search::Walked;
use super::HnswSearch;
use crate::quant::codes::{with_quantizer, CodeKeys, Codes};
use crate::quant::rerank::rescore;
use crate::quant::{QuantParams, QuantSpec};
use quarry_core::{Hit, IdFilter, Result};
use quarry_quant::{Estimator, Quantizer};

/// Below this many rows an index walks on its rows.
pub const MIN_ROWS: usize = 256;

/// Candidates re-scored exactly per result: the SQ8 default of the compressed graphs, which
/// measured the same recall as the exact walk at every ef on both dev sets.
const RESCORE_PER_RESULT: usize = 3;

/// SQ8 codes of every row and the row count they were trained on.
#[derive(Debug)]
pub(crate) struct WalkCodes {
    pub(crate) codes: Codes,
    trained_rows: usize,
}

impl WalkCodes {
    /// Heap bytes of the codes and quantizer.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.codes.memory_bytes()
    }
}

fn sq8() -> QuantParams {
    QuantParams::new(QuantSpec::Sq { bits: 8 })
}

impl HnswIndex {
    /// Trains and encodes the walk codes when `params.walk_codes` asks for them and the index is
    /// large enough; drops them otherwise.
    pub(crate) fn refresh_walk_codes(&mut self) -> Result<()> {
        let n = self.flat.rows();
        self.walk_codes = None;
        if !self.params.walk_codes || n < MIN_ROWS {
            return Ok(());
        }
        // One pass over every row: read a mapped file ahead, then back to the walk's random reads.
        self.flat.advise_sequential();
        let codes = Codes::train(&self.flat, sq8());
        self.flat.advise_random();
        // The codes are derived data: rows the quantizer cannot train on (a dimension's range
        // too wide for f32) leave the index walking on its rows, never failing it.
        if let Ok(codes) = codes {
            if codes.quant.is_some() {
                self.walk_codes = Some(WalkCodes { codes, trained_rows: n });
            }
        }
        Ok(())
    }

    /// After rows `first..` were appended: encodes them, or retrains when the index has doubled
    /// since the last training (or just reached [`MIN_ROWS`]).
    pub(crate) fn walk_codes_appended(&mut self, first: usize) -> Result<()> {
        let n = self.flat.rows();
        let Some(wc) = &mut self.walk_codes else {
            return self.refresh_walk_codes();
        };
        if n >= 2 * wc.trained_rows {
            return self.refresh_walk_codes();
        }
        let Some(quant) = &wc.codes.quant else { return Ok(()) };
        let len = wc.codes.code_len;
        wc.codes.arena.resize_zeroed(n * len);
        for id in first..n {
            let row = self.flat.row_query(id);
            let code = &mut wc.codes.arena.as_mut_slice()[id * len..(id + 1) * len];
            with_quantizer!(quant, q => q.encode(&row, code));
        }
        Ok(())
    }

    /// Re-encodes row `id` after its vector changed.
    pub(crate) fn walk_codes_changed(&mut self, id: u32) {
        let Some(wc) = &mut self.walk_codes else { return };
        let Some(quant) = &wc.codes.quant else { return };
        let len = wc.codes.code_len;
        let row = self.flat.row_query(id as usize);
        if let Some(code) = wc.codes.arena.as_mut_slice().get_mut(id as usize * len..(id as usize + 1) * len)
        {
            with_quantizer!(quant, q => q.encode(&row, code));
        }
    }

    /// Turns the walk on codes on or off (training or dropping the codes).
    pub fn set_walk_codes(&mut self, on: bool) -> Result<()> {
        self.params.walk_codes = on;
        self.refresh_walk_codes()
    }

    /// Whether searches walk on 8-bit codes (then re-score exactly).
    pub fn walks_on_codes(&self) -> bool {
        self.walk_codes.as_ref().is_some_and(|w| w.codes.quant.is_some())
    }

    /// A search walking on the codes, or `None` when the index has none.
    pub(crate) fn search_on_codes(
        &self,
        q: &[f32],
        k: usize,
        search: &HnswSearch,
        filter: Option<&IdFilter>,
    ) -> Option<Vec<Hit>> {
        let codes = &self.walk_codes.as_ref()?.codes;
        let quant = codes.quant.as_ref()?;
        Some(with_quantizer!(quant, qz => {
            let est = qz.estimator(q);
            self.codes_walk(&est, codes, q, k, search, filter)
        }))
    }

    fn codes_walk<E: Estimator>(
        &self,
        est: &E,
        codes: &Codes,
        q: &[f32],
        k: usize,
        search: &HnswSearch,
        filter: Option<&IdFilter>,
    ) -> Vec<Hit> {
        let keys = CodeKeys { est, codes };
        let rescored = k.saturating_mul(RESCORE_PER_RESULT);
        match self.walk_candidates(keys, k, search.ef.max(rescored), search, filter) {
            Walked::Empty => Vec::new(),
            Walked::Exact => self.exact(q, k, filter),
            Walked::Found(beam) => {
                let ids: Vec<u32> = beam.iter().take(rescored).map(|c| c.id).collect();
                rescore(&self.flat, q, &ids, k)
            }
        }
    }
}
