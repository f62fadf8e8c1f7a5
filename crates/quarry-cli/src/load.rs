//! Loading vector files into indexes, and id lists for run files.

use anyhow::{bail, Context, Result};
use quarry_ann::{FlatIndex, FlatParams, Storage};
use quarry_core::{Matrix, Metric, VectorIndex};
use quarry_eval::io;
use std::path::Path;
use std::time::Instant;

/// Index kinds `quarry search` can build today (`quarry bench ann` has its own list).
pub const INDEX_KINDS: &[&str] = &["flat"];

/// Checks an `--index` value of `quarry search`.
pub fn check_index_kind(kind: &str) -> Result<()> {
    if INDEX_KINDS.contains(&kind) {
        Ok(())
    } else {
        bail!("unknown index {kind:?}: available index kinds are {}", INDEX_KINDS.join(", "))
    }
}

/// Reads the query file, keeping at most `limit` rows.
pub fn queries(path: &Path, limit: Option<usize>) -> Result<Matrix> {
    let mut q = io::read_vectors(path).with_context(|| format!("loading queries from {}", path.display()))?;
    if let Some(n) = limit {
        q.truncate_rows(n);
    }
    if q.is_empty() {
        bail!("query file {} holds no vectors", path.display());
    }
    Ok(q)
}

/// Builds a flat index over the vectors in `path`; returns it with its build time in seconds.
///
/// An f16 `.npy` with f16 storage (and a metric that does not normalise) is stored bit for bit.
pub fn flat_index(path: &Path, metric: Metric, storage: Storage) -> Result<(FlatIndex, f64)> {
    let params = FlatParams { storage };
    let ctx = || format!("building a flat index from {}", path.display());
    if storage == Storage::F16 {
        if let Some((halves, dim)) = io::read_vectors_f16(path).with_context(ctx)? {
            let t = Instant::now();
            let index = FlatIndex::build_f16(&halves, dim, metric, params).with_context(ctx)?;
            return Ok((index, t.elapsed().as_secs_f64()));
        }
    }
    let base = io::read_vectors(path).with_context(|| format!("loading vectors from {}", path.display()))?;
    let t = Instant::now();
    let index = FlatIndex::build(&base, metric, params).with_context(ctx)?;
    Ok((index, t.elapsed().as_secs_f64()))
}

/// Reads the base vectors in `path` as f32 rows (f16 files are widened), to build several
/// indexes from one load.
pub fn base(path: &Path) -> Result<Matrix> {
    let base = io::read_vectors(path).with_context(|| format!("loading vectors from {}", path.display()))?;
    if base.is_empty() {
        bail!("base file {} holds no vectors", path.display());
    }
    Ok(base)
}

/// An exact f32 flat index over `base` (read from `path`, named in errors): the scorer that
/// recall of an approximate index is measured with.
pub fn exact_scorer(base: &Matrix, metric: Metric, path: &Path) -> Result<FlatIndex> {
    FlatIndex::build(base, metric, FlatParams::default())
        .with_context(|| format!("building the exact scorer over {}", path.display()))
}

/// Reads one id per line (blank lines skipped); errors unless there are exactly `expected`.
pub fn id_list(path: &Path, expected: usize, what: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} ids from {}", path.display()))?;
    let ids: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if ids.len() != expected {
        bail!("{} lists {} {what} ids but there are {expected} {what} vectors", path.display(), ids.len());
    }
    Ok(ids)
}

/// Checks that queries and index agree on dimension, with a message naming both files.
pub fn check_dims(index: &dyn VectorIndex, queries: &Matrix, base: &Path, query: &Path) -> Result<()> {
    if index.dim() != queries.dim() {
        bail!(
            "wrong dimension: {} holds {}-d vectors but {} holds {}-d queries",
            base.display(),
            index.dim(),
            query.display(),
            queries.dim()
        );
    }
    Ok(())
}
