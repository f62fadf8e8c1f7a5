//! `quarry bench ann --index spann --index-dir DIR`: the SPANN memory+disk index. The index is
//! built into DIR (or opened from it with `--load DIR`), then every sweep point is timed; rows
//! add `p50_ms`/`p99_ms` (every row has them) and report the resident part of the index
//! (head graph, id map, posting cache) as the library estimates it in `index_bytes`.
//!
//! The OS's view of resident memory: after timing a point, this binary is run again as
//! `quarry bench open --index-file DIR` with the same search parameters over the same queries
//! (one pass), a process that only opens and searches, and its figures join the row:
//! `resident_bytes` (VmRSS growth from just before the open to after the searches: the index's
//! own memory, binary and allocator excluded), `rss_anon_bytes` / `rss_file_bytes` (the same
//! growth split into anonymous and file-backed pages), `process_rss_bytes` (the child's whole
//! VmRSS), `baseline_rss_bytes` and `resident_fraction` (`resident_bytes` over the raw f32 bytes
//! `N × d × 4`), as `scripts/peer_spann.py` reports them for faiss. Rows also carry `cold` and
//! `build_threads`. With `--cold`, the index is closed, the page cache dropped (needs root) and
//! the index reopened before each point, which is then timed on one pass with no warm-up (rows add
//! `open_seconds`, the reopen's time).
//!
//! `--params`: `head_ratio` (0.1), `replicas` (8), `rng_factor` (1.0), `candidates` (64),
//! `closure` (4.0), `cap` (posting entries; 0 = 3 pages), `M`, `efc` (head graph), `seed`,
//! `cache_mb` (posting cache, default 0: every list is read from the file into a reused buffer),
//! `codes` (default `rabitq4`; `f32` entries, or `sq8`, `sq4`, `rabitq1`..`rabitq8`, `pq<M>` codes
//! re-scored from `vectors.qflat` by positioned reads; with RaBitQ, `rerank=0`, the default without
//! `rerank` in the sweep, re-scores by error bound; other codes default to their family's depth),
//! `ram_codes` (1: one code per vector in memory, posting lists of ids only), `budget_mb` (open
//! within a memory budget: what the resident part leaves becomes the posting cache, replacing
//! `cache_mb`; an error if the resident part alone is larger), `readahead` (1: ask
//! the OS to read all lists a query will probe before scanning them: parallel reads when cold).
//! `--sweep "max_postings=8,16,32;ratio=4,8;head_ef=32,64;rerank=0,2;heads=auto,graph,scan128"`
//! (every combination; `heads` is how the nearest heads are found: `auto`, `graph` (walk the head
//! graph on SQ8 keys, beam `head_ef`) or `scanD` (fast-scan the head codes, re-rank the best D)).

use super::cgroup::drop_page_cache;
use super::{AnnArgs, Bench};
use anyhow::{bail, Context, Result};
use quarry_ann::spann::{HeadSearch, SpannIndex, SpannParams, SpannSearch};
use quarry_ann::{QuantParams, QuantSpec};
use quarry_core::{Matrix, VectorIndex};
use quarry_eval::bench::Timing;
use serde_json::{Map, Value};
use std::path::Path;
use std::process::Command;
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

/// The search parameters of one sweep point. `head_ef` 0 means the library's default beam; the
/// beam is at least `max_postings` either way.
pub fn spann_search(
    max_postings: usize,
    ratio: f32,
    head_ef: usize,
    rerank: usize,
    head_search: HeadSearch,
    readahead: bool,
) -> SpannSearch {
    let head_ef = if head_ef == 0 { SpannSearch::default().head_ef } else { head_ef };
    SpannSearch {
        max_postings,
        max_dist_ratio: ratio,
        head_ef: head_ef.max(max_postings),
        rerank,
        head_search,
        readahead,
    }
}

