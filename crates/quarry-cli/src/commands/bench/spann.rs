//! `quarry bench ann --index spann --index-dir DIR`: the SPANN memory+disk index. The index is
//! built into DIR (or opened from it with `--load DIR`), then every sweep point is timed; rows
//! add `p50_ms`/`p99_ms` (every row has them) and report the resident part of the index
//! (head graph, id map, posting cache) as `index_bytes`. The OS's view of resident memory comes
//! from `quarry bench open --index-file DIR`, a process that only opens and searches.
//!
//! `--params`: `head_ratio` (0.1), `replicas` (8), `rng_factor` (1.0), `candidates` (64),
//! `closure` (4.0), `cap` (posting entries; 0 = 3 pages), `M`, `efc` (head graph), `seed`,
//! `cache_mb` (posting cache, default 16; 0 reads every list from the file into a reused buffer),
//! `codes` (`f32` entries, or `sq8`, `sq4`, `rabitq1`..`rabitq8`, `pq<M>` codes re-scored from
//! `vectors.qflat` by positioned reads; with RaBitQ, `rerank=0` re-scores by error bound),
//! `ram_codes` (1: one code per vector in memory, posting lists of ids only).
//! `--sweep "max_postings=8,16,32;ratio=4,8;head_ef=32,64;rerank=0,2;heads=auto,graph,scan128"`
//! (every combination; `heads` is how the nearest heads are found: `auto`, `graph` (walk the head
//! graph on SQ8 keys, beam `head_ef`) or `scanD` (fast-scan the head codes, re-rank the best D)).

use super::Bench;
use crate::load;
use anyhow::{bail, Context, Result};
use quarry_ann::spann::{HeadSearch, SpannIndex, SpannParams, SpannSearch};
use quarry_ann::{QuantParams, QuantSpec};
use quarry_core::VectorIndex;
use std::time::Instant;

/// Parses one number of `--params` / `--sweep`.
fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.parse::<T>().ok().with_context(|| format!("--params {key}={v}: not a valid number"))
}

/// Parses `codes=`: `f32` (no codes), `sq8`, `sq4`, `rabitq` or `rabitqB` (B bits, 1..8), `pqM`
/// (M 8-bit sub-spaces).
fn codes_spec(v: &str, dim: usize) -> Result<Option<QuantSpec>> {
    let (family, bits) = match v {
        "f32" | "none" => return Ok(None),
        _ if v.starts_with("rabitq") => ("rabitq", v.trim_start_matches("rabitq")),
        _ if v.starts_with("pq") => ("pq", v.trim_start_matches("pq")),
        _ => (v, ""),
    };
    let opts: Vec<(&str, &str)> = match (family, bits) {
        (_, "") => Vec::new(),
        ("pq", m) => vec![("m", m)],
        (_, b) => vec![("bits", b)],
    };
    let (qp, _) = QuantParams::parse(family, &opts, dim)
        .with_context(|| format!("--params codes={v}: expected f32, sq8, sq4, rabitq[1-8] or pq<M>"))?;
    Ok(Some(qp.spec))
}

/// Parses a head search mode: `auto`, `graph` or `scanD`.
pub fn head_search(v: &str) -> Result<HeadSearch> {
    Ok(match v {
        "auto" => HeadSearch::Auto,
        "graph" => HeadSearch::Graph,
        _ => match v.strip_prefix("scan").map(str::parse::<usize>) {
            Some(Ok(depth)) if depth > 0 => HeadSearch::Scan { depth },
            _ => bail!("heads={v}: expected auto, graph or scanD with D ≥ 1 (e.g. scan128)"),
        },
    })
}

/// The name of a head search mode, as [`head_search`] parses it.
pub fn head_search_name(h: HeadSearch) -> String {
    match h {
        HeadSearch::Auto => "auto".into(),
        HeadSearch::Graph => "graph".into(),
        HeadSearch::Scan { depth } => format!("scan{depth}"),
    }
}

