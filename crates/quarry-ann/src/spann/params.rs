//! SPANN build parameters ([`SpannParams`]) and search parameters ([`SpannSearch`]), with
//! SPTAG's defaults where they apply (microsoft/SPTAG,
//! `AnnService/inc/Core/SPANN/ParameterDefinitionList.h`).

use super::heads::HeadSearch;
use crate::hnsw::HnswParams;
use crate::quant::QuantSpec;
use quarry_core::{Error, Result};

/// How a SPANN index is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpannParams {
    /// Fraction of the vectors that become posting-list heads (SPTAG `Ratio`, default 0.1;
    /// SPTAG's own default is 0.2, its SIFT1B example 0.12).
    pub head_ratio: f64,
    /// Most postings one vector is written to (SPTAG `ReplicaCount`, 8).
    pub replicas: usize,
    /// RNG rule strength (SPTAG `RNGFactor`, 1.0): a vector skips head `h_j` when an accepted head
    /// `h_i` has `rng_factor · d(h_i, h_j) < d(x, h_j)` (squared L2).
    pub rng_factor: f32,
    /// Heads considered per vector at build time (SPTAG `InternalResultNum`, 64).
    pub candidates: usize,
    /// Closure rule: a vector is a replication candidate for head `h_j` only if
    /// `d(x, h_j) ≤ closure · d(x, h_1)` (squared L2; default 4.0, about 2× in plain distance).
    pub closure: f32,
    /// Most entries per posting list (0 = derived from 3 pages of 4 KiB, SPTAG's
    /// `PostingPageLimit`, but at least 118 entries, its `PostingVectorLimit`). Lists are cut
    /// farthest-first, never removing a vector's last posting.
    pub posting_cap: usize,
    /// Head graph (an HNSW over the head vectors, squared L2).
    pub graph: HnswParams,
    /// Seed of the clustering.
    pub seed: u64,
    /// What posting entries hold: `None` = the f32 vectors; a code spec (SQ8, RaBitQ, ...) =
    /// compressed codes (4–24× fewer bytes read per list), the candidates re-scored exactly from
    /// an f32 file (the best `k × rerank`, or by RaBitQ error bound when `rerank` is 0).
    pub codes: Option<QuantSpec>,
    /// With codes: keep one code per vector in memory and only ids in the posting lists (a list
    /// read is then a few hundred bytes; the codes cost `n × code bytes` of RAM, replicas free).
    pub codes_in_ram: bool,
}

impl Default for SpannParams {
    fn default() -> Self {
        SpannParams {
            head_ratio: 0.1,
            replicas: 8,
            rng_factor: 1.0,
            candidates: 64,
            closure: 4.0,
            posting_cap: 0,
            graph: HnswParams { m: 16, ef_construction: 200, ..HnswParams::default() },
            seed: 1234,
            codes: None,
            codes_in_ram: false,
        }
    }
}

impl SpannParams {
    /// Checks ranges; errors name the parameter.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.head_ratio > 0.0 && self.head_ratio <= 1.0) {
            return bad(format!("spann: head_ratio={} must be in (0, 1]", self.head_ratio));
        }
        if self.replicas == 0 || self.candidates == 0 {
            return bad("spann: replicas and candidates must be at least 1".into());
        }
        if !(self.rng_factor.is_finite() && self.rng_factor > 0.0) {
            return bad(format!("spann: rng_factor={} must be positive", self.rng_factor));
        }
        if self.closure.is_nan() || self.closure < 1.0 {
            return bad(format!("spann: closure={} must be at least 1", self.closure));
        }
        Ok(())
    }

    /// The posting cap in entries for `dim`-dimensional f32 vectors.
    pub fn cap_for(&self, dim: usize) -> usize {
        if self.posting_cap > 0 {
            return self.posting_cap;
        }
        ((3 * 4096) / (4 + 4 * dim.max(1))).max(118)
    }
}

/// How a SPANN index is searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpannSearch {
    /// Most posting lists read per query (SPTAG `SearchInternalResultNum`, 64).
    pub max_postings: usize,
    /// Query-aware pruning: read list j only if `d(q, h_j) ≤ max_dist_ratio · d(q, h_1)` (squared
    /// L2, like SPTAG's `MaxDistRatio`; `f32::INFINITY` disables pruning).
    pub max_dist_ratio: f32,
    /// Beam of the head-graph search (at least `max_postings`).
    pub head_ef: usize,
    /// With coded entries: candidates re-scored exactly per result (0 with RaBitQ codes: by
    /// error bound).
    pub rerank: usize,
    /// How the nearest heads are found (codes scan or graph walk).
    pub head_search: HeadSearch,
    /// Before scanning, ask the OS to read every list to probe (`POSIX_FADV_WILLNEED`): parallel
    /// disk reads when the lists are not in the page cache; a small cost per list when they are.
    pub readahead: bool,
}

impl Default for SpannSearch {
    fn default() -> Self {
        SpannSearch {
            max_postings: 64,
            max_dist_ratio: 8.0,
            head_ef: 64,
            rerank: 4,
            head_search: HeadSearch::Auto,
            readahead: false,
        }
    }
}
