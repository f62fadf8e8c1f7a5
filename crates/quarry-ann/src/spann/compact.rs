//! Compaction: an updated SPANN index (base files plus its update log) written into another folder
//! as fresh base files with no log: lists merged away are dropped, every list is materialised
//! (base list + runs) without tombstoned or repeated entries, the rows file holds every id's row,
//! the head graph and head codes are rebuilt over the live heads. Ids are kept (deleted ids stay
//! tombstones in the deleted bitmap). The source folder is not touched; the new folder's meta is
//! written last, so a crash leaves it unopenable rather than wrong, and the source stays valid.

use super::builder::SpannIndex;
use super::delta::DEAD;
use super::format::{Meta, HEADS_FILE, POSTINGS_FILE, VECTORS_FILE};
use super::heads::HeadCodes;
use super::postings::{write_posting_codes, write_postings};
use crate::flat::{FlatIndex, FlatParams};
use crate::hnsw::HnswIndex;
use crate::quant::codes::with_quantizer;
use quarry_core::{Error, Matrix, Metric, Result};
use quarry_quant::Quantizer;
use std::path::Path;

impl SpannIndex {
    /// Writes this index, updates included, as a fresh folder `dir` (which must differ from the
    /// index's own) and opens it with a posting cache of `cache_bytes`.
    pub fn compact_into(&self, dir: &Path, cache_bytes: usize) -> Result<SpannIndex> {
        if dir == self.dir {
            return Err(Error::InvalidArgument(
                "spann: compact into another folder (the index reads its own files while compacting)".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the index folder", dir, e))?;
        // Every row, in id order (the exact rows file of the new folder).
        let mut data = Vec::with_capacity(self.n * self.dim);
        let mut row = vec![0f32; self.dim];
        for id in 0..self.n as u32 {
            self.read_row(id, &mut row)?;
            data.extend_from_slice(&row);
        }
        let rows = Matrix::new(data, self.dim)?;
        let row_of = |id: u32| &rows.as_slice()[id as usize * self.dim..(id as usize + 1) * self.dim];
        // Live lists, head first, no tombstones or repeats.
        let mut head_ids = Vec::new();
        let mut lists: Vec<Vec<u32>> = Vec::new();
        for r in 0..self.head_ids.len() {
            let head = self.head_ids[r];
            if head == DEAD {
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            let mut ids = Vec::new();
            for id in std::iter::once(head).chain(self.list_ids(r)?) {
                if !self.deleted.contains(id) && seen.insert(id) {
                    ids.push(id);
                }
            }
            head_ids.push(head);
            lists.push(ids);
        }
        let postings = dir.join(POSTINGS_FILE);
        match &self.coded {
            Some(coded) => {
                let payload = if coded.arena.is_some() { 0 } else { coded.code_len.next_multiple_of(4) };
                write_posting_codes(&postings, self.dim, self.metric, payload, &lists, &|id, out| {
                    if !out.is_empty() {
                        with_quantizer!(&coded.quant, q => q.encode(row_of(id), &mut out[..coded.code_len]));
                    }
                })?;
            }
            None => {
                write_postings(&postings, self.dim, self.metric, &lists, &|id| row_of(id).to_vec())?;
            }
        }
        let flat = FlatIndex::build(&rows, self.metric, FlatParams::default())?;
        flat.save(&dir.join(VECTORS_FILE))?;
        drop(flat);
        let mut head_rows = Vec::with_capacity(head_ids.len() * self.dim);
        for &h in &head_ids {
            head_rows.extend_from_slice(row_of(h));
        }
        let head_mat = Matrix::new(head_rows, self.dim)?;
        let graph = crate::hnsw::HnswParams { walk_codes: false, ..self.params.graph };
        let heads = HnswIndex::build(&head_mat, Metric::L2, graph)?;
        heads.save(&dir.join(HEADS_FILE))?;
        let head_codes =
            HeadCodes::train(&heads.flat, self.params.seed)?.map_or_else(Vec::new, |c| c.to_bytes());
        let _ = std::fs::remove_file(super::delta::Delta::path_in(dir));
        let quantizer =
            self.coded.as_ref().map_or_else(Vec::new, |c| with_quantizer!(&c.quant, q => q.to_bytes()));
        let meta = Meta {
            metric: self.metric,
            dim: self.dim,
            n: self.n,
            head_ids: &head_ids,
            deleted: &self.deleted,
            params: self.params,
            quantizer: &quantizer,
            codes: self.coded.as_ref().and_then(|c| c.arena.as_ref()).map_or(&[], |a| a.as_slice()),
            head_codes: &head_codes,
        };
        SpannIndex::write_meta_and_open(dir, meta, cache_bytes)
    }
}
