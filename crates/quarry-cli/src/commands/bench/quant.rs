//! `quarry bench ann --index flat+sq8|flat+pq|flat+rabitq|hnsw+sq8|hnsw+rabitq|...`: quantized
//! indexes. The index is built (or `--load`ed), saved to a folder (`--save`, or a temporary one)
//! and opened again from it, so that the f32 rows used for re-scoring are memory-mapped as in
//! production; `index_bytes` of each row is then the resident part (codes, quantizer, graph).
//!
//! `--params` mixes the base index's keys (`M`, `efc`, `seed`, `storage`, ...) with the codes'
//! (`bits`, `m`, `nbits`, `rerank`, `train`); `--sweep` varies `ef` (hnsw) and/or `rerank`,
//! e.g. `--sweep "ef=20,40,80;rerank=2,4"` (every combination is timed).

use super::params::{self, Build, Kind};
use super::Bench;
use crate::load;
use anyhow::{bail, Context, Result};
use quarry_ann::{FlatParams, HnswSearch, QuantFlatIndex, QuantHnswIndex, QuantParams, QuantSpec};
use quarry_core::{Matrix, VectorIndex};
use std::path::Path;
use std::time::Instant;

/// Splits `base+codes` into the base kind and the codes family, if `index` is a quantized spec.
pub fn split_spec(index: &str) -> Option<(&str, &str)> {
    index.split_once('+')
}

/// The values of `--sweep "ef=..;rerank=.."` (either may be absent: the default is used).
#[derive(Debug, Default)]
struct Sweeps {
    ef: Option<Vec<usize>>,
    rerank: Option<Vec<usize>>,
}

/// Parses `--sweep` for a quantized index on `kind`.
fn sweeps(kind: Kind, spec: Option<&str>) -> Result<Sweeps> {
    let (mut ef, mut rerank) = (None, None);
    for part in spec.unwrap_or("").split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, values)) = part.split_once('=') else {
            bail!("--sweep expects name=v1,v2,... separated by ';' (ef, rerank), got {part:?}");
        };
        let vals = values
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|v| v.parse::<usize>().with_context(|| format!("--sweep {name}: {v:?} is not an integer")))
            .collect::<Result<Vec<_>>>()?;
        if vals.is_empty() {
            bail!("--sweep {name}= lists no values");
        }
        match (name.trim(), kind) {
            ("ef", Kind::Hnsw) => {
                if vals.contains(&0) {
                    bail!("--sweep ef: values must be positive");
                }
                ef = Some(vals)
            }
            ("rerank", _) => rerank = Some(vals),
            (other, _) => bail!(
                "unknown --sweep parameter {other:?} for the {} index with codes: use {}",
                kind.name(),
                if kind == Kind::Hnsw { "ef and/or rerank" } else { "rerank" }
            ),
        }
    }
    Ok(Sweeps { ef, rerank })
}

/// Runs the quantized-index benchmark for `--index base+family`.
pub fn run(bench: &Bench, base_kind: &str, family: &str, build_pool: &rayon::ThreadPool) -> Result<()> {
    let a = bench.args;
    let kind = Kind::parse(base_kind)?;
    // Split --params into the codes' keys and the base index's keys.
    let given: Vec<(&str, &str)> = a
        .params
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.trim(), v.trim())).unwrap_or((kv, "")))
        .collect();
    let (base, scorer) = super::base_and_scorer(a, &bench.queries)?.unzip();
    let (qp, rest) =
        QuantParams::parse(family, &given, base.as_ref().map_or(bench.queries.dim(), Matrix::dim))?;
    let rest: Vec<String> = rest.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let base_build = params::build(kind, (!rest.is_empty()).then(|| rest.join(",")).as_deref(), None)?;
    let sweeps = sweeps(kind, a.sweep.as_deref())?;

    let dir = match (&a.save, &a.load) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => std::env::temp_dir().join(format!("quarry-bench-{}", std::process::id())),
    };
    let temp = a.save.is_none() && a.load.is_none();
    let mut fixed = serde_json::Map::new();
    let start = Instant::now();
    let mut build_seconds = 0.0;
    if a.load.is_none() {
        let base = base.as_ref().context("building needs the base vectors")?;
        match (&base_build, kind) {
            (Build::Flat(storages), _) => {
                let storage = storages.first().copied().unwrap_or(quarry_ann::Storage::F32);
                fixed.insert("storage".into(), storage.name().into());
                let index = build_pool
                    .install(|| QuantFlatIndex::build(base, a.metric, FlatParams { storage }, qp))
                    .with_context(|| format!("building flat+{family} from {}", a.base.display()))?;
                build_seconds = start.elapsed().as_secs_f64();
                index.save(&dir).with_context(|| format!("saving the index to {}", dir.display()))?;
            }
            (Build::Hnsw(g), _) => {
                let graph = g.resolve();
                fixed.insert("M".into(), graph.m.into());
                fixed.insert("efc".into(), graph.ef_construction.into());
                let index = build_pool
                    .install(|| QuantHnswIndex::build(base, a.metric, graph, qp))
                    .with_context(|| format!("building hnsw+{family} from {}", a.base.display()))?;
                build_seconds = start.elapsed().as_secs_f64();
                index.save(&dir).with_context(|| format!("saving the index to {}", dir.display()))?;
            }
        }
        if !a.json {
            eprintln!("built in {build_seconds:.1} s; saved to {}", dir.display());
        }
    }
    drop(base);
    let saved = Saved { kind, dir: &dir, spec: qp.spec };
    let result = measure_opened(bench, scorer.as_ref(), &saved, fixed, build_seconds, sweeps);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// A saved quantized index: its base kind, folder and the codes asked for.