/// Runs the SPANN benchmark.
pub fn run(bench: &Bench, build_pool: &rayon::ThreadPool) -> Result<()> {
    let a = bench.args;
    let Some(dir) = a.index_dir.clone().or_else(|| a.load.clone()) else {
        bail!("--index spann needs --index-dir DIR (where the posting file is written) or --load DIR");
    };
    let mut p = SpannParams::default();
    let mut cache_mb = 16usize;
    let mut codes_arg: Option<String> = None;
    for kv in a.params.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = kv.split_once('=') else { bail!("--params expects key=value, got {kv:?}") };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "head_ratio" => p.head_ratio = num(k, v)?,
            "replicas" => p.replicas = num(k, v)?,
            "rng_factor" => p.rng_factor = num(k, v)?,
            "candidates" => p.candidates = num(k, v)?,
            "closure" => p.closure = num(k, v)?,
            "cap" => p.posting_cap = num(k, v)?,
            "M" => p.graph.m = num(k, v)?,
            "efc" => p.graph.ef_construction = num(k, v)?,
            "seed" => p.seed = num(k, v)?,
            "cache_mb" => cache_mb = num(k, v)?,
            "codes" => codes_arg = Some(v.to_string()),
            "ram_codes" => p.codes_in_ram = num::<u8>(k, v)? == 1,
            _ => bail!(
                "unknown --params key {k:?} for the spann index: valid keys are head_ratio, replicas, \
                 rng_factor, candidates, closure, cap, M, efc, seed, cache_mb, codes, ram_codes"
            ),
        }
    }
    p.check()?;
    let d = SpannSearch::default();
    let (mut probes, mut ratios, mut head_efs) = (vec![d.max_postings], vec![d.max_dist_ratio], vec![0usize]);
    let mut reranks = vec![d.rerank];
    let mut heads = vec![d.head_search];
    for part in a.sweep.as_deref().unwrap_or("").split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, values)) = part.split_once('=') else {
            bail!("--sweep expects name=v1,v2,... separated by ';' (max_postings, ratio, head_ef), got {part:?}");
        };
        let vals: Vec<&str> = values.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        match name.trim() {
            "max_postings" => probes = vals.iter().map(|v| num("max_postings", v)).collect::<Result<_>>()?,
            "ratio" => ratios = vals.iter().map(|v| num("ratio", v)).collect::<Result<_>>()?,
            "head_ef" => head_efs = vals.iter().map(|v| num("head_ef", v)).collect::<Result<_>>()?,
            "rerank" => reranks = vals.iter().map(|v| num("rerank", v)).collect::<Result<_>>()?,
            "heads" => heads = vals.iter().map(|v| head_search(v)).collect::<Result<_>>()?,
            other => bail!(
                "unknown --sweep parameter {other:?} for the spann index: use max_postings, ratio, head_ef, rerank and/or heads"
            ),
        }
    }
    let cache = cache_mb << 20;
    let base = load::base(&a.base)?;
    if let Some(v) = &codes_arg {
        p.codes = codes_spec(v, base.dim())?;
    }
    let scorer = load::exact_scorer(&base, a.metric, &a.base)?;
    load::check_dims(&scorer, &bench.queries, &a.base, &a.query)?;
    let start = Instant::now();
    let (index, build_seconds) = if a.load.is_some() {
        (SpannIndex::open(&dir, cache).with_context(|| format!("opening {}", dir.display()))?, 0.0)
    } else {
        let (index, stats) =
            build_pool.install(|| SpannIndex::build(&base, a.metric, p, &dir, cache)).with_context(|| {
                format!("building a spann index from {} into {}", a.base.display(), dir.display())
            })?;
        let secs = start.elapsed().as_secs_f64();
        if !a.json {
            eprintln!(
                "built in {secs:.1} s: {} heads, {} posting entries ({:.2} per vector), longest list {}, {} cut, {} orphans",
                stats.heads, stats.entries, stats.replication, stats.max_list, stats.cut, stats.orphans
            );
        }
        (index, secs)
    };
    drop(base);
    let ip = index.params();
    let mut grid = Vec::new();
    for &p in &probes {
        for &r in &ratios {
            for &e in &head_efs {
                for &x in &reranks {
                    for &hs in &heads {
                        grid.push((p, r, e, x, hs));
                    }
                }
            }
        }
    }
    for (max_postings, ratio, head_ef, rerank, head_search) in grid {
        {
            // head_ef 0 (the default): the library's default beam, at least max_postings.
            let head_ef = if head_ef == 0 { d.head_ef.max(max_postings) } else { head_ef.max(max_postings) };
            let search = SpannSearch { max_postings, max_dist_ratio: ratio, head_ef, rerank, head_search };
            let params = serde_json::json!({
                "head_ratio": ip.head_ratio, "heads": index.head_count(), "replicas": ip.replicas,
                "M": ip.graph.m, "efc": ip.graph.ef_construction, "cache_mb": cache_mb,
                "max_postings": max_postings, "ratio": ratio, "head_ef": head_ef,
                "codes": ip.codes.map_or("f32", |c| c.family()), "ram_codes": ip.codes_in_ram, "code_bits": ip.codes.map(|c| c.bits_per_dim(index.dim())), "rerank": rerank, "heads": head_search_name(head_search),
            });
            let s = index.searcher(search);
            let (row, passes) = bench.measure(&s, &scorer, params, build_seconds, index.resident_bytes())?;
            bench.print(&row, &passes, None)?;
        }
    }
    Ok(())
}
