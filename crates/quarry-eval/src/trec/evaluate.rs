//! Per-query and mean measures, computed exactly as trec_eval v9.0.8 (and pytrec_eval) do.
//!
//! Each query's results are sorted by score descending, ties broken by docno descending in byte
//! (`strcmp`) order, then optionally truncated to `max_results` (`-M`). A retrieved document's
//! grade is its qrels value, or "non-pool" (-1) if unjudged; a negative qrels grade becomes
//! "unjudged in pool" (-2). Relevance is `grade >= relevance_level`; nDCG ignores the level and
//! uses positive grades as gains. All sums are in f64, in rank order, like trec_eval.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::measures::Measure;
use super::qrels::Qrels;
use super::run::Run;

const NONPOOL: i32 = -1;
const UNJUDGED_IN_POOL: i32 = -2;

/// Evaluation options, mirroring trec_eval's command-line flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// `-l`: minimum grade that counts as relevant (default 1).
    pub relevance_level: i32,
    /// `-c`: average over every qrels query, a query missing from the run counting 0.
    /// Otherwise (the default) the mean is over queries present in both run and qrels.
    pub complete: bool,
    /// `-M`: keep only the top n results of each query after sorting.
    pub max_results: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { relevance_level: 1, complete: false, max_results: None }
    }
}

/// Measures of a run: per evaluated query and summarised over the query set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The measures, in the order requested.
    pub measures: Vec<Measure>,
    /// For each query in both run and qrels, its values aligned with `measures`.
    pub per_query: BTreeMap<String, Vec<f64>>,
    /// `(name, summary)` aligned with `measures`: the mean over the query set (divided by
    /// `num_q`), except for count measures (`num_ret`, …), which are summed as trec_eval does.
    /// All zero when `num_q` is 0.
    pub mean: Vec<(String, f64)>,
    /// Size of the query set: evaluated queries, or every qrels query with `complete`.
    pub num_q: usize,
}

impl Evaluation {
    /// The value of measure `name` (e.g. `"ndcg_cut_10"`) for query `qid`.
    pub fn query_value(&self, qid: &str, name: &str) -> Option<f64> {
        let idx = self.measures.iter().position(|m| m.name() == name)?;
        self.per_query.get(qid).map(|v| v[idx])
    }

