//! A sealed segment on disk (spec: docs/FORMAT.md, "Segment folder"). Version 2:
//! `segments/<id>/` holds `points.qseg` (a framed file: the segment's points in row order in the
//! WAL's upsert encoding with no vectors — ids and payloads —, and the rows of each per-value
//! graph as JSON), `index-<f>/` per vector field (the field's index folder, whose row file is the
//! only copy of the vectors) and `sub-<j>-<f>/` per value graph. Version 1 (still read) kept the
//! vectors in `points.qseg` and `graph-<f>.hnsw` / `graph-<f>.sq8/` graphs. Every file is written
//! crash-safely and the folder fsynced before a manifest names it; segment folders are immutable
//! once named (deletes are tombstones in the manifest).

use crate::id::PointId;
use crate::multivector::TokenStore;
use crate::payload_index::Key;
use crate::payloads::Source;
use crate::point::{Op, Point};
use crate::segment::FieldIndex;
use quarry_ann::{AnyIndex, Base, FlatIndex, FlatParams, HnswIndex, QuantHnswIndex, Residency};
use quarry_core::{Error, Matrix, Result};
use quarry_store::framing::FIELDS_LEN;
use quarry_store::{le, write_framed, Framed};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Folder of the segments in a collection's folder.
pub const SEGMENTS_DIR: &str = "segments";
/// Magic of a segment's points file.
pub const MAGIC: [u8; 8] = *b"QRYSEGP\0";
/// Version of the segment folder format written.
pub const VERSION: u32 = 2;
/// The earlier version still read: vectors in `points.qseg`, graphs in `graph-<f>.*`.
pub const VERSION_1: u32 = 1;
pub(crate) const POINTS_FILE: &str = "points.qseg";

/// Folder of segment `id` in the collection folder `dir`.
pub(crate) fn segment_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(SEGMENTS_DIR).join(format!("{id:08}"))
}

/// A segment read back: its points in row order (no vectors), an opened index per field, and
/// its value graphs with their rows (indices into the points).
pub(crate) struct Loaded {
    /// Ids in row order.
    pub(crate) ids: Vec<PointId>,
    /// The bytes the payloads are in (the mapped points section; for version 1, a buffer).
    pub(crate) payload_bytes: Source,
    /// Each row's payload JSON in `payload_bytes`: (offset, length).
    pub(crate) payload_ranges: Vec<(u64, u32)>,
    pub(crate) indexes: Vec<AnyIndex>,
    /// Per field: a multi-vector field's vectors.
    pub(crate) tokens: Vec<Option<TokenStore>>,
    pub(crate) subs: Vec<LoadedSub>,
}

/// A value graph read back: its (key, value), its rows in the segment, its index and
/// multi-vector store per field.
pub(crate) type LoadedSub = ((String, Key), Vec<u32>, Vec<(AnyIndex, Option<TokenStore>)>);

/// A fresh, empty folder for segment `id` (a leftover of a seal that crashed before its manifest
/// named it is removed: never named, safe to replace).
pub(crate) fn create(dir: &Path, id: u64) -> Result<PathBuf> {
    let sdir = segment_dir(dir, id);
    if sdir.exists() {
        std::fs::remove_dir_all(&sdir).map_err(|e| Error::io("removing", &sdir, e))?;
    }
    std::fs::create_dir_all(&sdir).map_err(|e| Error::io("creating", &sdir, e))?;
    Ok(sdir)
}

/// Opens a version-1 graph `<stem>.hnsw` / `<stem>.sq8` (or, for `flat`, builds the exact index
/// from the rows the points file held).
fn load_v1_index(fi: &FieldIndex, dir: &Path, stem: &str, rows: &[f32]) -> Result<AnyIndex> {
    let heap = fi.residency == Residency::Memory;
    Ok(match (fi.spec.base, fi.spec.codes.is_some()) {
        (Base::Flat, _) => AnyIndex::from_flat(FlatIndex::build(
            &Matrix::new(rows.to_vec(), fi.dim)?,
            fi.metric,
            FlatParams::default(),
        )?),
        (Base::Hnsw, false) => {
            let p = dir.join(format!("{stem}.hnsw"));
            AnyIndex::from_hnsw(if heap { HnswIndex::load(&p)? } else { HnswIndex::open(&p)? })
        }
        (Base::Hnsw, true) => {
            let p = dir.join(format!("{stem}.sq8"));
            QuantHnswIndex::verify(&p)?;
            AnyIndex::from_quant_hnsw(QuantHnswIndex::open(&p)?)
        }
        (Base::Spann, _) => {
            return Err(Error::corrupt(
                dir,
                "segment",
                "a version-1 segment holds no SPANN index".to_string(),
            ))
        }
    })
}

