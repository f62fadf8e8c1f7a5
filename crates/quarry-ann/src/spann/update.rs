//! In-place updates in the SPFresh manner (Xu et al., "SPFresh: Incremental In-Place Update for
//! Billion-Scale Vector Search", SOSP 2023, arXiv 2410.14452, its LIRE protocol; thresholds as in
//! SPTAG's `ExtraDynamicSearcher.h`): an insert is appended to its nearest posting lists (closure +
//! RNG rule, like the build); a list grown past the cap is split in two by 2-means around two new
//! heads, and its members and the members of nearby lists are re-assigned when a new head is now
//! nearer than their own (LIRE); deletes are tombstones, cleaned when a list is split or rewritten,
//! and a list left with few live entries is merged away (its head removed, its members
//! re-assigned). Every change goes to the update log (`delta.rs`) and is durable when the call
//! returns.

use super::builder::SpannIndex;
use super::delta::{Chunk, Delta, Kind, ListState, Replayed, DEAD};
use quarry_core::{DocId, Error, Matrix, Result};
use quarry_linalg::{AlignedVec, Kernels};
use quarry_quant::pq::kmeans::kmeans;
use quarry_quant::pq::KMeansParams;
use quarry_quant::Quantizer;
use std::collections::{BTreeMap, HashMap};

/// Head vectors read during one update call (a head is a data vector; read once, then kept).
type HeadVecs = HashMap<u32, Vec<f32>>;

/// Ids of lists read during one re-assignment (to skip entries a list already holds).
type Members = HashMap<u32, std::collections::HashSet<u32>>;

/// Lists closer than this (in head rank) to a split list are checked for re-assignment.
const REASSIGN_LISTS: usize = 8;

impl SpannIndex {
    /// Entries in list `r` now (base list, appended and rewritten runs; tombstones included).
    pub(crate) fn list_len(&self, r: usize) -> usize {
        match self.lists.get(r) {
            Some(s) => {
                (if s.base { self.postings.count(r) } else { 0 })
                    + s.chunks.iter().map(|c| c.count as usize).sum::<usize>()
            }
            None if r < self.postings.len() => self.postings.count(r),
            None => 0,
        }
    }

    /// Reads exact row `id` (prepared: normalised for cosine) into `out`.
    pub(crate) fn read_row(&self, id: u32, out: &mut [f32]) -> Result<()> {
        if (id as usize) < self.base_n {
            let rows = self.rows.as_ref().ok_or_else(|| {
                Error::InvalidArgument(
                    "this SPANN folder has no vectors file (built by an older version)".into(),
                )
            })?;
            return rows.read(id, out);
        }
        match &self.delta {
            Some(d) => d.read_row(id, out),
            None => Err(Error::InvalidArgument(format!("id {id} is not in an index of {} vectors", self.n))),
        }
    }

    fn row_vec(&self, id: u32) -> Result<Vec<f32>> {
        let mut v = vec![0f32; self.dim];
        self.read_row(id, &mut v)?;
        Ok(v)
    }

