//! Token sets of many documents ([`TokenSets`]), exact Chamfer re-ranking of candidates
//! ([`rerank`]), and the per-token candidate heuristic peers use ([`token_candidates`]: search
//! every query token in an index over all document tokens and take the union of the owners;
//! ColBERTv2 / PLAID's candidate generation without centroid pruning, Santhanam et al., NAACL 2022).

use super::chamfer::chamfer;
use quarry_core::{Error, Hit, Result, SearchParams, VectorIndex};

/// Every document's tokens in one row-major array; document `i` owns rows
/// `offsets[i]..offsets[i + 1]`.
#[derive(Debug, Clone)]
pub struct TokenSets {
    dim: usize,
    data: Vec<f32>,
    offsets: Vec<u32>,
}

impl TokenSets {
    /// No documents yet, tokens of `dim` coordinates.
    pub fn new(dim: usize) -> TokenSets {
        TokenSets { dim, data: Vec::new(), offsets: vec![0] }
    }

    /// Appends a document's tokens (`n × dim`, n ≥ 1, finite); returns its id.
    pub fn push(&mut self, tokens: &[f32]) -> Result<u32> {
        let d = self.dim;
        if d == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(d) {
            return Err(Error::InvalidArgument(format!(
                "a token set needs at least one token of {d} values, got {} values",
                tokens.len()
            )));
        }
        if let Some(i) = tokens.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!("token value {i} is not finite")));
        }
        let rows = self.data.len() / d + tokens.len() / d;
        let rows = u32::try_from(rows).map_err(|_| Error::InvalidArgument("more than 2^32 tokens".into()))?;
        self.data.extend_from_slice(tokens);
        self.offsets.push(rows);
        Ok(self.offsets.len() as u32 - 2)
    }

    /// Token sets from their parts: `data` row-major tokens of `dim` values, document `i` owning
    /// rows `offsets[i]..offsets[i + 1]` (`offsets` starts at 0, never decreases, ends at the row
    /// count; every set non-empty, every value finite). Errors name what is wrong.
    pub fn from_parts(dim: usize, data: Vec<f32>, offsets: Vec<u32>) -> Result<TokenSets> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "{} token values do not split into rows of {dim}",
                data.len()
            )));
        }
        let rows = data.len() / dim;
        if offsets.first() != Some(&0) || offsets.last().map(|&o| o as usize) != Some(rows) {
            return Err(Error::InvalidArgument(format!(
                "token offsets must start at 0 and end at the token count {rows}"
            )));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] <= w[0]) {
            return Err(Error::InvalidArgument(format!("token set {i} is empty or its offsets decrease")));
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!("token value {i} is not finite")));
        }
        Ok(TokenSets { dim, data, offsets })
    }

    /// Where each document's tokens start, and the token count last (`len() + 1` entries).
    pub fn offsets(&self) -> &[u32] {
        &self.offsets
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether there are no documents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All tokens, row-major (the rows a per-token index is built over).
    pub fn all_tokens(&self) -> &[f32] {
        &self.data
    }

    /// The tokens of document `id`, or `None` when there is no such document.
    pub fn get(&self, id: u32) -> Option<&[f32]> {
        let (a, b) = (*self.offsets.get(id as usize)?, *self.offsets.get(id as usize + 1)?);
        Some(&self.data[a as usize * self.dim..b as usize * self.dim])
    }

    /// The document owning token row `row`, or `None` past the last token.
    pub fn owner(&self, row: u32) -> Option<u32> {
        if row >= *self.offsets.last()? {
            return None;
        }
        Some(self.offsets.partition_point(|&o| o <= row) as u32 - 1)
    }
}

/// The `k` candidates with the highest exact Chamfer similarity to `query` (`n × dim` tokens),
/// best first, ties by id; unknown ids are skipped and repeated ids count once.
pub fn rerank(query: &[f32], sets: &TokenSets, candidates: &[u32], k: usize) -> Vec<Hit> {
    let mut ids = candidates.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut hits: Vec<Hit> = ids
        .into_iter()
        .filter_map(|id| sets.get(id).map(|p| Hit { id, score: chamfer(query, p, sets.dim) }))
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    hits.truncate(k);
    hits
}

/// The per-token heuristic: the `per_token` nearest document tokens of every query token in
/// `index` (built over [`TokenSets::all_tokens`], ids = token rows), mapped to their documents;
/// the union, ascending.
pub fn token_candidates(
    query: &[f32],
    sets: &TokenSets,
    index: &dyn VectorIndex,
    per_token: usize,
) -> Result<Vec<u32>> {
    let d = sets.dim;
    if d == 0 || query.is_empty() || !query.len().is_multiple_of(d) {
        return Err(Error::InvalidArgument(format!(
            "a query token set needs at least one token of {d} values, got {} values",
            query.len()
        )));
    }
    let mut out = Vec::new();
    for q in query.chunks_exact(d) {
        for h in index.search(q, &SearchParams::top(per_token))? {
            out.extend(sets.owner(h.id));
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
