//! `quarry bench open`: how fast a saved index opens and answers its first query, and how much
//! of the file that query actually read (the vectors are memory-mapped and page in on touch).

use crate::load;
use anyhow::{bail, Context, Result};
use quarry_ann::{FlatIndex, HnswIndex, HnswSearch};
use quarry_core::{SearchParams, VectorIndex};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `quarry bench open`.
#[derive(clap::Args)]
pub struct OpenArgs {
    /// A saved index file (`quarry bench ann --save FILE`).
    #[arg(long)]
    index_file: PathBuf,
    /// Query vectors; the first is the "first query", all are then run once.
    #[arg(long)]
    query: PathBuf,
    /// Results per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
    /// HNSW beam width.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Keep the file in the page cache (by default it is evicted first, so the open is cold).
    #[arg(long)]
    warm: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
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

enum Opened {
    Flat(FlatIndex),
    Hnsw(Box<HnswIndex>),
}

/// Runs `quarry bench open`.
pub fn run(a: OpenArgs) -> Result<()> {
    let queries = load::queries(&a.query, None)?;
    let file_bytes = std::fs::metadata(&a.index_file)
        .with_context(|| format!("reading {}", a.index_file.display()))?
        .len();
    let mut magic = [0u8; 8];
    std::fs::File::open(&a.index_file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("reading {}", a.index_file.display()))?;
    if !a.warm {
        evict(&a.index_file)?;
    }
    let start = Instant::now();
    let index = match magic {
        quarry_ann::hnsw::MAGIC => Opened::Hnsw(Box::new(HnswIndex::open(&a.index_file)?)),
        quarry_ann::flat::MAGIC => Opened::Flat(FlatIndex::open(&a.index_file)?),
        _ => bail!("{} is not a Quarry index file", a.index_file.display()),
    };
    let open_seconds = start.elapsed().as_secs_f64();
    let search = HnswSearch { ef: a.ef, ..HnswSearch::default() };
    let params = SearchParams::top(a.k);
    let dyn_index: Box<dyn VectorIndex + '_> = match &index {
        Opened::Flat(f) => Box::new(f.clone()),
        Opened::Hnsw(h) => Box::new(h.searcher(search)),
    };
    load::check_dims(dyn_index.as_ref(), &queries, &a.index_file, &a.query)?;
    let t = Instant::now();
    dyn_index.search(queries.row(0), &params)?;
    let first_query_ms = t.elapsed().as_secs_f64() * 1e3;
    let resident_first = resident_bytes(&a.index_file);
    let t = Instant::now();
    for q in queries.iter() {
        dyn_index.search(q, &params)?;
    }
    let rest_ms = t.elapsed().as_secs_f64() * 1e3 / queries.rows() as f64;
    let resident_all = resident_bytes(&a.index_file);
    let row = serde_json::json!({
        "index": match index { Opened::Flat(_) => "flat", Opened::Hnsw(_) => "hnsw" },
        "file_bytes": file_bytes,
        "cold": !a.warm,
        "open_seconds": open_seconds,
        "first_query_ms": first_query_ms,
        "mapped_resident_after_first_query_bytes": resident_first,
        "mapped_resident_after_all_queries_bytes": resident_all,
        "queries": queries.rows(),
        "mean_query_ms_after_first": rest_ms,
    });
    if a.json {
        println!("{row}");
    } else {
        println!(
            "opened {} ({:.1} MB, {}) in {:.3} s; first query {:.2} ms touched {:.1} MB of the mapped vectors \
             ({:.1}% of the file); after {} queries {:.1} MB resident, {:.3} ms per query",
            a.index_file.display(),
            file_bytes as f64 / 1e6,
            if a.warm { "warm page cache" } else { "evicted from the page cache first" },
            open_seconds,
            first_query_ms,
            resident_first as f64 / 1e6,
            100.0 * resident_first as f64 / file_bytes.max(1) as f64,
            queries.rows(),
            resident_all as f64 / 1e6,
            rest_ms
        );
    }
    Ok(())
}