    /// Every entry id of list `r`, in order (replicas of other lists not included).
    pub(crate) fn list_ids(&self, r: usize) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(self.list_len(r));
        let mut buf = AlignedVec::new();
        let entry = self.postings.entry_bytes();
        let mut take = |buf: &AlignedVec<u8>| {
            for e in buf.as_slice().chunks_exact(entry) {
                out.push(u32::from_le_bytes([e[0], e[1], e[2], e[3]]));
            }
        };
        let state = self.lists.get(r);
        if state.is_none_or(|s| s.base) && r < self.postings.len() {
            self.postings.read(r, &mut buf)?;
            take(&buf);
        }
        if let (Some(s), Some(d)) = (state, &self.delta) {
            for c in &s.chunks {
                d.read_chunk(c, &mut buf)?;
                take(&buf);
            }
        }
        Ok(out)
    }

    /// Opens the update log (creating it) and the per-list state, before a first update.
    fn begin_update(&mut self) -> Result<()> {
        if self.rows.is_none() {
            return Err(Error::InvalidArgument(
                "this SPANN folder has no vectors file (built by an older version); rebuild it to update it"
                    .into(),
            ));
        }
        if self.delta.is_none() {
            let crc = quarry_store::framing::header_crc(self.postings.path())?;
            let opened = Delta::open(&self.dir, crc, self.postings.entry_bytes(), self.dim, true)?;
            self.delta = opened.map(|(d, _)| d);
        }
        if self.lists.is_empty() {
            self.lists =
                (0..self.postings.len()).map(|_| ListState { base: true, chunks: Vec::new() }).collect();
        }
        Ok(())
    }

    /// Applies records replayed from the update log at open.
    pub(crate) fn replay(&mut self, delta: Delta, records: Vec<Replayed>) -> Result<()> {
        self.delta = Some(delta);
        self.lists = (0..self.postings.len()).map(|_| ListState { base: true, chunks: Vec::new() }).collect();
        for r in records {
            match r {
                Replayed::Rows { first, count, .. } => {
                    if first as usize != self.n {
                        return Err(Error::InvalidArgument(format!(
                            "update log: rows from id {first}, expected {}",
                            self.n
                        )));
                    }
                    self.n += count as usize;
                    for id in first..first + count {
                        let v = self.row_vec(id)?;
                        self.push_ram_code(&v);
                    }
                }
                Replayed::Append { list, chunk } => {
                    let s = self.lists.get_mut(list as usize).ok_or_else(|| {
                        Error::InvalidArgument(format!("update log: append to missing list {list}"))
                    })?;
                    s.chunks.push(chunk);
                }
                Replayed::Replace { list, head, chunk } => self.set_list(list as usize, head, chunk)?,
                Replayed::Delete(ids) => {
                    for id in ids {
                        self.deleted.insert(id);
                    }
                }
            }
        }
        if let Some(c) = self.head_codes.as_mut() {
            c.refresh()?;
        }
        Ok(())
    }

    /// List `r` (possibly new: `r` = list count) now holds only `chunk`, with head `head`.
    fn set_list(&mut self, r: usize, head: u32, chunk: Chunk) -> Result<()> {
        if r > self.lists.len() {
            return Err(Error::InvalidArgument(format!(
                "update log: list {r} after {} lists",
                self.lists.len()
            )));
        }
        let state = ListState { base: false, chunks: if chunk.count > 0 { vec![chunk] } else { Vec::new() } };
        if r == self.lists.len() {
            self.lists.push(state);
            self.head_ids.push(head);
        } else {
            self.lists[r] = state;
            self.head_ids[r] = head;
        }
        self.heads_changed = true;
        if head != DEAD {
            let v = self.row_vec(head)?;
            if let Some(c) = self.head_codes.as_mut() {
                c.set(r, &v);
            }
        }
        Ok(())
    }

    /// With codes kept in memory, appends the code of a new vector.
    fn push_ram_code(&mut self, x: &[f32]) {
        if let Some(coded) = self.coded.as_mut() {
            if let Some(arena) = coded.arena.as_mut() {
                let mut code = vec![0u8; coded.code_len];
                crate::quant::codes::with_quantizer!(&coded.quant, q => q.encode(x, &mut code));
                arena.extend_from_slice(&code);
            }
        }
    }

    /// The bytes of entry `(id, x)` in this index's posting layout.
    fn entry_bytes_of(&self, id: u32, x: &[f32], out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_le_bytes());
        let payload = self.postings.entry_bytes() - 4;
        match &self.coded {
            Some(coded) if payload > 0 => {
                let at = out.len();
                out.resize(at + payload, 0);
                crate::quant::codes::with_quantizer!(&coded.quant, q => q.encode(x, &mut out[at..at + coded.code_len]));
            }
            Some(_) => {}
            None => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
    }

    /// Head vector of list `r` (cached in `hv`).
    fn head_vec<'a>(&self, hv: &'a mut HeadVecs, r: u32) -> Result<&'a [f32]> {
        if let std::collections::hash_map::Entry::Vacant(e) = hv.entry(r) {
            e.insert(self.row_vec(self.head_ids[r as usize])?);
        }
        Ok(hv.get(&r).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// The lists `x` goes to: nearest live heads by code scan, exact distances, then the closure
    /// and RNG rules of the build (at most `replicas`), excluding `skip`.
    fn choose_lists(&self, x: &[f32], hv: &mut HeadVecs, skip: &[u32]) -> Result<Vec<(u32, f32)>> {
        let p = &self.params;
        let kern = Kernels::get();
        let want = p.candidates.min(self.head_ids.len());
        // Candidate heads: by the head codes, or every head when there are too few to have codes.
        let rows: Vec<u32> = match &self.head_codes {
            Some(codes) => {
                codes.scan(x, want, want.saturating_mul(2).max(64)).into_iter().map(|h| h.id).collect()
            }
            None => (0..self.head_ids.len() as u32).collect(),
        };
        let mut cands = Vec::with_capacity(rows.len());
        for r in rows {
            if self.head_ids[r as usize] == DEAD || skip.contains(&r) {
                continue;
            }
            let d = (kern.l2_sq)(x, self.head_vec(hv, r)?);
            cands.push((r, d));
        }
        cands.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let d1 = cands.first().map_or(0.0, |c| c.1);
        let mut accepted: Vec<(u32, f32)> = Vec::with_capacity(p.replicas);
        for &(r, d) in &cands {
            if d > p.closure * d1 && !accepted.is_empty() {
                break;
            }
            let hj = self.head_vec(hv, r)?.to_vec();
            let mut blocked = false;
            for &(a, _) in &accepted {
                if p.rng_factor * (kern.l2_sq)(self.head_vec(hv, a)?, &hj) < d {
                    blocked = true;
                    break;
                }
            }
            if !blocked {
                accepted.push((r, d));
                if accepted.len() == p.replicas {
                    break;
                }
            }
        }
        Ok(accepted)
    }

    /// The `count` nearest live heads of `x` (exact distances among the head-code candidates).
    fn choose_lists_exact(&self, x: &[f32], hv: &mut HeadVecs, count: usize) -> Result<Vec<(u32, f32)>> {
        let kern = Kernels::get();
        let rows: Vec<u32> = match &self.head_codes {
            Some(codes) => codes.scan(x, count, 64).into_iter().map(|h| h.id).collect(),
            None => (0..self.head_ids.len() as u32).collect(),
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if self.head_ids[r as usize] != DEAD {
                out.push((r, (kern.l2_sq)(x, self.head_vec(hv, r)?)));
            }
        }
        out.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        out.truncate(count);
        Ok(out)
    }

    /// Inserts `vectors` (validated like queries: dimension, finite, non-zero for cosine) with
    /// ids `len..len + count`, durably; returns the ids. Lists that grow past the cap are split.
    pub fn insert_batch(&mut self, vectors: &Matrix) -> Result<Vec<DocId>> {
        let prepared = self.validator.prepare_batch(vectors)?;
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        self.begin_update()?;
        let first = u32::try_from(self.n).ok().filter(|f| f.checked_add(prepared.len() as u32).is_some());
        let Some(first) = first else { return Err(Error::InvalidArgument("more than 2^32 vectors".into())) };
        let mut rows = Vec::with_capacity(prepared.len() * self.dim * 4);
        for x in &prepared {
            x.as_slice().iter().for_each(|v| rows.extend_from_slice(&v.to_le_bytes()));
        }
        let count = prepared.len() as u32;
        self.delta_mut()?.append(Kind::Rows, 0, first, count, &rows)?;
        self.n += prepared.len();
        for x in &prepared {
            self.push_ram_code(x.as_slice());
        }
        let mut hv = HeadVecs::new();
        let mut appends: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for (i, x) in prepared.iter().enumerate() {
            let id = first + i as u32;
            for (r, _) in self.choose_lists(x.as_slice(), &mut hv, &[])? {
                let buf = appends.entry(r).or_default();
                self.entry_bytes_of(id, x.as_slice(), buf);
            }
        }
        self.write_appends(appends)?;
        self.split_oversized(&mut hv)?;
        self.commit()?;
        Ok((first..first + count).collect())
    }

    fn delta_mut(&mut self) -> Result<&mut Delta> {
        self.delta.as_mut().ok_or_else(|| Error::InvalidArgument("the update log is not open".into()))
    }

    fn commit(&mut self) -> Result<()> {
        let (n, lists) = (self.n as u32, self.lists.len() as u32);
        self.delta_mut()?.commit(n, lists)?;
        if let Some(c) = self.head_codes.as_mut() {
            c.refresh()?;
        }
        Ok(())
    }

    /// Writes one append record per list.
    fn write_appends(&mut self, appends: BTreeMap<u32, Vec<u8>>) -> Result<()> {
        let entry = self.postings.entry_bytes();
        for (r, bytes) in appends {
            let count = (bytes.len() / entry) as u32;
            let chunk = self.delta_mut()?.append(Kind::Append, r, 0, count, &bytes)?;
            self.lists[r as usize].chunks.push(chunk);
        }
        Ok(())
    }

    /// Splits every list longer than twice the build's cap (SPFresh's split limit; the halves are
    /// then about the cap), and the lists that re-assignment then overfills.
    fn split_oversized(&mut self, hv: &mut HeadVecs) -> Result<()> {
        let cap = self.params.cap_for(self.dim) * 2;
        // Each list is split at most once per call (re-assignment can overfill a list again; the
        // next update splits it), so one call does bounded work.
        let mut done = std::collections::HashSet::new();
        loop {
            let over: Vec<usize> = (0..self.lists.len())
                .filter(|&r| self.head_ids[r] != DEAD && self.list_len(r) > cap && !done.contains(&r))
                .collect();
            if over.is_empty() {
                return Ok(());
            }
            for r in over {
                done.insert(r);
                if self.list_len(r) > cap {
                    let before = self.lists.len();
                    self.split(r, hv)?;
                    done.extend(before..self.lists.len());
                }
            }
        }
    }

    /// Whether list `r` holds `id` (list ids read once per update call into `members`).
    fn holds(&self, members: &mut Members, r: u32, id: u32) -> Result<bool> {
        if let std::collections::hash_map::Entry::Vacant(e) = members.entry(r) {
            e.insert(self.list_ids(r as usize)?.into_iter().collect());
        }
        Ok(members.get(&r).is_some_and(|s| s.contains(&id)))
    }

    /// Adds entry `(id, x)` to the pending appends of list `r` unless the list already holds it.
    fn append_new(
        &self,
        members: &mut Members,
        appends: &mut BTreeMap<u32, Vec<u8>>,
        r: u32,
        id: u32,
        x: &[f32],
    ) -> Result<()> {
        if !self.holds(members, r, id)? {
            if let Some(s) = members.get_mut(&r) {
                s.insert(id);
            }
            self.entry_bytes_of(id, x, appends.entry(r).or_default());
        }
        Ok(())
    }

    /// Splits list `r` (SPFresh): live members only (tombstones dropped), 2-means, the member
    /// nearest each centroid becomes a head (list `r` and a new list), members go to the nearer
    /// head, then members and nearby lists' members are re-assigned where a new head is nearer.
    fn split(&mut self, r: usize, hv: &mut HeadVecs) -> Result<()> {
        let kern = Kernels::get();
        let cap = self.params.cap_for(self.dim) * 2;
        let mut ids = self.list_ids(r)?;
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| !self.deleted.contains(id));
        let mut data = Vec::with_capacity(ids.len() * self.dim);
        for &id in &ids {
            data.extend_from_slice(&self.row_vec(id)?);
        }
        let dim = self.dim;
        let row = |i: usize| &data[i * dim..(i + 1) * dim];
        if ids.len() <= cap {
            // Tombstones made it long: rewrite it clean with the same head (if still live).
            let head = self.head_ids[r];
            let mut bytes = Vec::new();
            let mut order: Vec<usize> = (0..ids.len()).collect();
            order.sort_by_key(|&i| ids[i] != head);
            for i in order {
                self.entry_bytes_of(ids[i], row(i), &mut bytes);
            }
            return self.replace_list(r, head, &bytes, ids.len(), hv);
        }
        let old_head = self.head_vec(hv, r as u32)?.to_vec();
        let km = kmeans(&data, self.dim, &KMeansParams { k: 2, niter: 10, ..KMeansParams::new(2) })
            .map_err(|e| Error::InvalidArgument(format!("splitting posting list {r}: {e}")))?;
        let nearest_to = |c: &[f32]| -> usize {
            (0..ids.len())
                .min_by(|&a, &b| (kern.l2_sq)(row(a), c).total_cmp(&(kern.l2_sq)(row(b), c)))
                .unwrap_or(0)
        };
        let a = nearest_to(km.centroid(0));
        let mut b = nearest_to(km.centroid(1));
        if a == b {
            // Degenerate (e.g. duplicates): take the member farthest from the first head.
            b = (0..ids.len())
                .max_by(|&x, &y| (kern.l2_sq)(row(x), row(a)).total_cmp(&(kern.l2_sq)(row(y), row(a))))
                .unwrap_or(0);
            if a == b {
                return Ok(());
            }
        }
        let (ha, hb) = (row(a).to_vec(), row(b).to_vec());
        let (mut la, mut lb) = (Vec::new(), Vec::new());
        let (mut na, mut nb) = (0usize, 0usize);
        let mut far = Vec::new();
        // Heads first in their own lists.
        self.entry_bytes_of(ids[a], &ha, &mut la);
        self.entry_bytes_of(ids[b], &hb, &mut lb);
        na += 1;
        nb += 1;
        // A member goes to the nearer new head, and to the other one too when the build's
        // closure and RNG rules would have replicated it there.
        let dab = (kern.l2_sq)(&ha, &hb);
        let (p_closure, p_rng) = (self.params.closure, self.params.rng_factor);
        let mut set_a = std::collections::HashSet::new();
        let mut set_b = std::collections::HashSet::new();
        set_a.insert(ids[a]);
        set_b.insert(ids[b]);
        #[allow(clippy::needless_range_loop)] // `i` indexes both `ids` and the rows of `data`
        for i in 0..ids.len() {
            if i == a || i == b {
                continue;
            }
            let (da, db) = ((kern.l2_sq)(row(i), &ha), (kern.l2_sq)(row(i), &hb));
            let (near, other) = (da.min(db), da.max(db));
            let both = other <= p_closure * near && p_rng * dab >= other;
            if da <= db || both {
                self.entry_bytes_of(ids[i], row(i), &mut la);
                set_a.insert(ids[i]);
                na += 1;
            }
            if da > db || both {
                self.entry_bytes_of(ids[i], row(i), &mut lb);
                set_b.insert(ids[i]);
                nb += 1;
            }
            // LIRE condition 1: farther from both new heads than from the old one.
            if da.min(db) > (kern.l2_sq)(row(i), &old_head) {
                far.push(i);
            }
        }
        let rb = self.lists.len();
        let (ida, idb) = (ids[a], ids[b]);
        self.replace_list(r, ida, &la, na, hv)?;
        self.replace_list(rb, idb, &lb, nb, hv)?;
        // Condition 1: re-assign those members to their nearest other lists.
        let mut appends: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let mut members = Members::new();
        members.insert(r as u32, set_a);
        members.insert(rb as u32, set_b);
        for i in far {
            for (t, _) in self.choose_lists(row(i), hv, &[r as u32, rb as u32])?.into_iter().take(2) {
                self.append_new(&mut members, &mut appends, t, ids[i], row(i))?;
            }
        }
        // Condition 2: members of nearby lists now nearer a new head than their own.
        let near = self.choose_lists_exact(&old_head, hv, REASSIGN_LISTS + 2)?;
        for (j, _) in near {
            let j = j as usize;
            if j == r || j == rb || self.head_ids[j] == DEAD {
                continue;
            }
            let hj = self.head_vec(hv, j as u32)?.to_vec();
            let mut seen_ids = self.list_ids(j)?;
            seen_ids.sort_unstable();
            seen_ids.dedup();
            for id in seen_ids {
                if self.deleted.contains(id) || id == self.head_ids[j] {
                    continue;
                }
                let v = self.row_vec(id)?;
                let (da, db, dj) = ((kern.l2_sq)(&v, &ha), (kern.l2_sq)(&v, &hb), (kern.l2_sq)(&v, &hj));
                if da.min(db) < dj {
                    let t = if da <= db { r } else { rb } as u32;
                    self.append_new(&mut members, &mut appends, t, id, &v)?;
                }
            }
        }
        self.write_appends(appends)
    }

    /// Writes `bytes` (`count` entries) as the whole of list `r` with head `head`.
    fn replace_list(
        &mut self,
        r: usize,
        head: u32,
        bytes: &[u8],
        count: usize,
        hv: &mut HeadVecs,
    ) -> Result<()> {
        let chunk = self.delta_mut()?.append(Kind::Replace, r as u32, head, count as u32, bytes)?;
        hv.remove(&(r as u32));
        self.set_list(r, head, chunk)
    }

    /// Deletes `ids` durably (tombstones; unknown or already deleted ids are skipped) and merges
    /// away lists left with few live entries once deletes add up. Returns how many were deleted.
    pub fn delete_batch(&mut self, ids: &[DocId]) -> Result<usize> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.n) {
            return Err(Error::InvalidArgument(format!("id {bad} is not in an index of {} vectors", self.n)));
        }
        let fresh: Vec<u32> = ids.iter().copied().filter(|&id| !self.deleted.contains(id)).collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        self.begin_update()?;
        let bytes: Vec<u8> = fresh.iter().flat_map(|id| id.to_le_bytes()).collect();
        self.delta_mut()?.append(Kind::Delete, 0, 0, fresh.len() as u32, &bytes)?;
        for &id in &fresh {
            self.deleted.insert(id);
        }
        self.deletes_since_clean += fresh.len();
        if self.deletes_since_clean * 50 >= self.n {
            self.clean_lists()?;
            self.deletes_since_clean = 0;
        }
        self.commit()?;
        Ok(fresh.len())
    }

    /// Maintenance after many deletes: lists with under a tenth of the cap live entries are merged
    /// (head removed, live members re-assigned); lists that are more than half tombstones are
    /// rewritten without them.
    fn clean_lists(&mut self) -> Result<()> {
        let min_live = (self.params.cap_for(self.dim) / 10).max(2);
        let mut hv = HeadVecs::new();
        let mut alive = self.head_ids.iter().filter(|&&h| h != DEAD).count();
        for r in 0..self.lists.len() {
            if self.head_ids[r] == DEAD {
                continue;
            }
            let ids = self.list_ids(r)?;
            let live = ids.iter().filter(|&&id| !self.deleted.contains(id)).count();
            if live < min_live && alive > 1 {
                alive -= 1;
                self.merge(r, &ids, &mut hv)?;
            } else if live * 2 < ids.len() {
                self.split(r, &mut hv)?;
            }
        }
        self.split_oversized(&mut hv)
    }

    /// Removes list `r` and its head; its live members go to their nearest other lists.
    fn merge(&mut self, r: usize, ids: &[u32], hv: &mut HeadVecs) -> Result<()> {
        self.replace_list(r, DEAD, &[], 0, hv)?;
        let mut appends: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let mut members = Members::new();
        let mut uniq = ids.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        for id in uniq {
            if self.deleted.contains(id) {
                continue;
            }
            let v = self.row_vec(id)?;
            for (t, _) in self.choose_lists(&v, hv, &[r as u32])? {
                self.append_new(&mut members, &mut appends, t, id, &v)?;
            }
        }
        self.write_appends(appends)
    }
}

#[cfg(test)]
mod tests;
