//! The vocabulary of text search: documents ([`TextDoc`]), queries ([`TextQuery`]: dense, BM25 or
//! hybrid, several texts fused into one ranking), hits with their score's explanation
//! ([`TextHit`], [`Component`]).

use crate::id::PointId;
use quarry_core::{Error, Result};
use quarry_rank::fusion::Fusion;
use quarry_text::bm25::TermScore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A document to index.
#[derive(Debug, Clone, PartialEq)]
pub struct TextDoc {
    /// External id.
    pub id: PointId,
    /// Its text (stored in the payload under the collection's text key).
    pub text: String,
    /// Other payload.
    pub payload: Map<String, Value>,
}

/// Which ranking a query uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextMode {
    /// Cosine similarity of sentence embeddings.
    Dense,
    /// BM25.
    Bm25,
    /// Dense and BM25 lists fused.
    Hybrid,
}

impl std::str::FromStr for TextMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<TextMode> {
        match s {
            "dense" => Ok(TextMode::Dense),
            "bm25" => Ok(TextMode::Bm25),
            "hybrid" => Ok(TextMode::Hybrid),
            _ => Err(Error::InvalidArgument(format!("mode {s:?}: use dense, bm25 or hybrid"))),
        }
    }
}

/// A text query.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    /// One or more texts for one need; several are retrieved separately and fused
    /// (`multi_fusion`), as in generative query-reformulation ensembles.
    pub texts: Vec<String>,
    /// Ranking.
    pub mode: TextMode,
    /// Hits returned.
    pub k: usize,
    /// How a hybrid query fuses its dense and BM25 lists (in that order); none: the fusion
    /// fitted for the collection on judged queries (`quarry fusion`), else
    /// [`default_hybrid_fusion`].
    pub fusion: Option<Fusion>,
    /// How the lists of several query texts are fused.
    pub multi_fusion: Fusion,
    /// Candidates taken from each list before fusion (at least `k`).
    pub depth: usize,
    /// Graph beam of dense searches.
    pub ef: usize,
    /// Whether hits explain their score.
    pub explain: bool,
    /// Whether hits carry their payloads.
    pub with_payload: bool,
    /// Return only hits whose calibrated relevance probability reaches this (the collection's
    /// calibration for the mode, fitted by `quarry calibrate`); hits then carry it.
    pub min_relevance: Option<f64>,
    /// Re-score dense candidates by the collection's fitted hubness correction.
    pub hubness: bool,
    /// Pseudo-relevance feedback: a first pass, then Rocchio on the dense query and RM3 on the
    /// BM25 query from its top documents, then the final pass.
    pub feedback: Option<Feedback>,
    /// Dense query vectors already in the collection's space, one per text (for example another
    /// model's embeddings mapped by [`crate::TextCollection::align_queries`]); none: the
    /// collection's model embeds the texts.
    pub vectors: Option<Vec<Vec<f32>>>,
}

impl TextQuery {
    /// A query for `text` with `mode`, top `k`, 100 candidates per list; hybrid lists fused by the
    /// collection's fusion (fitted, else [`default_hybrid_fusion`]; set `fusion` to choose one),
    /// several texts fused by RRF (k = 60).
    pub fn new(text: &str, mode: TextMode, k: usize) -> TextQuery {
        TextQuery {
            texts: vec![text.to_string()],
            mode,
            k,
            fusion: None,
            multi_fusion: Fusion::Rrf { k: 60.0 },
            depth: 100,
            ef: crate::collection::DEFAULT_EF,
            explain: false,
            with_payload: true,
            min_relevance: None,
            hubness: false,
            vectors: None,
            feedback: None,
        }
    }
}

/// The hybrid fusion of a collection without a fitted one: an equal-weight convex combination of
/// min-max normalised scores (on SciFact 0.728 nDCG@10 against 0.716 for RRF, in line with Bruch
/// et al.'s finding that a convex combination beats RRF in and out of domain).
pub fn default_hybrid_fusion() -> Fusion {
    Fusion::Weighted { weights: vec![0.5, 0.5], norm: quarry_rank::fusion::Norm::MinMax }
}

/// Pseudo-relevance feedback settings of a text query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feedback {
    /// First-pass documents taken as relevant.
    pub docs: usize,
    /// How the dense query moves (the first pass gives relevant documents only, so `gamma`
    /// has no effect here).
    pub rocchio: quarry_rank::feedback::Rocchio,
    /// How the BM25 query expands.
    pub rm3: quarry_rank::feedback::Rm3,
}

impl Default for Feedback {
    /// 10 documents, Rocchio (1, 0.75, 0.15), RM3 (10 terms, original weight 0.5).
    fn default() -> Self {
        Feedback { docs: 10, rocchio: Default::default(), rm3: Default::default() }
    }
}

/// One list's part in a hit's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    /// Which query text (index into [`TextQuery::texts`]).
    pub query: usize,
    /// `dense` or `bm25`.
    pub source: &'static str,
    /// Rank in that list (from 1).
    pub rank: usize,
    /// Score in that list (cosine or BM25).
    pub score: f32,
    /// Dense: the passage that scored best (0: the document's own vector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passage: Option<u32>,
    /// BM25: each query term's contribution.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<TermScore>,
}

/// One ranked document.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    /// Its id.
    pub id: PointId,
    /// Final score: the list's own score for one list, else the fused score.
    pub score: f64,
    /// Its payload (with the text), unless the query asked for none.
    pub payload: Map<String, Value>,
    /// Score components, when the query asked for them.
    pub explain: Option<Vec<Component>>,
    /// Calibrated probability of relevance, when the query set `min_relevance`.
    pub relevance: Option<f64>,
}