/// Runs `quarry bench open` (this binary, in a child process) on the folder `dir` with `search`
/// over the run's queries, one pass, and returns the OS's view of the index's resident memory as
/// row keys: `resident_bytes`, `rss_anon_bytes`, `rss_file_bytes` (growth since just before the
/// open), `process_rss_bytes` and `baseline_rss_bytes` (the child's VmRSS after and before).
fn measure_resident(
    a: &AnnArgs,
    dir: &Path,
    search: &SpannSearch,
    cache_mb: usize,
) -> Result<Map<String, Value>> {
    let exe = std::env::current_exe().context("finding the quarry binary to measure resident memory")?;
    let mut args: Vec<String> = vec!["bench".into(), "open".into(), "--index-file".into()];
    args.push(dir.display().to_string());
    args.extend(["--query".into(), a.query.display().to_string()]);
    if let Some(n) = a.queries {
        args.extend(["--queries".into(), n.to_string()]);
    }
    args.extend([
        "--max-postings".into(),
        search.max_postings.to_string(),
        "--ratio".into(),
        search.max_dist_ratio.to_string(),
        "--head-ef".into(),
        search.head_ef.to_string(),
        "--rerank".into(),
        search.rerank.to_string(),
        "--heads".into(),
        head_search_name(search.head_search),
        "--readahead".into(),
        u8::from(search.readahead).to_string(),
        "--cache-mb".into(),
        cache_mb.to_string(),
        "-k".into(),
        a.k.to_string(),
        "--warm".into(),
        "--passes".into(),
        "1".into(),
        "--json".into(),
    ]);
    let shown = || format!("{} {}", exe.display(), args.join(" "));
    let out = Command::new(&exe)
        .args(&args)
        .output()
        .with_context(|| format!("measuring resident memory: running {}", shown()))?;
    if !out.status.success() {
        bail!(
            "measuring resident memory: `{}` exited with {}: {}",
            shown(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).with_context(|| {
        format!("measuring resident memory: `{}` printed no JSON object: {stdout:?}", shown())
    })?;
    let row: Value = serde_json::from_str(line)
        .with_context(|| format!("measuring resident memory: `{}` printed bad JSON {line:?}", shown()))?;
    let mut m = Map::new();
    for (ours, theirs) in [
        ("resident_bytes", "resident_bytes"),
        ("rss_anon_bytes", "resident_anon_bytes"),
        ("rss_file_bytes", "resident_file_bytes"),
        ("process_rss_bytes", "process_rss_bytes"),
        ("baseline_rss_bytes", "baseline_rss_bytes"),
    ] {
        let v = row.get(theirs).and_then(Value::as_u64).with_context(|| {
            format!("measuring resident memory: `{}` printed no {theirs:?} in {line}", shown())
        })?;
        m.insert(ours.into(), v.into());
    }
    Ok(m)
}

/// Runs the SPANN benchmark.
pub fn run(bench: &Bench, build_pool: &rayon::ThreadPool) -> Result<()> {
    let a = bench.args;
    let Some(dir) = a.index_dir.clone().or_else(|| a.load.clone()) else {
        bail!("--index spann needs --index-dir DIR (where the posting file is written) or --load DIR");
    };
    let mut p = SpannParams::default();
    let mut cache_mb = 0usize;
    let mut readahead = false;
    let mut budget_mb: Option<usize> = None;
    let mut codes_arg: Option<String> = Some("rabitq4".into());
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
            "readahead" => readahead = num::<u8>(k, v)? == 1,
            "budget_mb" => budget_mb = Some(num::<usize>(k, v)?),
            "codes" => codes_arg = Some(v.to_string()),
            "ram_codes" => p.codes_in_ram = num::<u8>(k, v)? == 1,
            _ => bail!(
                "unknown --params key {k:?} for the spann index: valid keys are head_ratio, replicas, \
                 rng_factor, candidates, closure, cap, M, efc, seed, cache_mb, budget_mb, readahead, codes, ram_codes"
            ),
        }
    }
    p.check()?;
    let d = SpannSearch::default();
    let (mut probes, mut ratios, mut head_efs) = (vec![d.max_postings], vec![d.max_dist_ratio], vec![0usize]);
    let mut reranks: Option<Vec<usize>> = None;
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
            "rerank" => reranks = Some(vals.iter().map(|v| num("rerank", v)).collect::<Result<_>>()?),
            "heads" => heads = vals.iter().map(|v| head_search(v)).collect::<Result<_>>()?,
            other => bail!(
                "unknown --sweep parameter {other:?} for the spann index: use max_postings, ratio, head_ef, rerank and/or heads"
            ),
        }
    }
    let cache = cache_mb << 20;
    let (base, scorer) = super::base_and_scorer(a, &bench.queries)?.unzip();
    if let Some(v) = &codes_arg {
        p.codes = codes_spec(v, base.as_ref().map_or(bench.queries.dim(), Matrix::dim))?;
    }
    let start = Instant::now();
    let (index, build_seconds) = if a.load.is_some() {
        (SpannIndex::open(&dir, cache).with_context(|| format!("opening {}", dir.display()))?, 0.0)
    } else {
        let base = base.as_ref().context("building needs the base vectors")?;
        let (index, stats) =
            build_pool.install(|| SpannIndex::build(base, a.metric, p, &dir, cache)).with_context(|| {
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
    let (mut index, mut cache, mut cache_mb) = (index, cache, cache_mb);
    if let Some(mb) = budget_mb {
        index = SpannIndex::open_with_budget(&dir, mb << 20)
            .with_context(|| format!("opening {} within {mb} MiB", dir.display()))?;
        cache = index.cache_budget();
        cache_mb = cache >> 20;
        if !a.json {
            eprintln!(
                "memory budget {mb} MiB: {:.1} MiB resident part, {cache_mb} MiB posting cache",
                index.resident_bytes() as f64 / (1 << 20) as f64
            );
        }
    }
    drop(base);
    let mut index = index;
    // Without `rerank` in the sweep: the code family's default (RaBitQ: by error bound).
    let reranks =
        reranks.unwrap_or_else(|| vec![index.params().codes.map_or(d.rerank, |c| c.default_rerank())]);
    let ip = index.params();
    let (head_count, raw_bytes) = (index.head_count(), (index.len() * index.dim() * 4) as f64);
    let mut warned = false;
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
        let search = spann_search(max_postings, ratio, head_ef, rerank, head_search, readahead);
        let mut extra = Map::new();
        let mut cold = false;
        if a.cold {
            // Closed first, so that its memory-mapped pages leave the page cache too.
            drop(index);
            match drop_page_cache() {
                Ok(()) => cold = true,
                Err(e) if !warned => {
                    warned = true;
                    eprintln!(
                        "warning: could not drop the page cache ({e:#}); rows are marked \"cold\": false"
                    );
                }
                Err(_) => {}
            }
            let t = Instant::now();
            index = SpannIndex::open(&dir, cache).with_context(|| format!("reopening {}", dir.display()))?;
            extra.insert("open_seconds".into(), t.elapsed().as_secs_f64().into());
        }
        let params = serde_json::json!({
            "head_ratio": ip.head_ratio, "head_count": head_count, "replicas": ip.replicas,
            "M": ip.graph.m, "efc": ip.graph.ef_construction, "cache_mb": cache_mb,
            "max_postings": max_postings, "ratio": ratio, "head_ef": search.head_ef,
            "codes": ip.codes.map_or("f32", |c| c.family()), "ram_codes": ip.codes_in_ram,
            "code_bits": ip.codes.map(|c| c.bits_per_dim(index.dim())), "rerank": rerank,
            "heads": head_search_name(head_search),
        });
        let s = index.searcher(search);
        let (mut row, passes) = if a.cold {
            let timing = Timing { warmup_queries: 0, passes: 1 };
            bench.measure_with(&s, scorer.as_ref(), params, build_seconds, index.resident_bytes(), timing)?
        } else {
            bench.measure(&s, scorer.as_ref(), params, build_seconds, index.resident_bytes())?
        };
        extra.insert("cold".into(), cold.into());
        extra.insert("build_threads".into(), a.build_threads.into());
        // Under a memory cap the cgroup's peak is the measure (added by the parent); the
        // separate process measuring RSS is not started inside the cap.
        if !super::cgroup::in_capped_child() {
            extra.append(&mut measure_resident(a, &dir, &search, cache_mb)?);
        }
        if let Some(r) = extra.get("resident_bytes").and_then(Value::as_f64) {
            extra.insert("resident_fraction".into(), (r / raw_bytes.max(1.0)).into());
        }
        row.extra = extra;
        bench.print(&row, &passes, None)?;
    }
    Ok(())
}