fn key_json(k: &Key) -> Value {
    match k {
        Key::Int(i) => json!(i),
        Key::Str(s) => json!(s),
        Key::Bool(b) => json!(b),
    }
}

/// Writes the points file of the segment in `sdir` (made by [`create`], its indexes already
/// built there): `ids` and `payloads` in row order, and the value graphs' (key, value, rows);
/// then fsyncs the folder and the segments folder. Returns where each payload's JSON is in
/// the points section (offset, length), as [`load`] finds it.
pub(crate) fn save_points(
    sdir: &Path,
    fields: usize,
    ids: &[PointId],
    payloads: &[Map<String, Value>],
    subs: &[(&(String, Key), Vec<u32>)],
) -> Result<Vec<(u64, u32)>> {
    let n = ids.len();
    let mut body = Vec::with_capacity(5 + n * 80);
    body.push(1);
    body.extend_from_slice(&(n as u32).to_le_bytes());
    let mut ranges = Vec::with_capacity(n);
    for (&pid, payload) in ids.iter().zip(payloads) {
        let len = crate::point::put_point(&mut body, pid, &[], payload);
        ranges.push(((body.len() - len) as u64, len as u32));
    }
    let sub_rows: Vec<Value> = subs
        .iter()
        .map(|((key, value), rows)| json!({"key": key, "value": key_json(value), "rows": rows}))
        .collect();
    let subs_json = serde_json::to_vec(&sub_rows).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut header = [0u8; FIELDS_LEN];
    header[0..8].copy_from_slice(&(n as u64).to_le_bytes());
    header[8..12].copy_from_slice(&(fields as u32).to_le_bytes());
    write_framed(&sdir.join(POINTS_FILE), MAGIC, VERSION, &header, &[&body, &subs_json], 0)?;
    quarry_store::sync_folder(sdir)?;
    if let Some(p) = sdir.parent() {
        quarry_store::sync_folder(p)?;
    }
    Ok(ranges)
}

/// Maps the points section of segment folder `sdir` (its checksum checked first) for the
/// payload ranges [`save_points`] returned.
pub(crate) fn map_points(sdir: &Path) -> Result<Source> {
    let path = sdir.join(POINTS_FILE);
    let mut file = Framed::open(&path, MAGIC, VERSION, "segment points")?;
    file.verify(0, "points")?;
    Ok(std::sync::Arc::new(file.map_random(0, "points")?))
}

/// Reads segment `id` of the collection in `dir` whose vector fields are indexed as `fields`,
/// checking every checksum read and that the indexes agree with the points.
pub(crate) fn load(dir: &Path, id: u64, fields: &[FieldIndex]) -> Result<Loaded> {
    let nfields = fields.len();
    let sdir = segment_dir(dir, id);
    let path = sdir.join(POINTS_FILE);
    let bad = |loc: &str, msg: String| Error::corrupt(&path, loc, msg);
    let mut file = match Framed::open(&path, MAGIC, VERSION, "segment points") {
        Ok(f) => f,
        Err(e) => Framed::open(&path, MAGIC, VERSION_1, "segment points").map_err(|_| e)?,
    };
    let v1 = file.version == VERSION_1;
    let n = le::u64_at(&file.fields, 0).unwrap_or(0) as usize;
    let nf = le::u32_at(&file.fields, 8).unwrap_or(0) as usize;
    if nf != nfields {
        return Err(bad("header", format!("{nf} vector fields, the schema has {nfields}")));
    }
    if !v1 {
        // The points section stays mapped: payloads are read from it (page cache), not copied.
        file.verify(0, "points")?;
        let body = file.map_random(0, "points")?;
        let stored = crate::point::decode_stored_points(&body).map_err(|e| bad("points", e.to_string()))?;
        if stored.len() != n {
            return Err(bad("points", format!("{} points, the header says {n}", stored.len())));
        }
        let ids = stored.iter().map(|p| p.0).collect();
        let ranges = stored.iter().map(|p| (p.1, p.2)).collect();
        drop(stored);
        return load_indexes(
            &sdir,
            &mut file,
            fields,
            n,
            (ids, std::sync::Arc::new(body), ranges),
            |stem, _, f| AnyIndex::open(&fields[f].spec, &sdir.join(stem), fields[f].residency),
        );
    }
    let body = file.read(0, "points")?;
    let points = match Op::decode(&body).map_err(|e| bad("points", e.to_string()))? {
        Op::Upsert(p) if p.len() == n => p,
        _ => return Err(bad("points", format!("not an upsert of {n} points"))),
    };
    drop(body);
    for p in &points {
        if p.vectors.len() != nfields {
            return Err(bad(
                "points",
                format!("point {} holds {} vectors, expected {nfields}", p.id, p.vectors.len()),
            ));
        }
        p.vectors.iter().zip(fields).try_for_each(|(v, fi)| match v.len() == fi.dim {
            true => Ok(()),
            false => Err(bad(
                "points",
                format!("point {}: a vector of dimension {}, expected {}", p.id, v.len(), fi.dim),
            )),
        })?;
    }
    let rows_of = |points: &[Point], rows: Option<&[u32]>, f: usize| -> Vec<f32> {
        match rows {
            None => points.iter().flat_map(|p| p.vectors[f].iter().copied()).collect(),
            Some(r) => r.iter().flat_map(|&i| points[i as usize].vectors[f].iter().copied()).collect(),
        }
    };
    let mut buf = Vec::new();
    let mut ranges = Vec::with_capacity(points.len());
    for p in &points {
        let at = buf.len();
        // Writing a map of JSON values to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buf, &p.payload);
        ranges.push((at as u64, (buf.len() - at) as u32));
    }
    let ids = points.iter().map(|p| p.id).collect();
    let sdir2 = sdir.clone();
    load_indexes(&sdir, &mut file, fields, n, (ids, std::sync::Arc::new(buf), ranges), |stem, rows, f| {
        load_v1_index(&fields[f], &sdir2, stem, &rows_of(&points, rows, f))
    })
}

