//! Head search on codes (the first step of a SPANN search: Chen et al., NeurIPS 2021, Sec. 3):
//! [`HeadCodes`] holds, for every head, a 4-bit PQ fast-scan code (m = dim/4: 2 bits per dimension)
//! and an SQ8 code. A query finds its nearest heads either by scanning the fast-scan codes in SIMD
//! blocks and re-ranking the best `depth` by SQ8 ([`HeadSearch::Scan`], the default up to
//! [`SCAN_MAX_HEADS`] heads), or by walking the head graph with SQ8 keys ([`HeadSearch::Graph`]).
//! Either way only codes are read: the f32 head vectors (memory-mapped in the head graph file) are
//! never touched by a search, so they do not count in resident memory.

use crate::flat::FlatIndex;
use crate::hnsw::search::Walked;
use crate::hnsw::{HnswIndex, HnswSearch};
use crate::quant::codes::{AnyQuantizer, CodeKeys, Codes};
use crate::quant::{QuantParams, QuantSpec};
use quarry_core::{Error, Hit, Result, VectorIndex};
use quarry_linalg::AlignedVec;
use quarry_quant::pq::{top_candidates, PqQuantizer, QuantizedLut};
use quarry_quant::sq::SqQuantizer;
use quarry_quant::{Estimator, Quantizer};

/// Up to this many heads, [`HeadSearch::Auto`] scans the head codes; above, it walks the graph.
/// (On wndict-384 with 10,800 heads the scan at depth 64 took ≈ 47 µs per query against ≈ 170 µs
/// for the graph at ef 64, and found the true nearest heads more often; the scan grows linearly
/// with the head count, the graph about logarithmically.)
pub const SCAN_MAX_HEADS: usize = 65_536;

/// Up to this many bytes of SQ8 head codes, a scan reads them all instead of fast-scanning the
/// coarse codes first (e.g. 680 heads of 384-d, 13,000 of 16-d).
const SMALL_SQ8_BYTES: usize = 1 << 18;

/// How a query finds its nearest heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadSearch {
    /// [`HeadSearch::Scan`] with depth `max(64, 2 × max_postings)` up to [`SCAN_MAX_HEADS`]
    /// heads, else [`HeadSearch::Graph`].
    #[default]
    Auto,
    /// Walk the head graph (beam `head_ef`) with SQ8 keys.
    Graph,
    /// Fast-scan every head's PQ code and re-rank the best `depth` by SQ8.
    Scan {
        /// Candidates re-ranked by SQ8 (at least `max_postings`).
        depth: usize,
    },
}

/// Codes of the head vectors (squared L2 keys), in memory.
#[derive(Debug)]
pub(crate) struct HeadCodes {
    /// 4-bit PQ codes, also laid out for fast-scan.
    coarse: Codes,
    /// SQ8 codes: keys for re-ranking and for the graph walk.
    fine: Codes,
    /// Codes changed since the fast-scan blocks were built.
    stale: bool,
}

/// Sub-spaces of the coarse PQ: the largest divisor of `dim` that is at most `dim / 4`.
fn coarse_m(dim: usize) -> usize {
    (1..=(dim / 4).max(1)).rev().find(|m| dim.is_multiple_of(*m)).unwrap_or(1)
}

impl HeadCodes {
    /// Trains and encodes both code sets on the rows of `heads` (an L2 flat store); `None` when
    /// there are too few heads to train 4-bit PQ (fewer than 16): the graph is walked instead.
    pub(crate) fn train(heads: &FlatIndex, seed: u64) -> Result<Option<HeadCodes>> {
        let m = coarse_m(heads.dim());
        let pq = QuantParams { spec: QuantSpec::Pq { m, nbits: 4 }, rerank: 1, train_size: 65_536, seed };
        let coarse = Codes::train(heads, pq)?;
        let fine = Codes::train(heads, QuantParams { seed, ..QuantParams::new(QuantSpec::Sq { bits: 8 }) })?;
        if coarse.fastscan.is_none() || fine.quant.is_none() {
            return Ok(None);
        }
        Ok(Some(HeadCodes { coarse, fine, stale: false }))
    }

