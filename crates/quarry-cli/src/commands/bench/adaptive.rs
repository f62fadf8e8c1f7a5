//! `quarry bench adaptive-ef` (hidden): does choosing ef per query from a difficulty estimate
//! beat one fixed ef at equal recall? A prototype outside the library: a cheap probe search
//! gives the features, a policy fitted on half of the queries maps the feature's quantile bin
//! to an ef, and the other half is timed end to end (probe included) against the fixed-ef curve.
//!
//! Policies are fitted by a Lagrangian sweep: for a price λ of recall, every bin takes the ef of
//! the grid minimising `time(ef) − λ · mean recall(ef)` over its training queries (per-query
//! recall at every ef of the grid is measured once; the search is deterministic). The same sweep
//! per query on the test half itself — knowing each query's recall curve — is the oracle: an
//! upper bound on what any difficulty estimate could gain.

use super::order::{mean_sd, spearman, DataArgs};
use anyhow::Result;
use quarry_ann::hnsw::lid_mle;
use quarry_ann::{HnswIndex, HnswParams, HnswSearch};
use quarry_core::Hit;
use std::time::Instant;

/// Arguments of `quarry bench adaptive-ef`.
#[derive(clap::Args)]
pub struct AdaptiveArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Graph degree.
    #[arg(long = "M", default_value_t = 16)]
    m: usize,
    /// ef_construction.
    #[arg(long, default_value_t = 200)]
    efc: usize,
    /// Threads that build the graph (as given order, seed 42).
    #[arg(long, default_value_t = 2)]
    build_threads: usize,
    /// The ef values a policy may choose (and the fixed-ef curve), ascending.
    #[arg(long, value_delimiter = ',', default_value = "10,12,14,16,20,24,28,32,40,48,56,64,80,96,128,160")]
    efs: Vec<usize>,
    /// Beam width of the probe search whose answers give the features (its answer is returned
    /// as is when the policy picks this ef).
    #[arg(long, default_value_t = 10)]
    probe_ef: usize,
    /// Quantile bins of the feature.
    #[arg(long, default_value_t = 4)]
    bins: usize,
    /// Timed rounds (median; each round times every configuration once), one thread, one
    /// query per call.
    #[arg(long, default_value_t = 7)]
    passes: usize,
}

/// Features of one query from its probe answers.
#[derive(Debug, Clone, Copy)]
struct Features {
    /// Ranking key (lower is better) of the greedy level-0 result (a k = 1, ef = 1 search).
    greedy: f64,
    /// Key of the probe's best answer.
    top1: f64,
    /// Key of the probe's k-th answer.
    kth: f64,
    /// Key gap between the k-th and the best answer.
    gap: f64,
    /// LID MLE from the Euclidean distances to the probe's answers.
    lid: f64,
}

const FEATURES: [&str; 5] = ["greedy", "top1", "kth", "gap", "lid"];

impl Features {
    fn get(&self, name: &str) -> f64 {
        match name {
            "greedy" => self.greedy,
            "top1" => self.top1,
            "kth" => self.kth,
            "gap" => self.gap,
            _ => self.lid,
        }
    }
}

/// A policy: bin thresholds of a feature and the ef of each bin.
#[derive(Debug, Clone, PartialEq)]
struct Policy {
    feature: &'static str,
    bounds: Vec<f64>,
    efs: Vec<usize>,
}

impl Policy {
    fn ef(&self, f: &Features) -> usize {
        let x = f.get(self.feature);
        let bin = self.bounds.iter().filter(|&&b| x >= b).count();
        self.efs[bin]
    }
}

/// The searches run for one query: `(k, ef)` pairs, in order (a probe, then the main search).
type Steps = Vec<(usize, usize)>;

