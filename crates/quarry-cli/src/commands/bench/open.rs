//! `quarry bench open`: how fast a saved index opens and answers its first query, how much of
//! the file that query actually read (the vectors are memory-mapped and page in on touch), and
//! the process's resident memory as the OS reports it after all queries (this process only
//! opens and searches). Quantized index folders (`quarry bench ann --index hnsw+sq8 --save DIR`)
//! are opened too: codes on the heap, f32 rows mapped for re-scoring; and SPANN folders
//! (`quarry bench ann --index spann --index-dir DIR`), with their full search parameters.
//!
//! `resident_bytes` is the growth of VmRSS from just before the index is opened (queries loaded,
//! binary and allocator already resident) to after all searches: the index's own resident
//! memory as the OS sees it, anonymous (`resident_anon_bytes`) plus file-backed mapped pages
//! (`resident_file_bytes`; it also holds the few pages of search code first run after the
//! baseline). `process_rss_bytes` is the whole process's VmRSS. Linux only (zeros elsewhere).

use super::spann::{head_search, head_search_name, spann_search};
use crate::load;
use anyhow::{bail, Context, Result};
use quarry_ann::spann::{SpannIndex, SpannSearch};
use quarry_ann::{FlatIndex, HnswIndex, HnswSearch, QuantFlatIndex, QuantHnswIndex};
use quarry_core::{SearchParams, VectorIndex};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `quarry bench open`.
#[derive(clap::Args)]
pub struct OpenArgs {
    /// A saved index file (`quarry bench ann --save FILE`), or a quantized index folder.
    #[arg(long)]
    index_file: PathBuf,
    /// Quantized indexes and coded SPANN folders: candidates re-scored per result (default: the
    /// index's own; SPANN: the library's default; 0 with RaBitQ codes re-scores by error bound).
    #[arg(long)]
    rerank: Option<usize>,
    /// SPANN folders: posting lists probed per query.
    #[arg(long, default_value_t = 32)]
    max_postings: usize,
    /// SPANN folders: read list j only if d(q, h_j) ≤ ratio · d(q, h_1) (default: the library's).
    #[arg(long)]
    ratio: Option<f32>,
    /// SPANN folders: beam of the head-graph search (0: the library's default; at least
    /// max_postings either way), as `bench ann --sweep head_ef=` takes it.
    #[arg(long, default_value_t = 0)]
    head_ef: usize,
    /// SPANN folders: how the nearest heads are found: auto, graph or scanD (e.g. scan128).
    #[arg(long, default_value = "auto")]
    heads: String,
    /// SPANN folders: 1 asks the OS to read every list a query will probe before scanning them.
    #[arg(long, default_value_t = 0)]
    readahead: u8,
    /// SPANN folders: posting cache in MiB (0: every list is read from the file).
    #[arg(long, default_value_t = 0)]
    cache_mb: usize,
    /// Query vectors; the first is the "first query", all are then run once.
    #[arg(long)]
    query: PathBuf,
    /// Use only the first N query vectors.
    #[arg(long)]
    queries: Option<usize>,
    /// Results per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
    /// HNSW beam width.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Keep the file in the page cache (by default it is evicted first, so the open is cold).
    #[arg(long)]
    warm: bool,
    /// Passes over all queries after the first query; the median pass gives `qps`.
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Ground-truth neighbour ids (.ivecs or integer .npy): the row gets `recall`, plain
    /// |A ∩ G| / k of the last pass's answers.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Run in a memory cgroup capped at this many MiB, page cache included (needs root; the
    /// page cache is dropped first, as `--warm` is then implied): the row gets
    /// `memory_limit_bytes`, `cgroup_peak_bytes` and `oom_killed`.
    #[arg(long)]
    memory_limit_mb: Option<u64>,
}

/// Evicts `path` from the page cache (Linux; elsewhere a no-op) so the open reads from disk.
fn evict(path: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: a valid open descriptor; POSIX_FADV_DONTNEED only drops clean cached pages.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
    Ok(())
}

/// Bytes of `path` resident in this process's mappings (Linux `/proc/self/smaps`; 0 elsewhere).
fn resident_bytes(path: &Path) -> u64 {
    let Ok(canon) = path.canonicalize() else { return 0 };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return 0 };
    let mut total = 0;
    let mut in_file = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_file = line.split_whitespace().nth(5).is_some_and(|p| Path::new(p) == canon);
        } else if in_file && first == "Rss:" {
            total += line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
        }
    }
    total
}

/// Resident memory of this process in bytes (Linux `/proc/self/status`; zeros elsewhere).
#[derive(Clone, Copy)]
pub(crate) struct Rss {
    /// VmRSS: all resident pages.
    pub(crate) total: u64,
    /// RssAnon: anonymous pages (heap, stacks).
    pub(crate) anon: u64,
    /// RssFile: file-backed mapped pages (the binary, memory-mapped index files).
    pub(crate) file: u64,
}