    /// Heap bytes held (codes, fast-scan blocks, quantizer parameters).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.coarse.memory_bytes() + self.fine.memory_bytes()
    }

    /// Serialised form (meta section 5): `u32 len + PQ parameters`, `u32 len + SQ parameters`,
    /// the PQ codes (heads × m/2 bytes), the SQ8 codes (heads × dim bytes).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for codes in [&self.coarse, &self.fine] {
            let q = match &codes.quant {
                Some(AnyQuantizer::Pq(q)) => q.to_bytes(),
                Some(AnyQuantizer::Sq(q)) => q.to_bytes(),
                _ => Vec::new(),
            };
            out.extend_from_slice(&(q.len() as u32).to_le_bytes());
            out.extend_from_slice(&q);
        }
        out.extend_from_slice(self.coarse.arena.as_slice());
        out.extend_from_slice(self.fine.arena.as_slice());
        out
    }

    /// Reads [`HeadCodes::to_bytes`] for `heads` heads of dimension `dim` (empty bytes: none).
    pub(crate) fn from_bytes(b: &[u8], heads: usize, dim: usize, seed: u64) -> Result<Option<HeadCodes>> {
        if b.is_empty() {
            return Ok(None);
        }
        let bad = |what: &str| Error::InvalidArgument(format!("SPANN head codes: {what}"));
        let mut at = 0usize;
        let mut take = |len: usize| -> Result<&[u8]> {
            let s = b
                .get(at..at.checked_add(len).ok_or_else(|| bad("length overflow"))?)
                .ok_or_else(|| bad("truncated"))?;
            at += len;
            Ok(s)
        };
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad("truncated"))?) as usize;
        let pq = PqQuantizer::from_bytes(take(len)?)?;
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad("truncated"))?) as usize;
        let sq = SqQuantizer::from_bytes(take(len)?)?;
        let l2 = pq.metric() == quarry_core::Metric::L2 && sq.metric() == quarry_core::Metric::L2;
        if pq.dim() != dim || sq.dim() != dim || pq.nbits() != 4 || !l2 {
            return Err(bad("quantizers do not match the index (dimension, bits or metric)"));
        }
        let (pl, sl) = (pq.code_len(), sq.code_len());
        let mut coarse = AlignedVec::zeroed(heads * pl);
        coarse.as_mut_slice().copy_from_slice(take(heads * pl)?);
        let mut fine = AlignedVec::zeroed(heads * sl);
        fine.as_mut_slice().copy_from_slice(take(heads * sl)?);
        if at != b.len() {
            return Err(bad("trailing bytes"));
        }
        let m = pq.m();
        let coarse = Codes::assemble(
            AnyQuantizer::Pq(pq),
            pl,
            coarse,
            QuantParams { spec: QuantSpec::Pq { m, nbits: 4 }, rerank: 1, train_size: 65_536, seed },
        )?;
        let fine = Codes::assemble(
            AnyQuantizer::Sq(sq),
            sl,
            fine,
            QuantParams { seed, ..QuantParams::new(QuantSpec::Sq { bits: 8 }) },
        )?;
        Ok(Some(HeadCodes { coarse, fine, stale: false }))
    }

    /// Sets the codes of head `r` (`r` = head count appends one) from its vector `x`; call
    /// [`HeadCodes::refresh`] before searching again.
    pub(crate) fn set(&mut self, r: usize, x: &[f32]) {
        for codes in [&mut self.coarse, &mut self.fine] {
            let len = codes.code_len;
            if (r + 1) * len > codes.arena.len() {
                codes.arena.resize_zeroed((r + 1) * len);
            }
            let out = &mut codes.arena.as_mut_slice()[r * len..(r + 1) * len];
            match &codes.quant {
                Some(AnyQuantizer::Pq(q)) => q.encode(x, out),
                Some(AnyQuantizer::Sq(q)) => q.encode(x, out),
                Some(AnyQuantizer::RaBitQ(q)) => q.encode(x, out),
                None => {}
            }
        }
        self.stale = true;
    }

    /// Rebuilds the fast-scan blocks after [`HeadCodes::set`].
    pub(crate) fn refresh(&mut self) -> Result<()> {
        if self.stale {
            if let Some(AnyQuantizer::Pq(pq)) = &self.coarse.quant {
                self.coarse.fastscan =
                    Some(quarry_quant::pq::FastScanCodes::from_pq(pq, self.coarse.arena.as_slice())?);
            }
            self.stale = false;
        }
        Ok(())
    }

    fn parts(&self) -> Option<(&PqQuantizer, &quarry_quant::pq::FastScanCodes, &SqQuantizer)> {
        match (&self.coarse.quant, &self.coarse.fastscan, &self.fine.quant) {
            (Some(AnyQuantizer::Pq(pq)), Some(fs), Some(AnyQuantizer::Sq(sq))) => Some((pq, fs, sq)),
            _ => None,
        }
    }

    /// The `probes` nearest heads of prepared query `q` by SQ8 key among the `depth` best by
    /// fast-scan, nearest first, scored `-key` (squared L2) like the head graph's hits.
    pub(crate) fn scan(&self, q: &[f32], probes: usize, depth: usize) -> Vec<Hit> {
        let Some((pq, fs, sq)) = self.parts() else { return Vec::new() };
        let fine = sq.estimator(q);
        let heads = self.fine.arena.len() / self.fine.code_len.max(1);
        let mut keyed: Vec<(f32, u32)> = if heads * self.fine.code_len <= SMALL_SQ8_BYTES {
            // Few or low-dimensional heads: their SQ8 codes are cheaper to scan than a coarse
            // 4-bit code is accurate (at 16-d it has 16 bits).
            (0..heads as u32).map(|id| (fine.key(self.fine.code(id)), id)).collect()
        } else {
            let est = pq.estimator(q);
            let Ok(lut) = QuantizedLut::from_estimator(&est) else { return Vec::new() };
            let cands = top_candidates(fs, &lut, depth.max(probes));
            cands.into_iter().map(|(_, id)| (fine.key(self.fine.code(id)), id)).collect()
        };
        keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        keyed.truncate(probes);
        keyed.into_iter().map(|(k, id)| Hit { id, score: -k }).collect()
    }

    /// The `probes` nearest heads by a walk of `graph` with SQ8 keys and beam `ef`.
    pub(crate) fn walk(&self, graph: &HnswIndex, q: &[f32], probes: usize, ef: usize) -> Vec<Hit> {
        let Some((_, _, sq)) = self.parts() else { return Vec::new() };
        let est = sq.estimator(q);
        let keys = CodeKeys { est: &est, codes: &self.fine };
        match graph.walk_candidates(keys, probes, ef.max(probes), &HnswSearch::ef(ef), None) {
            Walked::Found(beam) => {
                beam.into_iter().take(probes).map(|c| Hit { id: c.id, score: -c.d }).collect()
            }
            // An exhaustive answer (the graph has very few live nodes): rank every head by SQ8.
            Walked::Exact => self.scan(q, probes, graph.len()),
            Walked::Empty => Vec::new(),
        }
    }
}