/// Runs `quarry bench adaptive-ef`.
pub fn run(a: AdaptiveArgs) -> Result<()> {
    anyhow::ensure!(!a.efs.is_empty() && a.bins >= 1, "nothing to run");
    anyhow::ensure!(a.efs.windows(2).all(|w| w[0] < w[1]), "--efs must be ascending");
    let probe_j = a.efs.iter().position(|&e| e == a.probe_ef);
    anyhow::ensure!(probe_j.is_some(), "--probe-ef must be one of --efs");
    let probe_j = probe_j.unwrap_or(0);
    let d = a.data.load()?;
    let (nq, k) = (d.queries.rows(), d.k);
    let params = HnswParams { m: a.m, ef_construction: a.efc, ..HnswParams::default() };
    let t = Instant::now();
    let index =
        crate::progress::pool(a.build_threads)?.install(|| HnswIndex::build(&d.base, d.metric, params))?;
    println!(
        "data: {} ({} × {}), {nq} queries, metric {}, k = {k}; graph M = {}, efc = {}, as given, built in {:.1} s",
        a.data.base.display(),
        d.base.rows(),
        d.base.dim(),
        d.metric,
        a.m,
        a.efc,
        t.elapsed().as_secs_f64()
    );
    println!(
        "timing: one thread, one query per call, {} clock; every configuration timed once per round, \
         {} interleaved rounds, median\n",
        clock_name(),
        a.passes
    );
    let train: Vec<usize> = (0..nq).step_by(2).collect();
    let test: Vec<usize> = (1..nq).step_by(2).collect();
    let search = |i: usize, k: usize, ef: usize| -> Result<Vec<Hit>> {
        Ok(index.search_with(d.queries.row(i), k, &HnswSearch { ef, ..HnswSearch::default() }, None)?)
    };
    let time = |ids: &[usize], configs: &[Vec<Steps>]| -> Result<Vec<f64>> {
        time_configs(ids, configs, a.passes, &|i, k, ef| search(i, k, ef).map(|h| h.len()))
    };

    // Per-query recall at every ef of the grid, and the time per query at each ef.
    let pool = crate::progress::pool(2)?;
    let recall: Vec<Vec<f64>> =
        a.efs.iter().map(|&ef| pool.install(|| d.recalls(&index, ef))).collect::<Result<_>>()?;
    let fixed_steps = |ids: &[usize]| -> Vec<Vec<Steps>> {
        let mut c: Vec<Vec<Steps>> =
            a.efs.iter().map(|&ef| ids.iter().map(|_| vec![(k, ef)]).collect()).collect();
        c.push(ids.iter().map(|_| vec![(1, 1)]).collect());
        c
    };
    let train_qps = time(&train, &fixed_steps(&train))?;
    let time_train: Vec<f64> = train_qps[..a.efs.len()].iter().map(|q| 1.0 / q).collect();
    let t_greedy = 1.0 / train_qps[a.efs.len()];

    // Features from the probes.
    let features: Vec<Features> = (0..nq)
        .map(|i| {
            let g = search(i, 1, 1)?;
            let p = search(i, k, a.probe_ef)?;
            let key = |h: &Hit| -(h.score as f64);
            let q = d.queries.row(i);
            let dist: Vec<f32> = p
                .iter()
                .map(|h| {
                    let x = d.base.row(h.id as usize);
                    q.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt()
                })
                .collect();
            Ok(Features {
                greedy: g.first().map_or(f64::NAN, key),
                top1: p.first().map_or(f64::NAN, key),
                kth: p.last().map_or(f64::NAN, key),
                gap: match (p.first(), p.last()) {
                    (Some(f), Some(l)) => key(l) - key(f),
                    _ => f64::NAN,
                },
                lid: lid_mle(&dist).unwrap_or(f64::NAN),
            })
        })
        .collect::<Result<_>>()?;
    // The smallest ef of the grid at which a query reaches its best recall over the grid.
    let needed: Vec<f64> = (0..nq)
        .map(|i| {
            let best = recall.iter().map(|r| r[i]).fold(0.0, f64::max);
            a.efs[recall.iter().position(|r| r[i] >= best).unwrap_or(0)] as f64
        })
        .collect();
    println!("## Features (all {nq} queries)\n");
    println!(
        "Spearman correlation of each feature with the smallest ef of the grid at which the query \
         reaches its best recall:\n"
    );
    println!("| feature | probe | ρ |\n|---|---|---|");
    for f in FEATURES {
        let v: Vec<f64> = features.iter().map(|x| x.get(f)).collect();
        let probe =
            if f == "greedy" { "k = 1, ef = 1".to_string() } else { format!("k = {k}, ef = {}", a.probe_ef) };
        println!("| {f} | {probe} | {:.3} |", spearman(&v, &needed));
    }
    let (m, s) = mean_sd(&needed);
    println!(
        "\nNeeded ef: mean {m:.1}, sd {s:.1}; queries needing only ef = {}: {:.1}%",
        a.efs[0],
        100.0 * needed.iter().filter(|&&x| x == a.efs[0] as f64).count() as f64 / nq as f64
    );

    // Policies per feature, fitted on the training half; the oracle per test query.
    let lambdas: Vec<f64> = (0..60).map(|i| 1e-6 * 10f64.powf(i as f64 / 12.0)).collect();
    let ef_index = |ef: usize| a.efs.iter().position(|&e| e == ef).unwrap_or(0);
    let mut policies: Vec<(Policy, Vec<Steps>, f64)> = Vec::new(); // policy, test steps, test recall
    for f in FEATURES {
        let probe_time = if f == "greedy" { t_greedy } else { time_train[probe_j] };
        let values: Vec<f64> = train.iter().map(|&i| features[i].get(f)).collect();
        let bounds = quantile_bounds(&values, a.bins);
        for &lambda in &lambdas {
            let mut policy = Policy { feature: f, bounds: bounds.clone(), efs: Vec::new() };
            for b in 0..a.bins {
                let members: Vec<usize> = train
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let x = features[i].get(f);
                        bounds.iter().filter(|&&t| x >= t).count() == b
                    })
                    .collect();
                let best = (0..a.efs.len())
                    .map(|j| {
                        let reuse = f != "greedy" && j == probe_j;
                        let time = probe_time + if reuse { 0.0 } else { time_train[j] };
                        (time - lambda * mean_at(&recall[j], &members), j)
                    })
                    .min_by(|x, y| x.0.total_cmp(&y.0))
                    .map_or(0, |(_, j)| j);
                policy.efs.push(a.efs[best]);
            }
            if policies.iter().any(|(p, _, _)| *p == policy) || policy.efs.iter().all(|&e| e == policy.efs[0])
            {
                continue;
            }
            let steps: Vec<Steps> = test
                .iter()
                .map(|&i| {
                    let ef = policy.ef(&features[i]);
                    match f {
                        "greedy" => vec![(1, 1), (k, ef)],
                        _ if ef == a.probe_ef => vec![(k, ef)],
                        _ => vec![(k, a.probe_ef), (k, ef)],
                    }
                })
                .collect();
            let r = test.iter().map(|&i| recall[ef_index(policy.ef(&features[i]))][i]).sum::<f64>()
                / test.len() as f64;
            policies.push((policy, steps, r));
        }
    }
    let mut oracle: Vec<(f64, Vec<Steps>, f64)> = Vec::new();
    for &lambda in lambdas.iter().step_by(3) {
        let chosen: Vec<usize> = test
            .iter()
            .map(|&i| {
                (0..a.efs.len())
                    .map(|j| (time_train[j] - lambda * recall[j][i], j))
                    .min_by(|x, y| x.0.total_cmp(&y.0))
                    .map_or(0, |(_, j)| j)
            })
            .collect();
        let steps: Vec<Steps> = chosen.iter().map(|&j| vec![(k, a.efs[j])]).collect();
        if oracle.iter().any(|(_, s, _)| *s == steps) {
            continue;
        }
        let r = test.iter().zip(&chosen).map(|(&i, &j)| recall[j][i]).sum::<f64>() / test.len() as f64;
        oracle.push((lambda, steps, r));
    }

    // Time everything on the test half, interleaved.
    let mut configs = fixed_steps(&test);
    configs.truncate(a.efs.len());
    configs.extend(policies.iter().map(|(_, s, _)| s.clone()));
    configs.extend(oracle.iter().map(|(_, s, _)| s.clone()));
    let test_qps = time(&test, &configs)?;
    let fixed: Vec<(usize, f64, f64)> =
        a.efs.iter().enumerate().map(|(j, &ef)| (ef, mean_at(&recall[j], &test), test_qps[j])).collect();
    println!("\n## Fixed ef (test half: {} queries)\n", test.len());
    println!("| ef | recall@{k} | QPS |\n|---|---|---|");
    for &(ef, r, q) in &fixed {
        println!("| {ef} | {r:.4} | {q:.0} |");
    }
    let ratio_cols = |r: f64, q: f64| -> (String, String) {
        let fq = fixed_qps_at(&fixed, r);
        if fq.is_nan() {
            ("–".into(), "–".into())
        } else {
            (format!("{fq:.0}"), format!("{:.3}", q / fq))
        }
    };
    println!("\n## Adaptive policies (fitted on the even queries, timed on the odd ones)\n");
    println!(
        "Cost model for fitting: the probe's time plus, unless the chosen ef is the probe's, the time of \
         a search at that ef (measured on the training half). Fixed-ef QPS at the policy's recall is \
         interpolated linearly between the two grid points around it.\n"
    );
    println!(
        "| feature | ef per bin (low → high feature) | test recall | adaptive QPS | fixed-ef QPS at that recall | ratio |\n|---|---|---|---|---|---|"
    );
    let mut best: Vec<(f64, f64, String)> = Vec::new();
    for (n, (policy, _, r)) in policies.iter().enumerate() {
        let q = test_qps[a.efs.len() + n];
        let (fq, ratio) = ratio_cols(*r, q);
        let efs = policy.efs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ");
        println!("| {} | {efs} | {r:.4} | {q:.0} | {fq} | {ratio} |", policy.feature);
        if let Ok(x) = ratio.parse::<f64>() {
            best.push((*r, x, policy.feature.to_string()));
        }
    }
    println!("\n## Oracle (each test query gets the ef its own recall curve calls for; not realisable)\n");
    println!("| λ | test recall | oracle QPS | fixed-ef QPS at that recall | ratio |\n|---|---|---|---|---|");
    for (n, (lambda, _, r)) in oracle.iter().enumerate() {
        let q = test_qps[a.efs.len() + policies.len() + n];
        let (fq, ratio) = ratio_cols(*r, q);
        println!("| {lambda:.2e} | {r:.4} | {q:.0} | {fq} | {ratio} |");
    }
    println!("\n## Best realisable ratio per recall band (adaptive QPS / fixed-ef QPS at equal recall)\n");
    println!("| recall band | policies | best ratio (feature) | median ratio |\n|---|---|---|---|");
    for (lo, hi) in [(0.85, 0.9), (0.9, 0.95), (0.95, 0.98), (0.98, 1.0)] {
        let mut band: Vec<&(f64, f64, String)> =
            best.iter().filter(|(r, _, _)| *r >= lo && *r < hi).collect();
        band.sort_by(|x, y| x.1.total_cmp(&y.1));
        match (band.last(), band.get(band.len() / 2)) {
            (Some(top), Some(mid)) => {
                println!("| {lo:.2}–{hi:.2} | {} | {:.3} ({}) | {:.3} |", band.len(), top.1, top.2, mid.1)
            }
            _ => println!("| {lo:.2}–{hi:.2} | 0 | – | – |"),
        }
    }
    Ok(())
}

