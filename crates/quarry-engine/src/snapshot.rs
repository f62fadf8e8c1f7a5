//! Collection snapshots (spec: docs/FORMAT.md, "Collection snapshot"): one file holding the
//! schema and a log that re-creates every present point.

use crate::collection::Collection;
use crate::id::PointId;
use crate::schema::CollectionSchema;
use quarry_core::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::PoisonError;

/// Magic of a collection snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"QRYSNAP\0";
/// Version of the snapshot format.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Reads a snapshot file: the schema and the log bytes, after checking magic, version, lengths
/// and the checksum (errors name the problem).
pub(crate) fn read_snapshot(path: &Path) -> Result<(CollectionSchema, Vec<u8>)> {
    let b = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let bad = |m: &str| Error::corrupt(path, "snapshot", m.to_string());
    if b.len() < 32 || b[..8] != SNAPSHOT_MAGIC {
        return Err(bad("not a Quarry collection snapshot (magic)"));
    }
    let (body, tail) = b.split_at(b.len() - 4);
    if quarry_store::checksum(body).to_le_bytes() != tail {
        return Err(bad("checksum mismatch: the file is damaged or truncated"));
    }
    let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if version != SNAPSHOT_VERSION {
        return Err(bad(&format!("version {version}, this build reads {SNAPSHOT_VERSION}")));
    }
    let n = quarry_store::le::u64_at(body, 12).ok_or_else(|| bad("truncated"))? as usize;
    let schema_bytes = body.get(20..20usize.saturating_add(n)).ok_or_else(|| bad("schema length"))?;
    let schema: CollectionSchema =
        serde_json::from_slice(schema_bytes).map_err(|e| bad(&format!("schema: {e}")))?;
    schema.check()?;
    let at = 20 + n;
    let m = quarry_store::le::u64_at(body, at).ok_or_else(|| bad("truncated"))? as usize;
    let log = body.get(at + 8..).filter(|l| l.len() == m).ok_or_else(|| bad("log length"))?;
    Ok((schema, log.to_vec()))
}

impl Collection {
    /// Writes a consistent snapshot of the collection to one file (spec: docs/FORMAT.md,
    /// "Collection snapshot"), crash-safely, while writes continue: the schema and a log that
    /// re-creates every point present at the moment of the call (one upsert record per 1,024
    /// points, in slot order). The points are copied under the log's lock (a memory copy; writers
    /// wait only for that), then encoded and written without it. Returns the log bytes written.
    pub fn snapshot(&self, path: &Path) -> Result<u64> {
        let (ids, payloads, vectors) = {
            let wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            let st = self.read_state();
            drop(wal);
            let slots: Vec<u32> = (0..st.ids.len() as u32).filter(|&s| st.live[s as usize]).collect();
            let ids: Vec<PointId> = slots.iter().map(|&s| st.ids[s as usize]).collect();
            let payloads: Vec<Map<String, Value>> = slots.iter().map(|&s| st.payloads.get(s)).collect();
            let vectors = st.gather(&self.schema, &slots, false);
            (ids, payloads, vectors)
        };
        let dims: Vec<usize> = self.schema.vectors.iter().map(|f| f.dim).collect();
        let records: Vec<Vec<u8>> = (0..ids.len())
            .step_by(1024)
            .map(|start| {
                let end = (start + 1024).min(ids.len());
                let mut out = vec![1u8];
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                for row in start..end {
                    let vs: Vec<&[f32]> =
                        dims.iter().enumerate().map(|(f, &d)| vectors[f].row(row, d)).collect();
                    crate::point::put_point(&mut out, ids[row], &vs, &payloads[row]);
                }
                out
            })
            .collect();
        let log = quarry_store::wal::encode_log(&records)?;
        let end = log.len() as u64;
        let schema =
            serde_json::to_vec(&self.current_schema()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut out = Vec::with_capacity(32 + schema.len() + log.len());
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(schema.len() as u64).to_le_bytes());
        out.extend_from_slice(&schema);
        out.extend_from_slice(&end.to_le_bytes());
        out.extend_from_slice(&log);
        let crc = quarry_store::checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        quarry_store::write_atomic(path, |w| std::io::Write::write_all(w, &out))?;
        Ok(end)
    }
}
