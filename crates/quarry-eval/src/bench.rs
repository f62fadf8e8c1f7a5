//! The ANN benchmark runner: timed one-query-per-call passes and the JSON row shared with
//! `shared/tools/peer_bench.py`, so Quarry and its peers print comparable lines.

use quarry_core::{Hit, Matrix, Result, SearchParams, VectorIndex};
use serde::Serialize;
use std::time::Instant;

/// One benchmark configuration's result: the schema of `peer_bench.py`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// System and version, e.g. `quarry 0.1.0`.
    pub system: String,
    /// Index kind, e.g. `flat`.
    pub index: String,
    /// Index and search parameters of this configuration.
    pub params: serde_json::Value,
    /// Results per query.
    pub k: usize,
    /// Search threads.
    pub threads: usize,
    /// Mean recall@k against the ground truth's first k ids, crediting exact ties with the k-th
    /// true neighbour (see [`crate::ann_recall::tie_aware_recall_at_k`]); equals the peers' plain
    /// recall on data without ties.
    pub recall: f64,
    /// Plain `|A ∩ G| / k`, exactly as `peer_bench.py` computes it (an extra key, not in the
    /// peers' rows).
    pub recall_plain: f64,
    /// Queries per second, one query per call: median of the timed passes.
    pub qps: f64,
    /// Seconds to build the index.
    pub build_seconds: f64,
    /// Bytes the index holds in memory.
    pub index_bytes: usize,
    /// Median single-query latency of the timed passes, in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile single-query latency of the timed passes, in milliseconds.
    pub p99_ms: f64,
    /// Number of queries timed.
    pub queries: usize,
    /// Further keys of this row (e.g. the OS-measured resident memory of `quarry bench ann
    /// --index spann`), written after the others at the top level of the JSON object; empty for
    /// the keys of `peer_bench.py` alone.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Timing settings for [`time_queries`].
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Untimed queries run first (warms caches, page tables and the thread pool).
    pub warmup_queries: usize,
    /// Timed passes over all queries; the median rate is reported.
    pub passes: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { warmup_queries: 100, passes: 3 }
    }
}

/// Result of [`time_queries`].
#[derive(Debug, Clone)]
pub struct Timed {
    /// Median queries per second over the passes.
    pub qps: f64,
    /// Queries per second of every pass.
    pub pass_qps: Vec<f64>,
    /// The answers of the last pass.
    pub answers: Vec<Vec<Hit>>,
    /// Median single-query latency over all timed passes, in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile single-query latency over all timed passes, in milliseconds.
    pub p99_ms: f64,
}

/// Runs `queries` one per call through `index.search`, `timing.passes` times after a warm-up,
/// calling `tick` after every query (for progress bars). Runs on the caller's rayon pool.
pub fn time_queries(
    index: &dyn VectorIndex,
    queries: &Matrix,
    params: &SearchParams,
    timing: Timing,
    tick: &dyn Fn(),
) -> Result<Timed> {
    for q in queries.iter().take(timing.warmup_queries) {
        index.search(q, params)?;
    }
    let mut pass_qps = Vec::with_capacity(timing.passes);
    let mut answers = Vec::new();
    let mut latencies = Vec::with_capacity(queries.rows() * timing.passes.max(1));
    for _ in 0..timing.passes.max(1) {
        answers = Vec::with_capacity(queries.rows());
        let start = Instant::now();
        let mut last = start;
        for q in queries.iter() {
            answers.push(index.search(q, params)?);
            let now = Instant::now();
            latencies.push((now - last).as_secs_f64() * 1e3);
            last = now;
            tick();
        }
        pass_qps.push(queries.rows() as f64 / start.elapsed().as_secs_f64().max(1e-12));
    }
    let mut sorted = pass_qps.clone();
    sorted.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    let at =
        |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    Ok(Timed { qps: sorted[sorted.len() / 2], pass_qps, answers, p50_ms: at(0.5), p99_ms: at(0.99) })
}

/// Runs all `queries` in one `index.search_batch` call per pass, `timing.passes` times after a
/// warm-up batch of `timing.warmup_queries` (how faiss and hnswlib are timed with `--calls
/// batch`). There is no per-query latency: `p50_ms` and `p99_ms` are the median and slowest
/// pass's wall time divided by the number of queries. Runs on the caller's rayon pool.
pub fn time_batch(
    index: &dyn VectorIndex,
    queries: &Matrix,
    params: &SearchParams,
    timing: Timing,
) -> Result<Timed> {
    let warm = timing.warmup_queries.min(queries.rows());
    if warm > 0 {
        let head = Matrix::new(queries.as_slice()[..warm * queries.dim()].to_vec(), queries.dim())?;
        index.search_batch(&head, params)?;
    }
    let mut pass_qps = Vec::with_capacity(timing.passes.max(1));
    let mut answers = Vec::new();
    for _ in 0..timing.passes.max(1) {
        let start = Instant::now();
        answers = index.search_batch(queries, params)?;
        pass_qps.push(queries.rows() as f64 / start.elapsed().as_secs_f64().max(1e-12));
    }
    let mut sorted = pass_qps.clone();
    sorted.sort_by(f64::total_cmp);
    let ms = |qps: f64| 1e3 / qps.max(1e-12);
    Ok(Timed {
        qps: sorted[sorted.len() / 2],
        p50_ms: ms(sorted[sorted.len() / 2]),
        p99_ms: ms(sorted[0]),
        pass_qps,
        answers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::{Error, Metric};

    /// A tiny index that returns its query's first component as the id.
    struct Echo;
    impl VectorIndex for Echo {
        fn dim(&self) -> usize {
            1
        }
        fn len(&self) -> usize {
            10
        }
        fn metric(&self) -> Metric {
            Metric::InnerProduct
        }
        fn memory_bytes(&self) -> usize {
            0
        }
        fn search(&self, q: &[f32], _: &SearchParams) -> Result<Vec<Hit>> {
            if q[0] < 0.0 {
                return Err(Error::InvalidArgument("negative".into()));
            }
            Ok(vec![Hit { id: q[0] as u32, score: 1.0 }])
        }
        fn search_batch(&self, m: &Matrix, p: &SearchParams) -> Result<Vec<Vec<Hit>>> {
            m.iter().map(|q| self.search(q, p)).collect()
        }
    }

    #[test]
    fn timing_runs_every_pass_and_keeps_answers() {
        let q = Matrix::new(vec![3.0, 4.0, 5.0], 1).expect("shape");
        let count = std::cell::Cell::new(0);
        let t =
            time_queries(&Echo, &q, &SearchParams::top(1), Timing { warmup_queries: 2, passes: 3 }, &|| {
                count.set(count.get() + 1)
            })
            .expect("ok");
        assert_eq!(count.get(), 9);
        assert_eq!(t.pass_qps.len(), 3);
        assert!(t.qps > 0.0);
        assert_eq!(t.answers.iter().map(|a| a[0].id).collect::<Vec<_>>(), vec![3, 4, 5]);
        let bad = Matrix::new(vec![-1.0], 1).expect("shape");
        assert!(time_queries(&Echo, &bad, &SearchParams::top(1), Timing::default(), &|| {}).is_err());
    }
}
