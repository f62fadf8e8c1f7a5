//! The collection manifest (spec: docs/FORMAT.md, "Collection manifest"): which segment folders
//! hold the collection's sealed points, which of their rows are deleted (tombstones), and the
//! write-ahead log position they cover (`checkpoint_seq`: every record up to it is reflected in
//! the segments, so opening replays only later records). A framed file (magic, version, header and
//! body checksums) replaced atomically: written to a temporary file, fsynced, renamed over the old
//! one, folder fsynced; each new manifest has a higher `generation`.

use quarry_core::{Error, Result};
use quarry_store::framing::FIELDS_LEN;
use quarry_store::{le, write_framed, Framed};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of the manifest in a collection's folder.
pub const MANIFEST_FILE: &str = "manifest.qman";
/// Magic of a manifest file.
pub const MAGIC: [u8; 8] = *b"QRYMANI\0";
/// Version of the manifest format.
pub const VERSION: u32 = 1;

/// One sealed segment in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    /// Folder `segments/<id>` holding the segment's files.
    pub(crate) id: u64,
    /// Points (rows) in the segment.
    pub(crate) points: u64,
    /// Rows deleted or replaced since the segment was written (ascending).
    pub(crate) dead: Vec<u32>,
}

/// The manifest's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Incremented by every new manifest.
    pub(crate) generation: u64,
    /// Last log record reflected in the segments (0: none).
    pub(crate) checkpoint_seq: u64,
    /// Id the next segment folder gets.
    pub(crate) next_segment: u64,
    /// Segments in slot order (later segments hold later writes).
    pub(crate) segments: Vec<SegmentEntry>,
}

impl Manifest {
    /// Reads the manifest of the collection in `dir`, or `None` if it has none yet.
    pub(crate) fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let mut f = Framed::open(&path, MAGIC, VERSION, "collection manifest")?;
        let body = f.read(0, "manifest body")?;
        let m: Manifest = serde_json::from_slice(&body)
            .map_err(|e| Error::corrupt(&path, "manifest body", e.to_string()))?;
        let generation = le::u64_at(&f.fields, 0).unwrap_or(0);
        let seq = le::u64_at(&f.fields, 8).unwrap_or(0);
        if generation != m.generation || seq != m.checkpoint_seq {
            return Err(Error::corrupt(&path, "header", "header fields disagree with the body"));
        }
        // The log numbers records from checkpoint + 1 and refuses first numbers past 2^62.
        if m.checkpoint_seq >= quarry_store::wal::MAX_FIRST_SEQ {
            return Err(Error::corrupt(
                &path,
                "header",
                format!("checkpoint at record {} is out of range (below 2^62)", m.checkpoint_seq),
            ));
        }
        for s in &m.segments {
            if s.dead.windows(2).any(|w| w[0] >= w[1]) || s.dead.last().is_some_and(|&d| d as u64 >= s.points)
            {
                return Err(Error::corrupt(&path, format!("segment {}", s.id), "bad tombstone list"));
            }
        }
        Ok(Some(m))
    }

    /// Writes the manifest crash-safely into `dir` (replacing the previous one atomically).
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let body = serde_json::to_vec(self).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut f = [0u8; FIELDS_LEN];
        f[0..8].copy_from_slice(&self.generation.to_le_bytes());
        f[8..16].copy_from_slice(&self.checkpoint_seq.to_le_bytes());
        write_framed(&dir.join(MANIFEST_FILE), MAGIC, VERSION, &f, &[&body], 0)
    }
}
