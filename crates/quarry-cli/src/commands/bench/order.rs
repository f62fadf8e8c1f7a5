//! `quarry bench order` (hidden): recall@k at fixed ef of HNSW graphs built from the same data in
//! different insertion orders (as given, random, ascending and descending LID; Elliott & Clark,
//! arXiv 2405.17813), with the LID estimates checked against exact ones on a sample, and recall
//! split by the queries' LID. Prints Markdown tables for docs/benchmarks/hnsw-insertion-order.md.

use crate::load;
use anyhow::{Context, Result};
use quarry_ann::hnsw::{corpus_lid, lid_mle, LID_K};
use quarry_ann::{FlatIndex, FlatParams, HnswIndex, HnswParams, HnswSearch, InsertionOrder};
use quarry_core::{Hit, Matrix, Metric, SearchParams, VectorIndex};
use quarry_eval::io::{self, IdRows};
use std::path::PathBuf;
use std::time::Instant;

/// Data of an ANN benchmark: base, queries, ground truth, metric and k.
#[derive(clap::Args)]
pub struct DataArgs {
    /// Base vectors (.fvecs, .bvecs, .npy f32/f16, .jsonl).
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors (same formats).
    #[arg(long)]
    pub query: PathBuf,
    /// Ground-truth neighbour ids (.ivecs or integer .npy), best first; computed by an exact
    /// scan when not given.
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// Similarity metric: ip, cosine or l2.
    #[arg(long, default_value = "ip")]
    pub metric: Metric,
    /// Use only the first N queries.
    #[arg(long)]
    pub queries: Option<usize>,
    /// Results per query (recall@k).
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
}

/// Loaded benchmark data.
pub struct Data {
    /// Base rows.
    pub base: Matrix,
    /// Query rows.
    pub queries: Matrix,
    /// True neighbour ids per query.
    pub gt: IdRows,
    /// Metric of the index and the ground truth.
    pub metric: Metric,
    /// Results per query.
    pub k: usize,
}

impl DataArgs {
    /// Loads and checks the files.
    pub fn load(&self) -> Result<Data> {
        anyhow::ensure!(self.k > 0, "-k must be at least 1");
        let base = load::base(&self.base)?;
        let queries = load::queries(&self.query, self.queries)?;
        anyhow::ensure!(base.dim() == queries.dim(), "base and queries differ in dimension");
        let gt = match &self.gt {
            Some(path) => {
                let gt = io::read_id_rows(path)
                    .with_context(|| format!("loading ground truth from {}", path.display()))?;
                anyhow::ensure!(
                    gt.rows() >= queries.rows() && gt.cols >= self.k,
                    "ground truth {} has {} rows of {} ids for {} queries and k = {}",
                    path.display(),
                    gt.rows(),
                    gt.cols,
                    queries.rows(),
                    self.k
                );
                gt
            }
            None => {
                let exact = load::exact_scorer(&base, self.metric, &self.base)?;
                let hits = exact.search_batch(&queries, &SearchParams::top(self.k))?;
                anyhow::ensure!(
                    hits.iter().all(|h| h.len() == self.k),
                    "fewer than k = {} base rows",
                    self.k
                );
                IdRows { data: hits.iter().flat_map(|h| h.iter().map(|x| x.id)).collect(), cols: self.k }
            }
        };
        Ok(Data { base, queries, gt, metric: self.metric, k: self.k })
    }
}

impl Data {
    /// `|hits ∩ truth| / k` of query `i`.
    pub fn recall(&self, i: usize, hits: &[Hit]) -> f64 {
        let truth = &self.gt.row(i)[..self.k];
        hits.iter().take(self.k).filter(|h| truth.contains(&h.id)).count() as f64 / self.k as f64
    }

    /// Per-query recall of `index` at beam width `ef` (searched in parallel on the current pool).
    pub fn recalls(&self, index: &HnswIndex, ef: usize) -> Result<Vec<f64>> {
        use rayon::prelude::*;
        let s = HnswSearch { ef, ..HnswSearch::default() };
        (0..self.queries.rows())
            .into_par_iter()
            .map(|i| Ok(self.recall(i, &index.search_with(self.queries.row(i), self.k, &s, None)?)))
            .collect()
    }