impl Rss {
    /// Growth since `before`, each figure floored at 0.
    fn since(self, before: Rss) -> Rss {
        Rss {
            total: self.total.saturating_sub(before.total),
            anon: self.anon.saturating_sub(before.anon),
            file: self.file.saturating_sub(before.file),
        }
    }
}

/// The current [`Rss`] of this process.
pub(crate) fn process_rss() -> Rss {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Rss { total: 0, anon: 0, file: 0 };
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Rss { total: field("VmRSS:"), anon: field("RssAnon:"), file: field("RssFile:") }
}

/// Total size of a file, or of the files directly inside a folder.
fn size_of(path: &Path) -> Result<u64> {
    if path.is_dir() {
        let mut total = 0;
        for e in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
            total += e?.metadata()?.len();
        }
        Ok(total)
    } else {
        Ok(std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len())
    }
}

enum Opened {
    Flat(FlatIndex),
    Hnsw(Box<HnswIndex>),
    QuantFlat(Box<QuantFlatIndex>),
    QuantHnsw(Box<QuantHnswIndex>),
    Spann(Box<SpannIndex>),
}

/// Runs `quarry bench open`.
pub fn run(a: OpenArgs) -> Result<()> {
    if super::cgroup::rerun_capped(a.memory_limit_mb)? {
        return Ok(());
    }
    let queries = load::queries(&a.query, a.queries)?;
    let gt = match &a.gt {
        Some(p) => {
            let gt = quarry_eval::io::read_id_rows(p)
                .with_context(|| format!("loading ground truth from {}", p.display()))?;
            anyhow::ensure!(
                gt.rows() >= queries.rows() && gt.cols >= a.k,
                "ground truth {} has {} rows of {} ids for {} queries and k = {}",
                p.display(),
                gt.rows(),
                gt.cols,
                queries.rows(),
                a.k
            );
            Some(gt)
        }
        None => None,
    };
    let heads = head_search(&a.heads)?;
    let file_bytes = size_of(&a.index_file)?;
    // The file whose mapped pages are counted: the vectors' file inside a quantized folder.
    let spann = a.index_file.join(quarry_ann::spann::META_FILE).exists();
    let mapped_file = if spann {
        a.index_file.join(quarry_ann::spann::HEADS_FILE)
    } else if a.index_file.is_dir() {
        let flat = a.index_file.join(quarry_ann::quant::FLAT_FILE);
        if flat.exists() {
            flat
        } else {
            a.index_file.join(quarry_ann::quant::HNSW_FILE)
        }
    } else {
        a.index_file.clone()
    };
    // Under a cap the whole page cache was dropped before this process started.
    if !a.warm && !super::cgroup::in_capped_child() {
        if a.index_file.is_dir() {
            for e in std::fs::read_dir(&a.index_file)? {
                evict(&e?.path())?;
            }
        } else {
            evict(&a.index_file)?;
        }
    }
    // The baseline: binary, allocator and queries resident, index not opened yet.
    let before = process_rss();
    let start = Instant::now();
    let index = if spann {
        Opened::Spann(Box::new(SpannIndex::open(&a.index_file, a.cache_mb << 20)?))
    } else if a.index_file.is_dir() {
        if a.index_file.join(quarry_ann::quant::FLAT_FILE).exists() {
            Opened::QuantFlat(Box::new(QuantFlatIndex::open(&a.index_file)?))
        } else {
            Opened::QuantHnsw(Box::new(QuantHnswIndex::open(&a.index_file)?))
        }
    } else {
        let mut magic = [0u8; 8];
        std::fs::File::open(&a.index_file)
            .and_then(|mut f| f.read_exact(&mut magic))
            .with_context(|| format!("reading {}", a.index_file.display()))?;
        match magic {
            quarry_ann::hnsw::MAGIC => Opened::Hnsw(Box::new(HnswIndex::open(&a.index_file)?)),
            quarry_ann::flat::MAGIC => Opened::Flat(FlatIndex::open(&a.index_file)?),
            _ => bail!("{} is not a Quarry index file", a.index_file.display()),
        }
    };
    let open_seconds = start.elapsed().as_secs_f64();
    let search = HnswSearch { ef: a.ef, ..HnswSearch::default() };
    let d = SpannSearch::default();
    let spann_params = spann_search(
        a.max_postings,
        a.ratio.unwrap_or(d.max_dist_ratio),
        a.head_ef,
        a.rerank.unwrap_or(d.rerank),
        heads,
        a.readahead == 1,
    );
    let params = SearchParams::top(a.k);
    // The flat index is searched in place (a clone would copy its rows into the measured RSS).
    let searcher: Box<dyn VectorIndex + '_>;
    let dyn_index: &dyn VectorIndex = match &index {
        Opened::Flat(f) => f,
        Opened::Hnsw(h) => {
            searcher = Box::new(h.searcher(search));
            searcher.as_ref()
        }
        Opened::QuantFlat(q) => {
            searcher = Box::new(q.searcher(a.rerank.unwrap_or(q.params().rerank)));
            searcher.as_ref()
        }
        Opened::QuantHnsw(q) => {
            searcher = Box::new(q.searcher(search, a.rerank.unwrap_or(q.params().rerank)));
            searcher.as_ref()
        }
        Opened::Spann(s) => {
            searcher = Box::new(s.searcher(spann_params));
            searcher.as_ref()
        }
    };
    load::check_dims(dyn_index, &queries, &a.index_file, &a.query)?;
    let t = Instant::now();
    dyn_index.search(queries.row(0), &params)?;
    let first_query_ms = t.elapsed().as_secs_f64() * 1e3;
    let resident_first = resident_bytes(&mapped_file);
    let mut pass_ms = Vec::with_capacity(a.passes.max(1));
    let mut answers: Vec<Vec<u32>> = vec![Vec::new(); queries.rows()];
    for _ in 0..a.passes.max(1) {
        let t = Instant::now();
        for (q, out) in queries.iter().zip(answers.iter_mut()) {
            let hits = dyn_index.search(q, &params)?;
            *out = quarry_eval::ann_recall::ids(&hits);
        }
        pass_ms.push(t.elapsed().as_secs_f64() * 1e3 / queries.rows() as f64);
    }
    let recall = gt.as_ref().map(|gt| quarry_eval::ann_recall::recall_at_k(&answers, gt, a.k)).transpose()?;
    let rest_ms = pass_ms[0];
    let mut sorted = pass_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let qps = 1e3 / sorted[sorted.len() / 2];
    let resident_all = resident_bytes(&mapped_file);
    let after = process_rss();
    let grown = after.since(before);
    let search_params = match index {
        Opened::Spann(_) => serde_json::json!({
            "max_postings": spann_params.max_postings, "ratio": spann_params.max_dist_ratio,
            "head_ef": spann_params.head_ef, "rerank": spann_params.rerank,
            "heads": head_search_name(spann_params.head_search), "cache_mb": a.cache_mb,
        }),
        Opened::Flat(_) => serde_json::json!({}),
        Opened::Hnsw(_) => serde_json::json!({ "ef": a.ef }),
        Opened::QuantFlat(ref q) => serde_json::json!({ "rerank": a.rerank.unwrap_or(q.params().rerank) }),
        Opened::QuantHnsw(ref q) => {
            serde_json::json!({ "ef": a.ef, "rerank": a.rerank.unwrap_or(q.params().rerank) })
        }
    };
    let row = serde_json::json!({
        "index": match index {
            Opened::Flat(_) => "flat".to_string(),
            Opened::Hnsw(_) => "hnsw".to_string(),
            Opened::QuantFlat(ref q) => format!("flat+{}", q.params().spec.family()),
            Opened::QuantHnsw(ref q) => format!("hnsw+{}", q.params().spec.family()),
            Opened::Spann(_) => "spann".to_string(),
        },
        "search": search_params,
        "index_resident_bytes": dyn_index.memory_bytes(),
        "resident_bytes": grown.total,
        "resident_anon_bytes": grown.anon,
        "resident_file_bytes": grown.file,
        "baseline_rss_bytes": before.total,
        "process_rss_bytes": after.total,
        "process_rss_anon_bytes": after.anon,
        "process_rss_file_bytes": after.file,
        "file_bytes": file_bytes,
        "cold": !a.warm,
        "open_seconds": open_seconds,
        "first_query_ms": first_query_ms,
        "mapped_resident_after_first_query_bytes": resident_first,
        "mapped_resident_after_all_queries_bytes": resident_all,
        "queries": queries.rows(),
        "mean_query_ms_after_first": rest_ms,
        "pass_query_ms": pass_ms,
        "qps": qps,
        "k": a.k,
        "recall": recall,
    });
    if a.json {
        println!("{row}");
    } else {
        println!(
            "opened {} ({:.1} MB, {}) in {:.3} s; first query {:.2} ms touched {:.1} MB of the mapped vectors \
             ({:.1}% of the file); after {} queries {:.1} MB resident, {:.3} ms per query (first pass), \
             {:.0} QPS (median of {} passes); the index's own resident memory (RSS growth since before the open) \
             {:.1} MB ({:.1} MB anonymous, {:.1} MB file-backed); process RSS {:.1} MB ({:.1} MB anonymous, \
             {:.1} MB file-backed)",
            a.index_file.display(),
            file_bytes as f64 / 1e6,
            if a.warm { "warm page cache" } else { "evicted from the page cache first" },
            open_seconds,
            first_query_ms,
            resident_first as f64 / 1e6,
            100.0 * resident_first as f64 / file_bytes.max(1) as f64,
            queries.rows(),
            resident_all as f64 / 1e6,
            rest_ms,
            qps,
            pass_ms.len(),
            grown.total as f64 / 1e6,
            grown.anon as f64 / 1e6,
            grown.file as f64 / 1e6,
            after.total as f64 / 1e6,
            after.anon as f64 / 1e6,
            after.file as f64 / 1e6,
        );
    }
    Ok(())
}