/// Times each configuration (per query in `ids`, its searches) on this thread: one untimed run
/// of each, then `rounds` rounds that time every configuration once, interleaved so that drifts
/// in machine load hit all alike. Returns queries per second from the median round.
fn time_configs(
    ids: &[usize],
    configs: &[Vec<Steps>],
    rounds: usize,
    search: &dyn Fn(usize, usize, usize) -> Result<usize>,
) -> Result<Vec<f64>> {
    let run = |c: &[Steps], reps: usize| -> Result<f64> {
        let t = Clock::now();
        for _ in 0..reps {
            for (&i, steps) in ids.iter().zip(c) {
                for &(k, ef) in steps {
                    std::hint::black_box(search(i, k, ef)?);
                }
            }
        }
        Ok(t.elapsed())
    };
    // Repeat short configurations so that a timed run lasts at least 0.4 s: the CPU-time clock
    // advances in scheduler ticks (4 ms here).
    let reps: Vec<usize> = configs
        .iter()
        .map(|c| {
            let t = Instant::now();
            run(c, 1)?;
            Ok((0.4 / t.elapsed().as_secs_f64().max(1e-6)).ceil().max(1.0) as usize)
        })
        .collect::<Result<_>>()?;
    let mut times = vec![Vec::with_capacity(rounds); configs.len()];
    for _ in 0..rounds.max(1) {
        for ((c, t), &r) in configs.iter().zip(&mut times).zip(&reps) {
            t.push(run(c, r)? / r as f64);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            ids.len() as f64 / t[t.len() / 2]
        })
        .collect())
}

