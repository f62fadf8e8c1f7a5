//! The search path of a collection: sealed segments through their indexes, the unsealed tail by
//! exact scan, merged into one top-k.

use crate::collection::{Collection, ScoredPoint, SearchOptions, DEFAULT_EF, EXACT_MAX_ADMITTED};
use crate::filter::Filter;
use quarry_ann::Effort;
use quarry_core::{Error, IdFilter, Metric, Result};
use quarry_linalg::{Kernels, TopK};
use serde_json::Map;

impl Collection {
    /// Answers several queries ([`Collection::search_with`] each), in parallel on the rayon pool;
    /// one result list per query, in order. Any bad query fails the whole call.
    pub fn search_batch(
        &self,
        queries: &[Vec<f32>],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
        opts: &SearchOptions,
    ) -> Result<Vec<Vec<ScoredPoint>>> {
        use rayon::prelude::*;
        queries.par_iter().map(|q| self.search_with(q, field, k, filter, opts)).collect()
    }

    /// The `k` most similar points to `query` in vector field `field` (`None`: the only field),
    /// among those passing `filter`, with the default graph beam ([`DEFAULT_EF`]).
    pub fn search(
        &self,
        query: &[f32],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<ScoredPoint>> {
        self.search_ef(query, field, k, filter, DEFAULT_EF)
    }

    /// [`Collection::search`] with graph beam `ef`: sealed segments are searched through their
    /// graphs (admitting live points that pass the filter), the unsealed points exactly.
    pub fn search_ef(
        &self,
        query: &[f32],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
        ef: usize,
    ) -> Result<Vec<ScoredPoint>> {
        self.search_with(
            query,
            field,
            k,
            filter,
            &SearchOptions { ef, with_payload: true, ..SearchOptions::default() },
        )
    }

    /// [`Collection::search`] with options (graph beam, whether hits carry their payloads).
    ///
    /// Each sealed segment's index is asked for its best `k` among the admitted rows (live, and
    /// passing the filter): unfiltered through its own search, a few admitted rows (at most
    /// [`EXACT_MAX_ADMITTED`]) by exact scores of just those rows, more through a filtered
    /// search; a value graph answers a one-value filter where the segment has one. The unsealed
    /// tail is scanned exactly. Every score is exact; the merged top `k` is returned.
    pub fn search_with(
        &self,
        query: &[f32],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
        opts: &SearchOptions,
    ) -> Result<Vec<ScoredPoint>> {
        let f = self.schema.field(field)?;
        let spec = &self.schema.vectors[f];
        if let Some(mv) = &spec.multivector {
            let what = format!("query for {}", spec.label());
            crate::point::check_vector_set(
                query,
                spec.dim,
                mv.max_vectors.max(crate::MAX_QUERY_VECTORS),
                self.metrics[f],
                &what,
            )?;
            return self.search_multi(f, query, k, filter, opts);
        } else if query.len() != spec.dim && !query.is_empty() && query.len().is_multiple_of(spec.dim) {
            return Err(Error::InvalidArgument(format!(
                "query for {}: {} vectors given, but the field holds one vector per point (not a multi-vector field)",
                spec.label(),
                query.len() / spec.dim
            )));
        }
        crate::point::check_vector(query, spec.dim, &format!("query for {}", spec.label()))?;
        let metric = self.metrics[f];
        let mut q = query.to_vec();
        if metric == Metric::Cosine {
            let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm == 0.0 {
                return Err(Error::ZeroVector { what: "query".into() });
            }
            q.iter_mut().for_each(|x| *x /= norm);
        }
        let effort = Effort { ef: opts.ef.max(1), rerank: None, rescore: opts.rescore };
        let st = self.read_state();
        let mut top = TopK::new(k);
        let offer = |top: &mut TopK, hits: Vec<(f32, u32)>| {
            for (score, slot) in hits {
                let key = -score;
                if key <= top.threshold() {
                    top.push(key, slot);
                }
            }
        };
        if !st.segments.is_empty() && k > 0 {
            let (single, admitted) = sealed_admission(&st, f, filter);
            for seg in &st.segments {
                let flat = seg.is_flat(f);
                if let Some(sub) = single.as_ref().and_then(|k| seg.subs.get(k)).filter(|_| !flat) {
                    // The value's own graph: only liveness is left to filter.
                    let live = (st.dead_sealed > 0).then(|| {
                        IdFilter::from_ids(
                            (0..sub.slots.len() as u32).filter(|&l| st.live[sub.slots[l as usize] as usize]),
                        )
                    });
                    offer(&mut top, sub.search(f, query, k, &effort, live.as_ref())?);
                    continue;
                }
                let hits = match &admitted {
                    None => seg.search(f, query, k, &effort, None)?,
                    Some(adm) => {
                        let local = local_rows(seg, adm);
                        if local.is_empty() {
                            continue;
                        }
                        if local.len() <= EXACT_MAX_ADMITTED || flat {
                            seg.search_rows(f, query, &local, k)?
                        } else {
                            seg.search(f, query, k, &effort, Some(&IdFilter::from_ids(local)))?
                        }
                    }
                };
                offer(&mut top, hits);
            }
        }
        // The unsealed tail: an exact scan of its rows in RAM.
        let kern = Kernels::get();
        let dim = spec.dim;
        let sealed_end = st.sealed_end;
        let slots = tail_slots(&st, filter, sealed_end);
        for slot in slots {
            let x = st.tail_row(f, dim, slot);
            let key = match metric {
                Metric::L2 => (kern.l2_sq)(&q, x),
                _ => -(kern.dot)(&q, x) * st.tail_inv(f, slot),
            };
            if key <= top.threshold() {
                top.push(key, slot);
            }
        }
        Ok(into_hits(&st, top, opts.with_payload))
    }
}

impl Collection {
    /// [`Collection::search_with`] for multi-vector field `f`: `query` is a set of vectors
    /// (concatenated rows of the field's dimension, checked), points are scored by exact MaxSim.
    /// Each sealed segment proposes candidates through its index (MUVERA encodings or the
    /// per-token heuristic; admitted points only), or scores every admitted point when a filter
    /// admits at most [`EXACT_MAX_ADMITTED`] of them or the index is `flat`; the unsealed tail
    /// is scored exhaustively. The merged top `k` is returned.
    fn search_multi(
        &self,
        f: usize,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        opts: &SearchOptions,
    ) -> Result<Vec<ScoredPoint>> {
        let fi = &self.fields[f];
        let Some(multi) = fi.multi.as_ref() else {
            return Err(Error::InvalidArgument("not a multi-vector field".into()));
        };
        let dim = multi.dim;
        let mut q = query.to_vec();
        if self.metrics[f] == Metric::Cosine {
            crate::multivector::normalise_rows(&mut q, dim);
        }
        let fde = multi.query_rows(&q)?;
        let effort = Effort { ef: opts.ef.max(1), rerank: None, rescore: true };
        let st = self.read_state();
        let mut top = TopK::new(k);
        if !st.segments.is_empty() && k > 0 {
            // A one-value filter is answered by the value's own segments where every segment has one.
            let (single, admitted) = sealed_admission(&st, f, filter);
            for seg in &st.segments {
                let flat = seg.is_flat(f);
                if let Some(sub) = single.as_ref().and_then(|key| seg.subs.get(key)).filter(|_| !flat) {
                    // The value's own segment: only liveness is left to filter.
                    let live = (st.dead_sealed > 0).then(|| {
                        (0..sub.slots.len() as u32)
                            .filter(|&l| st.live[sub.slots[l as usize] as usize])
                            .collect::<Vec<u32>>()
                    });
                    let mq = crate::multivector::MultiQuery {
                        vectors: &q,
                        fde: fde.as_deref(),
                        depth: opts.candidates,
                    };
                    for (score, slot) in
                        sub.search_multi(f, multi, &mq, k, &effort, live.as_deref(), false)?
                    {
                        if -score <= top.threshold() {
                            top.push(-score, slot);
                        }
                    }
                    continue;
                }
                let local: Option<Vec<u32>> = admitted.as_ref().map(|adm| local_rows(seg, adm));
                if local.as_ref().is_some_and(Vec::is_empty) {
                    continue;
                }
                let exact = flat || local.as_ref().is_some_and(|l| l.len() <= EXACT_MAX_ADMITTED);
                let mq = crate::multivector::MultiQuery {
                    vectors: &q,
                    fde: fde.as_deref(),
                    depth: opts.candidates,
                };
                let hits = seg.search_multi(f, multi, &mq, k, &effort, local.as_deref(), exact)?;
                for (score, slot) in hits {
                    if -score <= top.threshold() {
                        top.push(-score, slot);
                    }
                }
            }
        }
        let sealed_end = st.sealed_end;
        let slots = tail_slots(&st, filter, sealed_end);
        for slot in slots {
            let Some(doc) = st.tail_tokens(f, dim, slot) else { continue };
            let key = -quarry_ann::fde::chamfer(&q, doc, dim);
            if key <= top.threshold() {
                top.push(key, slot);
            }
        }
        Ok(into_hits(&st, top, opts.with_payload))
    }
}

impl Collection {
    /// Exact scores of the present points among `ids` for `query` in field `field`, best `k`
    /// first (ties by id; absent ids and repeats are skipped): MaxSim for a multi-vector field
    /// (`query` a set of vectors), else the field's similarity as [`Collection::search`] scores
    /// it. A re-ranking stage over candidates found another way (a dense or text prefetch).
    pub fn score_points(
        &self,
        query: &[f32],
        field: Option<&str>,
        ids: &[crate::PointId],
        k: usize,
    ) -> Result<Vec<ScoredPoint>> {
        let f = self.schema.field(field)?;
        let spec = &self.schema.vectors[f];
        let what = format!("query for {}", spec.label());
        let metric = self.metrics[f];
        let mut q = query.to_vec();
        match &spec.multivector {
            Some(mv) => {
                crate::point::check_vector_set(
                    query,
                    spec.dim,
                    mv.max_vectors.max(crate::MAX_QUERY_VECTORS),
                    metric,
                    &what,
                )?;
                if metric == Metric::Cosine {
                    crate::multivector::normalise_rows(&mut q, spec.dim);
                }
            }
            None => {
                crate::point::check_vector(query, spec.dim, &what)?;
                if metric == Metric::Cosine {
                    crate::multivector::normalise_rows(&mut q, spec.dim);
                    if q.iter().all(|&x| x == 0.0) {
                        return Err(Error::ZeroVector { what });
                    }
                }
            }
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let st = self.read_state();
        let kern = Kernels::get();
        let mut hits: Vec<ScoredPoint> = ids
            .into_iter()
            .filter_map(|id| {
                let slot = st.slot(&id)?;
                let v = st.vector(f, spec.dim, slot, true)?;
                let score = match (&spec.multivector, metric) {
                    (Some(_), _) => quarry_ann::fde::chamfer(&q, &v, spec.dim),
                    (None, Metric::L2) => -(kern.l2_sq)(&q, &v),
                    (None, _) => (kern.dot)(&q, &v),
                };
                Some(ScoredPoint { id, score, payload: Map::new() })
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.truncate(k);
        Ok(hits)
    }
}

/// How the sealed segments admit points for field `f` under `filter`: the one-value key a value
/// segment can answer, and the admitted sealed slots, ascending (`None`: every row, when there is
/// no filter and nothing died, or when every segment answers from its value segment — a flat
/// segment scans its admitted rows exactly and never uses value segments).
fn sealed_admission(
    st: &crate::state::State,
    f: usize,
    filter: Option<&Filter>,
) -> (Option<(String, crate::payload_index::Key)>, Option<Vec<u32>>) {
    let single = filter
        .and_then(|fl| fl.single_match())
        .and_then(|(key, v)| Some((key.to_string(), crate::payload_index::Key::of(v)?)));
    let all_have_sub = st
        .segments
        .iter()
        .all(|seg| !seg.is_flat(f) && single.as_ref().is_some_and(|key| seg.subs.contains_key(key)));
    let admitted = match filter {
        _ if all_have_sub => None,
        Some(fl) => {
            let mut v: Vec<u32> = st.matching(fl, 0).filter(|&s| s < st.sealed_end).collect();
            v.sort_unstable();
            Some(v)
        }
        None if st.dead_sealed > 0 => Some((0..st.sealed_end).filter(|&s| st.live[s as usize]).collect()),
        None => None,
    };
    (single, admitted)
}

/// The local rows of `seg` among the admitted slots `adm` (ascending).
fn local_rows(seg: &crate::segment::Segment, adm: &[u32]) -> Vec<u32> {
    let lo = adm.partition_point(|&s| s < seg.first_slot());
    let hi = adm.partition_point(|&s| s <= seg.last_slot());
    adm[lo..hi.max(lo)].iter().filter_map(|&s| seg.local(s)).collect()
}

/// The live unsealed slots (from `sealed_end`) passing `filter`.
fn tail_slots<'a>(
    st: &'a crate::state::State,
    filter: Option<&'a Filter>,
    sealed_end: u32,
) -> Box<dyn Iterator<Item = u32> + 'a> {
    match filter {
        Some(fl) => st.matching(fl, sealed_end),
        None => Box::new((sealed_end..st.ids.len() as u32).filter(|&s| st.live[s as usize])),
    }
}

/// The kept `(−score, slot)` pairs as hits, best first.
fn into_hits(st: &crate::state::State, top: TopK, with_payload: bool) -> Vec<ScoredPoint> {
    top.into_sorted()
        .into_iter()
        .map(|(key, slot)| ScoredPoint {
            id: st.ids[slot as usize],
            score: -key,
            payload: if with_payload { st.payloads.get(slot) } else { Map::new() },
        })
        .collect()
}