struct Saved<'a> {
    kind: Kind,
    dir: &'a Path,
    spec: QuantSpec,
}

/// Opens the saved folder and times every sweep point, one row each.
fn measure_opened(
    bench: &Bench,
    scorer: Option<&quarry_ann::FlatIndex>,
    saved: &Saved,
    mut fixed: serde_json::Map<String, serde_json::Value>,
    build_seconds: f64,
    sweeps: Sweeps,
) -> Result<()> {
    let Sweeps { ef: efs, rerank: reranks } = sweeps;
    let (kind, dir, asked) = (saved.kind, saved.dir, saved.spec);
    let check = |found: QuantSpec| -> Result<()> {
        if found.family() != asked.family() {
            bail!(
                "{} holds {} codes, not the {} codes --index asks for",
                dir.display(),
                found.family(),
                asked.family()
            );
        }
        Ok(())
    };
    let describe = |fixed: &mut serde_json::Map<String, serde_json::Value>,
                    qp: QuantParams,
                    dim: usize,
                    code_len: usize| {
        fixed.insert("codes".into(), qp.spec.family().into());
        match qp.spec {
            QuantSpec::Sq { bits } | QuantSpec::RaBitQ { bits } => {
                fixed.insert("bits".into(), bits.into());
            }
            QuantSpec::Pq { m, nbits } => {
                fixed.insert("m".into(), m.into());
                fixed.insert("nbits".into(), nbits.into());
            }
        }
        fixed.insert("bits_per_dim".into(), qp.spec.bits_per_dim(dim).into());
        fixed.insert("code_bytes".into(), code_len.into());
    };
    match kind {
        Kind::Flat => {
            let index = QuantFlatIndex::open(dir).with_context(|| format!("opening {}", dir.display()))?;
            load::check_dims(&index, &bench.queries, &bench.args.base, &bench.args.query)?;
            let qp = index.params();
            check(qp.spec)?;
            describe(&mut fixed, qp, index.dim(), index.code_len());
            for rerank in reranks.unwrap_or_else(|| vec![qp.rerank]) {
                let mut p = fixed.clone();
                p.insert("rerank".into(), rerank.into());
                let s = index.searcher(rerank);
                let (row, passes) =
                    bench.measure(&s, scorer, p.into(), build_seconds, index.resident_bytes())?;
                bench.print(&row, &passes, None)?;
            }
        }
        Kind::Hnsw => {
            let index = QuantHnswIndex::open(dir).with_context(|| format!("opening {}", dir.display()))?;
            load::check_dims(&index, &bench.queries, &bench.args.base, &bench.args.query)?;
            let qp = index.params();
            check(qp.spec)?;
            describe(&mut fixed, qp, index.dim(), index.code_len());
            let g = index.graph().params();
            fixed.insert("M".into(), g.m.into());
            fixed.insert("efc".into(), g.ef_construction.into());
            for rerank in reranks.unwrap_or_else(|| vec![qp.rerank]) {
                for &ef in efs.as_deref().unwrap_or(&[HnswSearch::default().ef]) {
                    let mut p = fixed.clone();
                    p.insert("ef".into(), ef.into());
                    p.insert("rerank".into(), rerank.into());
                    let mut s = index.searcher(HnswSearch { ef, ..HnswSearch::default() }, rerank);
                    if bench.args.no_rescore {
                        p.insert("rescore".into(), false.into());
                        s = s.estimated();
                    }
                    let (row, passes) =
                        bench.measure(&s, scorer, p.into(), build_seconds, index.resident_bytes())?;
                    bench.print(&row, &passes, None)?;
                }
            }
        }
    }
    Ok(())
}
