//! A sealed segment on disk (spec: docs/FORMAT.md, "Segment folder"): `segments/<id>/` holds
//! `points.qseg` (a framed file: the segment's points in row order in the WAL's upsert encoding,
//! and the rows of each per-value graph as JSON), `graph-<f>.hnsw` per vector field and
//! `sub-<j>-<f>.hnsw` per value graph (`hnsw+sq8` fields: folders `graph-<f>.sq8/` and
//! `sub-<j>-<f>.sq8/` holding the graph and its codes; `flat` fields: no file). Every file is written crash-safely and the folder fsynced
//! before a manifest names it; segment folders are immutable once named (deletes are tombstones
//! in the manifest).

use crate::id::PointId;
use crate::payload_index::Key;
use crate::point::{Op, Point};
use crate::segment::{Graph, IndexKind, Segment};
use quarry_ann::{HnswIndex, QuantHnswIndex};
use quarry_core::{Error, Result};
use quarry_store::framing::FIELDS_LEN;
use quarry_store::{le, write_framed, Framed};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Folder of the segments in a collection's folder.
pub const SEGMENTS_DIR: &str = "segments";
/// Magic of a segment's points file.
pub const MAGIC: [u8; 8] = *b"QRYSEGP\0";
/// Version of the segment folder format.
pub const VERSION: u32 = 1;
pub(crate) const POINTS_FILE: &str = "points.qseg";

/// Folder of segment `id` in the collection folder `dir`.
pub(crate) fn segment_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(SEGMENTS_DIR).join(format!("{id:08}"))
}

/// A segment read back: its points in row order, its graphs, and its value graphs with their
/// rows (indices into the points).
pub(crate) struct Loaded {
    pub(crate) points: Vec<Point>,
    pub(crate) graphs: Vec<Graph>,
    pub(crate) subs: Vec<LoadedSub>,
}

/// A value graph read back: its (key, value), its rows in the segment, its graphs per field.
pub(crate) type LoadedSub = ((String, Key), Vec<u32>, Vec<Graph>);

/// Writes `g` as `<stem>.hnsw` (file) or `<stem>.sq8` (folder) in `dir`.
fn save_graph(g: &Graph, dir: &Path, stem: &str) -> Result<()> {
    match g {
        Graph::Hnsw(h) => h.save(&dir.join(format!("{stem}.hnsw"))),
        Graph::Sq8(q) => q.save(&dir.join(format!("{stem}.sq8"))),
        Graph::Flat(_) => Ok(()),
    }
}

/// Reads the index of `kind` saved by [`save_graph`], checking it has `rows` rows.
fn load_graph(kind: IndexKind, dir: &Path, stem: &str, rows: usize) -> Result<Graph> {
    let (g, path) = match kind {
        IndexKind::Flat => return Ok(Graph::Flat(rows)),
        IndexKind::Hnsw => {
            let p = dir.join(format!("{stem}.hnsw"));
            (Graph::Hnsw(Box::new(HnswIndex::load(&p)?)), p)
        }
        IndexKind::HnswSq8 => {
            let p = dir.join(format!("{stem}.sq8"));
            QuantHnswIndex::verify(&p)?;
            (Graph::Sq8(Box::new(QuantHnswIndex::open(&p)?)), p)
        }
    };
    if g.rows() != rows {
        return Err(Error::corrupt(
            path,
            "header",
            format!("an index of {} rows, expected {rows}", g.rows()),
        ));
    }
    Ok(g)
}

fn key_json(k: &Key) -> Value {
    match k {
        Key::Int(i) => json!(i),
        Key::Str(s) => json!(s),
        Key::Bool(b) => json!(b),
    }
}

