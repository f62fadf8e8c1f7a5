//! `quarry fuse`: fuses TREC runs query by query (reciprocal rank fusion, or a weighted / CombSUM /
//! CombMNZ combination of normalised scores; `quarry_rank::fusion`) into one run — hybrid
//! retrieval from a lexical and a dense run, or multi-query fusion of runs of reformulated queries.
//! Each run's results for a query are ranked by score, descending (ties by docno).

use anyhow::{bail, Result};
use quarry_eval::trec::{read_run, RunWriter};
use quarry_rank::fusion::{fuse, Fusion, Norm};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Arguments of `quarry fuse`.
#[derive(clap::Args)]
pub struct Args {
    /// A TREC run to fuse (repeat for each; at least two).
    #[arg(long = "run", required = true)]
    runs: Vec<PathBuf>,
    /// rrf, weighted, combsum or combmnz.
    #[arg(long, default_value = "rrf")]
    method: String,
    /// RRF rank offset.
    #[arg(long, default_value_t = 60.0)]
    rrf_k: f64,
    /// Weights of the runs (weighted), comma-separated, in --run order.
    #[arg(long)]
    weights: Option<String>,
    /// Score normalisation for weighted/combsum/combmnz: minmax, zscore or none.
    #[arg(long, default_value = "minmax")]
    norm: String,
    /// Results kept per query.
    #[arg(short = 'k', long = "depth", default_value_t = 100)]
    depth: usize,
    /// Output run file.
    #[arg(long)]
    out: PathBuf,
    /// Run tag written in the last column.
    #[arg(long, default_value = "quarry-fused")]
    tag: String,
}

/// The fusion `method` (rrf, weighted, combsum, combmnz) with its RRF offset, comma-separated
/// weights and score normalisation (minmax, zscore, none), as `quarry fuse` and `quarry beir`
/// take them; errors name the bad argument.
pub fn parse_fusion(method: &str, rrf_k: f64, weights: Option<&str>, norm: &str) -> Result<Fusion> {
    let norm = match norm {
        "minmax" => Norm::MinMax,
        "zscore" => Norm::ZScore,
        "none" => Norm::None,
        other => bail!("--norm {other:?}: use minmax, zscore or none"),
    };
    Ok(match method {
        "rrf" => Fusion::Rrf { k: rrf_k },
        "combsum" => Fusion::CombSum { norm },
        "combmnz" => Fusion::CombMnz { norm },
        "weighted" => {
            let weights: Vec<f64> = weights
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim().parse::<f64>().map_err(|_| anyhow::anyhow!("--weights: {s:?} is not a number"))
                })
                .collect::<Result<_>>()?;
            Fusion::Weighted { weights, norm }
        }
        other => bail!("fusion {other:?}: use rrf, weighted, combsum or combmnz"),
    })
}

/// Runs `quarry fuse`.
pub fn run(a: Args) -> Result<()> {
    if a.runs.len() < 2 {
        bail!("give at least two --run files to fuse");
    }
    let method = parse_fusion(&a.method, a.rrf_k, a.weights.as_deref(), &a.norm)?;
    let runs = a.runs.iter().map(|p| read_run(p)).collect::<quarry_core::Result<Vec<_>>>()?;
    let qids: BTreeSet<&str> = runs.iter().flat_map(|r| r.query_ids()).collect();
    let mut w = RunWriter::create(&a.out, &a.tag)?;
    for q in &qids {
        let lists: Vec<Vec<(String, f64)>> = runs
            .iter()
            .map(|r| {
                let mut l = r.get(q).map(<[_]>::to_vec).unwrap_or_default();
                l.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
                l
            })
            .collect();
        let fused = fuse(&lists, &method, a.depth)?;
        w.write_query(q, &fused)?;
    }
    w.finish()?;
    eprintln!("fused {} runs over {} queries into {}", runs.len(), qids.len(), a.out.display());
    Ok(())
}