    /// The summary value of measure `name`.
    pub fn mean_value(&self, name: &str) -> Option<f64> {
        self.mean.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// Evaluates `run` against `qrels`; see [`EvalOptions`] for the query set.
pub fn evaluate(qrels: &Qrels, run: &Run, measures: &[Measure], opts: &EvalOptions) -> Evaluation {
    let mut per_query = BTreeMap::new();
    let mut sums = vec![0.0f64; measures.len()];
    for (qid, hits) in run.iter() {
        let Some(judged) = qrels.get(qid) else { continue };
        let values = evaluate_query(judged, hits, measures, opts);
        for (sum, v) in sums.iter_mut().zip(&values) {
            *sum += v;
        }
        per_query.insert(qid.to_string(), values);
    }
    let num_q = if opts.complete { qrels.len() } else { per_query.len() };
    let mean = measures
        .iter()
        .zip(sums)
        .map(|(m, sum)| {
            let v = if m.is_count() || num_q == 0 { sum } else { sum / num_q as f64 };
            (m.name(), v)
        })
        .collect();
    Evaluation { measures: measures.to_vec(), per_query, mean, num_q }
}

/// The measures of one query: `judged` maps docno → grade, `hits` are `(docno, score)` in any order.
pub fn evaluate_query(
    judged: &BTreeMap<String, i32>,
    hits: &[(String, f64)],
    measures: &[Measure],
    opts: &EvalOptions,
) -> Vec<f64> {
    let q = RankedQuery::new(judged, hits, opts);
    measures.iter().map(|m| q.measure(*m)).collect()
}

/// A query's retrieved grades in trec_eval rank order plus the qrels statistics.
struct RankedQuery {
    /// Grade at each rank (NONPOOL / UNJUDGED_IN_POOL for unjudged documents).
    rels: Vec<i32>,
    /// Positive qrels grades, descending: the ideal gain vector.
    ideal: Vec<i32>,
    /// R: qrels entries with grade >= 0 and >= the relevance level.
    num_rel: usize,
    level: i32,
}

impl RankedQuery {
    fn new(judged: &BTreeMap<String, i32>, hits: &[(String, f64)], opts: &EvalOptions) -> Self {
        let mut order: Vec<&(String, f64)> = hits.iter().collect();
        order.sort_by(|a, b| {
            // Scores are never NaN (Run checks), so partial_cmp is total; -0.0 == 0.0 as in C.
            b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then_with(|| b.0.as_bytes().cmp(a.0.as_bytes()))
        });
        if let Some(m) = opts.max_results {
            order.truncate(m);
        }
        let rels = order
            .iter()
            .map(|(docno, _)| match judged.get(docno) {
                None => NONPOOL,
                Some(&r) if r < 0 => UNJUDGED_IN_POOL,
                Some(&r) => r,
            })
            .collect();
        let mut ideal: Vec<i32> = judged.values().copied().filter(|&r| r > 0).collect();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        let level = opts.relevance_level;
        let num_rel = judged.values().filter(|&&r| r >= 0 && r >= level).count();
        Self { rels, ideal, num_rel, level }
    }

    fn is_rel(&self, r: i32) -> bool {
        r >= self.level
    }

    fn rel_in_top(&self, k: usize) -> usize {
        self.rels.iter().take(k).filter(|&&r| self.is_rel(r)).count()
    }

    /// Sum of precision at each relevant rank within the top k (the AP numerator).
    fn ap_sum(&self, k: usize) -> f64 {
        let mut rel_so_far = 0usize;
        let mut sum = 0.0f64;
        for (i, &r) in self.rels.iter().take(k).enumerate() {
            if self.is_rel(r) {
                rel_so_far += 1;
                sum += rel_so_far as f64 / (i + 1) as f64;
            }
        }
        sum
    }

    fn dcg(gains: impl Iterator<Item = i32>) -> f64 {
        let mut sum = 0.0f64;
        for (i, g) in gains.enumerate() {
            if g > 0 {
                sum += f64::from(g) / ((i + 2) as f64).log2();
            }
        }
        sum
    }

    fn ndcg(&self, k: usize) -> f64 {
        let ideal = Self::dcg(self.ideal.iter().copied().take(k));
        if ideal > 0.0 {
            Self::dcg(self.rels.iter().copied().take(k)) / ideal
        } else {
            0.0
        }
    }

    fn per_rel(&self, x: f64) -> f64 {
        if self.num_rel == 0 {
            0.0
        } else {
            x / self.num_rel as f64
        }
    }

    fn measure(&self, m: Measure) -> f64 {
        let all = usize::MAX;
        match m {
            Measure::P(k) => self.rel_in_top(k) as f64 / k as f64,
            Measure::Recall(k) => self.per_rel(self.rel_in_top(k) as f64),
            Measure::Map => self.per_rel(self.ap_sum(all)),
            Measure::MapCut(k) => self.per_rel(self.ap_sum(k)),
            Measure::RecipRank => {
                self.rels.iter().position(|&r| self.is_rel(r)).map_or(0.0, |i| 1.0 / (i + 1) as f64)
            }
            Measure::Ndcg => self.ndcg(all),
            Measure::NdcgCut(k) => self.ndcg(k),
            Measure::Rprec => self.per_rel(self.rel_in_top(self.num_rel) as f64),
            Measure::NumRet => self.rels.len() as f64,
            Measure::NumRel => self.num_rel as f64,
            Measure::NumRelRet => self.rels.iter().filter(|&&r| r >= 0 && self.is_rel(r)).count() as f64,
        }
    }
}