/// Writes segment `seg` (whose rows hold `ids`, `vectors[f]` row-major and `payloads`) into
/// `segments/<id>/` under `dir`, fsyncing every file and the folders.
pub(crate) fn save(
    dir: &Path,
    id: u64,
    seg: &Segment,
    ids: &[PointId],
    vectors: &[Vec<f32>],
    dims: &[usize],
    payloads: &[Map<String, Value>],
) -> Result<()> {
    let sdir = segment_dir(dir, id);
    if sdir.exists() {
        // A leftover of a seal that crashed before its manifest: never named, safe to replace.
        std::fs::remove_dir_all(&sdir).map_err(|e| Error::io("removing", &sdir, e))?;
    }
    std::fs::create_dir_all(&sdir).map_err(|e| Error::io("creating", &sdir, e))?;
    let n = ids.len();
    let mut body = Vec::with_capacity(5 + n * (16 + dims.iter().sum::<usize>() * 4 + 64));
    body.push(1);
    body.extend_from_slice(&(n as u32).to_le_bytes());
    for (row, (&pid, payload)) in ids.iter().zip(payloads).enumerate() {
        let vs: Vec<&[f32]> =
            dims.iter().enumerate().map(|(f, &d)| &vectors[f][row * d..(row + 1) * d]).collect();
        crate::point::put_point(&mut body, pid, &vs, payload);
    }
    // Value graphs: (key, value, rows), in a fixed order so file names are stable.
    let mut subs: Vec<(&(String, Key), &Segment)> = seg.subs.iter().collect();
    subs.sort_by(|a, b| a.0.cmp(b.0));
    let sub_rows: Vec<Value> = subs
        .iter()
        .map(|((key, value), sub)| {
            let rows: Vec<u32> = sub.slots.iter().filter_map(|&s| seg.local(s)).collect();
            json!({"key": key, "value": key_json(value), "rows": rows})
        })
        .collect();
    let subs_json = serde_json::to_vec(&sub_rows).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut fields = [0u8; FIELDS_LEN];
    fields[0..8].copy_from_slice(&(n as u64).to_le_bytes());
    fields[8..12].copy_from_slice(&(dims.len() as u32).to_le_bytes());
    write_framed(&sdir.join(POINTS_FILE), MAGIC, VERSION, &fields, &[&body, &subs_json], 0)?;
    for (f, g) in seg.graphs.iter().enumerate() {
        save_graph(g, &sdir, &format!("graph-{f}"))?;
    }
    for (j, (_, sub)) in subs.iter().enumerate() {
        for (f, g) in sub.graphs.iter().enumerate() {
            save_graph(g, &sdir, &format!("sub-{j}-{f}"))?;
        }
    }
    quarry_store::sync_folder(&sdir)?;
    quarry_store::sync_folder(&dir.join(SEGMENTS_DIR))
}

/// Reads segment `id` of the collection in `dir` whose vector fields are indexed as `kinds`,
/// checking every checksum and that the indexes agree with the points.
pub(crate) fn load(dir: &Path, id: u64, kinds: &[IndexKind]) -> Result<Loaded> {
    let fields = kinds.len();
    let sdir = segment_dir(dir, id);
    let path = sdir.join(POINTS_FILE);
    let bad = |loc: &str, msg: String| Error::corrupt(&path, loc, msg);
    let mut file = Framed::open(&path, MAGIC, VERSION, "segment points")?;
    let n = le::u64_at(&file.fields, 0).unwrap_or(0) as usize;
    let nf = le::u32_at(&file.fields, 8).unwrap_or(0) as usize;
    if nf != fields {
        return Err(bad("header", format!("{nf} vector fields, the schema has {fields}")));
    }
    let points = match Op::decode(&file.read(0, "points")?).map_err(|e| bad("points", e.to_string()))? {
        Op::Upsert(p) if p.len() == n => p,
        _ => return Err(bad("points", format!("not an upsert of {n} points"))),
    };
    let subs_json: Vec<Value> = serde_json::from_slice(&file.read(1, "value graphs")?)
        .map_err(|e| bad("value graphs", e.to_string()))?;
    let graphs = (0..fields)
        .map(|f| load_graph(kinds[f], &sdir, &format!("graph-{f}"), n))
        .collect::<Result<Vec<_>>>()?;
    let mut subs = Vec::new();
    for (j, s) in subs_json.iter().enumerate() {
        let key = s["key"].as_str().ok_or_else(|| bad("value graphs", format!("entry {j}: key")))?;
        let value = Key::of(&s["value"]).ok_or_else(|| bad("value graphs", format!("entry {j}: value")))?;
        let rows: Vec<u32> = serde_json::from_value(s["rows"].clone())
            .map_err(|e| bad("value graphs", format!("entry {j}: rows: {e}")))?;
        if rows.windows(2).any(|w| w[0] >= w[1]) || rows.last().is_some_and(|&r| r as usize >= n) {
            return Err(bad("value graphs", format!("entry {j}: rows not ascending within the segment")));
        }
        let g = (0..fields)
            .map(|f| load_graph(kinds[f], &sdir, &format!("sub-{j}-{f}"), rows.len()))
            .collect::<Result<Vec<_>>>()?;
        subs.push(((key.to_string(), value), rows, g));
    }
    Ok(Loaded { points, graphs, subs })
}

/// Removes segment folders under `dir` that `keep` does not name (left by crashed seals or
/// replaced by merges).
pub(crate) fn remove_unnamed(dir: &Path, keep: &[u64]) -> Result<()> {
    let root = dir.join(SEGMENTS_DIR);
    let Ok(entries) = std::fs::read_dir(&root) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let named = name.parse::<u64>().is_ok_and(|id| keep.contains(&id));
        if !named {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io("removing", e.path(), err))?;
        }
    }
    quarry_store::sync_folder(&root)
}