    /// Rows for Euclidean neighbour searches: the base itself, normalised for cosine.
    pub fn euclidean_rows(&self) -> Matrix {
        let mut m = self.base.clone();
        if self.metric == Metric::Cosine {
            for row in m.as_mut_slice().chunks_exact_mut(self.base.dim()) {
                quarry_linalg::kernels::normalize(row);
            }
        }
        m
    }
}

/// Queries per second of `f` over queries `ids`, one call each on this thread: the median of
/// `passes` timed passes after one untimed pass.
pub fn qps(ids: &[usize], passes: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
    for &i in ids {
        f(i)?;
    }
    let mut rates = Vec::with_capacity(passes.max(1));
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        for &i in ids {
            f(i)?;
        }
        rates.push(ids.len() as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// Arguments of `quarry bench order`.
#[derive(clap::Args)]
pub struct OrderArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Insertion orders to build with, comma-separated: as_given, random, lid_asc, lid_desc.
    #[arg(long, value_delimiter = ',', default_value = "as_given,random,lid_asc,lid_desc")]
    orders: Vec<InsertionOrder>,
    /// Build seeds (levels; and the shuffle of `random`), comma-separated: one graph per order
    /// and seed, so the spread between seeds shows the noise.
    #[arg(long, value_delimiter = ',', default_value = "42")]
    seeds: Vec<u64>,
    /// Graph degree.
    #[arg(long = "M", default_value_t = 16)]
    m: usize,
    /// ef_construction.
    #[arg(long, default_value_t = 200)]
    efc: usize,
    /// Fixed beam widths at which recall is reported, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40")]
    ef: Vec<usize>,
    /// Threads that build each graph (1: the insertion sequence is exactly the order, and the
    /// graph deterministic).
    #[arg(long, default_value_t = 1)]
    build_threads: usize,
    /// Threads for the LID pass and recall scoring.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Neighbours per LID estimate.
    #[arg(long, default_value_t = LID_K)]
    lid_k: usize,
    /// Rows whose pilot LID is compared with an exact one (0: skip the check).
    #[arg(long, default_value_t = 1000)]
    lid_sample: usize,
    /// Timed passes for the QPS columns (one thread, one query per call; 0: no timing).
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Also build from the rows grouped by nearest of this many centres (evenly spaced rows)
    /// and inserted as given — data loaded one category after another (0: skip).
    #[arg(long, default_value_t = 0)]
    grouped: usize,
}

/// The rows sorted by their nearest of `c` centres (rows `0, n/c, 2n/c, …`), then by row.
fn grouped_order(d: &Data, c: usize) -> Result<Vec<u32>> {
    let n = d.base.rows();
    let step = (n / c.min(n)).max(1);
    let centres: Vec<&[f32]> = (0..n).step_by(step).take(c).map(|i| d.base.row(i)).collect();
    let centres = FlatIndex::build(&Matrix::from_rows(&centres)?, d.metric, FlatParams::default())?;
    let nearest = centres.search_batch(&d.base, &SearchParams::top(1))?;
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|&i| (nearest[i as usize].first().map_or(u32::MAX, |h| h.id), i));
    Ok(order)
}