/// Opens the indexes of a segment (`open(stem, rows of a value graph or None, field)`) and its
/// value graphs listed in section 1 of the points file, checking their shapes.
fn load_indexes(
    sdir: &Path,
    file: &mut Framed,
    fields: &[FieldIndex],
    n: usize,
    (ids, payload_bytes, payload_ranges): (Vec<PointId>, Source, Vec<(u64, u32)>),
    open: impl Fn(&str, Option<&[u32]>, usize) -> Result<AnyIndex>,
) -> Result<Loaded> {
    let path = sdir.join(POINTS_FILE);
    let bad = |loc: &str, msg: String| Error::corrupt(&path, loc, msg);
    let v1 = file.version == VERSION_1;
    let checked = |stem: String,
                   rows: Option<&[u32]>,
                   f: usize,
                   expect: usize|
     -> Result<(AnyIndex, Option<TokenStore>)> {
        let fi = &fields[f];
        // A multi-vector field's vectors are beside its index; a per-token index holds all of them.
        let (tokens, expect) = match &fi.multi {
            Some(m) if !v1 => {
                let t = TokenStore::open(&sdir.join(format!("{stem}-tokens")), m.dim, expect, fi.residency)?;
                let rows = if m.encoder.is_some() { expect } else { t.vector_count() };
                (Some(t), rows)
            }
            Some(_) => return Err(bad("header", "a version-1 segment holds no multi-vector field".into())),
            None => (None, expect),
        };
        let index = open(&stem, rows, f)?;
        let dim = quarry_core::VectorIndex::dim(&index);
        if index.row_count() != expect || dim != fi.dim {
            return Err(Error::corrupt(
                sdir.join(&stem),
                "header",
                format!(
                    "an index of {} rows of dimension {dim}, expected {expect} of {}",
                    index.row_count(),
                    fi.dim
                ),
            ));
        }
        Ok((index, tokens))
    };
    let subs_json: Vec<Value> = serde_json::from_slice(&file.read(1, "value graphs")?)
        .map_err(|e| bad("value graphs", e.to_string()))?;
    let stem = |f: usize| if v1 { format!("graph-{f}") } else { format!("index-{f}") };
    let (indexes, tokens): (Vec<AnyIndex>, Vec<Option<TokenStore>>) = (0..fields.len())
        .map(|f| checked(stem(f), None, f, n))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let mut subs = Vec::new();
    for (j, s) in subs_json.iter().enumerate() {
        let key = s["key"].as_str().ok_or_else(|| bad("value graphs", format!("entry {j}: key")))?;
        let value = Key::of(&s["value"]).ok_or_else(|| bad("value graphs", format!("entry {j}: value")))?;
        let rows: Vec<u32> = serde_json::from_value(s["rows"].clone())
            .map_err(|e| bad("value graphs", format!("entry {j}: rows: {e}")))?;
        if rows.windows(2).any(|w| w[0] >= w[1]) || rows.last().is_some_and(|&r| r as usize >= n) {
            return Err(bad("value graphs", format!("entry {j}: rows not ascending within the segment")));
        }
        let g = (0..fields.len())
            .map(|f| checked(format!("sub-{j}-{f}"), Some(&rows), f, rows.len()))
            .collect::<Result<Vec<_>>>()?;
        subs.push(((key.to_string(), value), rows, g));
    }
    Ok(Loaded { ids, payload_bytes, payload_ranges, indexes, tokens, subs })
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