/// This thread's CPU time from /proc/thread-self/schedstat (nanoseconds on a CPU), so that time
/// spent descheduled by other processes is not counted; wall time where that file is missing.
enum Clock {
    Cpu(u64),
    Wall(Instant),
}

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok().filter(|&ns| ns > 0)
}

fn clock_name() -> &'static str {
    if thread_cpu_ns().is_some() {
        "thread CPU-time (/proc/thread-self/schedstat)"
    } else {
        "wall"
    }
}

impl Clock {
    fn now() -> Clock {
        thread_cpu_ns().map_or_else(|| Clock::Wall(Instant::now()), Clock::Cpu)
    }

    /// Seconds since `now`.
    fn elapsed(&self) -> f64 {
        match self {
            Clock::Cpu(start) => thread_cpu_ns().map_or(0.0, |ns| ns.saturating_sub(*start) as f64 / 1e9),
            Clock::Wall(start) => start.elapsed().as_secs_f64(),
        }
    }
}

fn mean_at(v: &[f64], ids: &[usize]) -> f64 {
    ids.iter().map(|&i| v[i]).sum::<f64>() / ids.len().max(1) as f64
}

/// Thresholds splitting `values` into `bins` equal-count bins.
fn quantile_bounds(values: &[f64], bins: usize) -> Vec<f64> {
    let mut x: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    x.sort_by(f64::total_cmp);
    (1..bins).map(|b| x.get(b * x.len() / bins).copied().unwrap_or(f64::INFINITY)).collect()
}

/// QPS of the fixed-ef curve at `recall`, linear in recall between the two grid points around it
/// (NaN outside the curve).
fn fixed_qps_at(fixed: &[(usize, f64, f64)], recall: f64) -> f64 {
    for w in fixed.windows(2) {
        let ((_, r0, q0), (_, r1, q1)) = (w[0], w[1]);
        if (r0..=r1).contains(&recall) {
            return if r1 > r0 { q0 + (q1 - q0) * (recall - r0) / (r1 - r0) } else { q0.max(q1) };
        }
    }
    f64::NAN
}