/// Runs `quarry bench order`.
pub fn run(a: OrderArgs) -> Result<()> {
    anyhow::ensure!(!a.orders.is_empty() && !a.seeds.is_empty() && !a.ef.is_empty(), "nothing to run");
    anyhow::ensure!(a.lid_k >= 2, "--lid-k must be at least 2");
    let d = a.data.load()?;
    let pool = crate::progress::pool(a.threads)?;
    let build_pool = crate::progress::pool(a.build_threads)?;
    let (n, nq) = (d.base.rows(), d.queries.rows());
    println!(
        "data: {} ({n} × {}), {nq} queries, metric {}, k = {}",
        a.data.base.display(),
        d.base.dim(),
        d.metric,
        d.k
    );
    println!(
        "build: M = {}, efc = {}, {} build thread(s); recall@{} at ef = {:?}\n",
        a.m, a.efc, a.build_threads, d.k, a.ef
    );

    // LID of every base row (pilot graph), of the queries and of a sample of rows (exact).
    let params = HnswParams { m: a.m, ef_construction: a.efc, ..HnswParams::default() };
    let t = Instant::now();
    let lid = pool.install(|| corpus_lid(&d.base, d.metric, &params, a.lid_k))?;
    let lid_seconds = t.elapsed().as_secs_f64();
    println!("## LID (k = {})\n", a.lid_k);
    println!(
        "Pilot pass (graph with efc = {}, then a k-NN search per row with ef = {}): {lid_seconds:.1} s on {} threads.\n",
        a.efc.min(100),
        2 * a.lid_k,
        a.threads
    );
    let exact = FlatIndex::build(&d.euclidean_rows(), Metric::L2, FlatParams::default())?;
    let exact_lid = |v: &[f32], skip: Option<u32>| -> Result<f64> {
        let hits = exact.search(v, &SearchParams::top(a.lid_k + 1))?;
        let dist: Vec<f32> = hits
            .iter()
            .filter(|h| Some(h.id) != skip)
            .take(a.lid_k)
            .map(|h| (-h.score).max(0.0).sqrt())
            .collect();
        Ok(lid_mle(&dist).unwrap_or(f64::NAN))
    };
    let query_rows: Vec<Vec<f32>> = d
        .queries
        .iter()
        .map(|q| {
            let mut q = q.to_vec();
            if d.metric == Metric::Cosine {
                quarry_linalg::kernels::normalize(&mut q);
            }
            q
        })
        .collect();
    let query_lid: Vec<f64> = pool.install(|| {
        use rayon::prelude::*;
        query_rows.par_iter().map(|q| exact_lid(q, None)).collect::<Result<Vec<_>>>()
    })?;
    println!("| LID of | n | undefined | mean | p10 | median | p90 |\n|---|---|---|---|---|---|---|");
    println!("{}", stats_row("base rows (pilot graph)", &lid));
    println!("{}", stats_row("queries (exact k-NN)", &query_lid));
    if a.lid_sample > 0 {
        let step = (n / a.lid_sample.min(n)).max(1);
        let sample: Vec<usize> = (0..n).step_by(step).take(a.lid_sample).collect();
        let rows = d.euclidean_rows();
        let exact_sample: Vec<f64> = pool.install(|| {
            use rayon::prelude::*;
            sample.par_iter().map(|&i| exact_lid(rows.row(i), Some(i as u32))).collect::<Result<Vec<_>>>()
        })?;
        let pilot_sample: Vec<f64> = sample.iter().map(|&i| lid[i]).collect();
        println!("{}", stats_row("sample rows (exact k-NN)", &exact_sample));
        println!("{}", stats_row("same rows (pilot graph)", &pilot_sample));
        println!(
            "\nSpearman rank correlation of pilot and exact LID over the {} sampled rows: {:.4}\n",
            sample.len(),
            spearman(&pilot_sample, &exact_sample)
        );
    }
    let terciles = tercile_bounds(&query_lid);

    // One graph per order and seed.
    println!("## Recall@{} at fixed ef\n", d.k);
    let efs = a.ef.iter().map(|e| format!(" ef={e} |")).collect::<String>();
    let qps_cols =
        if a.passes > 0 { a.ef.iter().map(|e| format!(" QPS ef={e} |")).collect() } else { String::new() };
    let sep = "---|".repeat(a.ef.len() * (1 + usize::from(a.passes > 0)));
    println!("| order | seed | build s |{efs}{qps_cols} ef={} by query LID (low / mid / high) |", a.ef[0]);
    println!("|---|---|---|{sep}---|");
    let mut summary: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    let mut runs: Vec<(String, InsertionOrder, Option<Vec<u32>>)> =
        a.orders.iter().map(|&o| (o.name().to_string(), o, None)).collect();
    if a.grouped > 0 {
        let label = format!("grouped ({} clusters, as given)", a.grouped);
        runs.push((label, InsertionOrder::AsGiven, Some(grouped_order(&d, a.grouped)?)));
    }
    for (label, order, fixed) in &runs {
        let (order, mut per_seed) = (*order, Vec::new());
        for &seed in &a.seeds {
            let perm = match fixed {
                Some(p) => p.clone(),
                None => order.permutation(n, seed, Some(&lid))?,
            };
            let p = HnswParams { seed, insertion_order: order, ..params };
            let t = Instant::now();
            let index = build_pool.install(|| HnswIndex::build_in_order(&d.base, d.metric, p, &perm))?;
            let build_seconds = t.elapsed().as_secs_f64();
            let mut recalls = Vec::new();
            let mut cols = String::new();
            let mut by_lid = String::new();
            for (j, &ef) in a.ef.iter().enumerate() {
                let r = pool.install(|| d.recalls(&index, ef))?;
                let mean = r.iter().sum::<f64>() / nq as f64;
                recalls.push(mean);
                cols.push_str(&format!(" {mean:.4} |"));
                if j == 0 {
                    by_lid = (0..3)
                        .map(|t| {
                            let sel: Vec<f64> = (0..nq)
                                .filter(|&i| tercile(query_lid[i], &terciles) == t)
                                .map(|i| r[i])
                                .collect();
                            format!("{:.4}", sel.iter().sum::<f64>() / sel.len().max(1) as f64)
                        })
                        .collect::<Vec<_>>()
                        .join(" / ");
                }
            }
            if a.passes > 0 {
                let ids: Vec<usize> = (0..nq).collect();
                for &ef in &a.ef {
                    let s = HnswSearch { ef, ..HnswSearch::default() };
                    let q = qps(&ids, a.passes, |i| {
                        std::hint::black_box(index.search_with(d.queries.row(i), d.k, &s, None)?);
                        Ok(())
                    })?;
                    cols.push_str(&format!(" {q:.0} |"));
                }
            }
            println!("| {label} | {seed} | {build_seconds:.1} |{cols} {by_lid} |");
            per_seed.push(recalls);
        }
        summary.push((label.clone(), per_seed));
    }
    if a.seeds.len() > 1 {
        println!("\n### Mean ± standard deviation over the {} seeds\n", a.seeds.len());
        println!("| order |{efs}\n|---|{}", "---|".repeat(a.ef.len()));
        for (order, per_seed) in &summary {
            let cols: String = (0..a.ef.len())
                .map(|j| {
                    let v: Vec<f64> = per_seed.iter().map(|r| r[j]).collect();
                    let (m, s) = mean_sd(&v);
                    format!(" {m:.4} ± {s:.4} |")
                })
                .collect();
            println!("| {order} |{cols}");
        }
    }
    println!(
        "\nQuery-LID terciles (exact k-NN, k = {}): low < {:.2} ≤ mid < {:.2} ≤ high.",
        a.lid_k, terciles.0, terciles.1
    );
    Ok(())
}

fn stats_row(what: &str, v: &[f64]) -> String {
    let mut x: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    x.sort_by(f64::total_cmp);
    let q = |p: f64| x.get(((x.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    format!(
        "| {what} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        v.len(),
        v.len() - x.len(),
        x.iter().sum::<f64>() / x.len().max(1) as f64,
        q(0.1),
        q(0.5),
        q(0.9)
    )
}

/// Mean and (sample) standard deviation.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

/// Ranks (0-based, ties by position); NaN ranks last.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    for (rank, &i) in idx.iter().enumerate() {
        r[i] = rank as f64;
    }
    r
}

/// Spearman's rank correlation (Pearson correlation of the ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let (ma, _) = mean_sd(&ra);
    let (mb, _) = mean_sd(&rb);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va * vb).sqrt()
}

fn tercile_bounds(v: &[f64]) -> (f64, f64) {
    let mut x: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    x.sort_by(f64::total_cmp);
    if x.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (x[x.len() / 3], x[2 * x.len() / 3])
}

fn tercile(x: f64, (lo, hi): &(f64, f64)) -> usize {
    if x.is_nan() || x >= *hi {
        2
    } else if x >= *lo {
        1
    } else {
        0
    }
}
