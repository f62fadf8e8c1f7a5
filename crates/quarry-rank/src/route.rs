//! Routing among expert retrievers by pilot embeddings (RouterRetriever: Lee et al.,
//! "RouterRetriever: Routing over a Mixture of Expert Embedding Models", arXiv 2409.02685,
//! AAAI 2025).
//!
//! Offline, every training query is run by every expert and credited to the expert that ranks it
//! best (nDCG@10; queries every expert ranks equally teach nothing and are left out). The
//! queries are grouped by (domain label, best expert) and each group's base-encoder embeddings
//! are clustered with k-means (k = 1 by default: the group's mean); the centroids, scaled to unit
//! length so every pilot is compared by cosine, become that expert's pilot embeddings.
//!
//! Online, the query's base-encoder embedding is compared with every pilot: the paper's rule
//! ([`RouteRule::Mean`]) scores an expert by its mean similarity to its pilots; the reference
//! code's ([`RouteRule::Max`]) by its single most similar pilot. Experts are ranked by that
//! score, ties broken toward the lower index (the group's first expert, its general one);
//! experts without pilots rank last and never change the order of the others.

use quarry_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an expert's pilots score a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteRule {
    /// Mean cosine to the expert's pilots (the paper's rule).
    #[default]
    Mean,
    /// Cosine of the expert's most similar pilot (the reference code's rule).
    Max,
}

impl std::str::FromStr for RouteRule {
    type Err = Error;
    fn from_str(s: &str) -> Result<RouteRule> {
        match s {
            "mean" | "avg" | "average" => Ok(RouteRule::Mean),
            "max" => Ok(RouteRule::Max),
            _ => Err(Error::InvalidArgument(format!("routing rule {s:?}: use mean or max"))),
        }
    }
}

impl std::fmt::Display for RouteRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouteRule::Mean => "mean",
            RouteRule::Max => "max",
        })
    }
}

/// Pilot embeddings per expert (each unit length, in the base encoder's space).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pilots {
    /// `pilots[e]`: expert `e`'s pilots (possibly none).
    pub pilots: Vec<Vec<Vec<f32>>>,
}

impl Pilots {
    /// Each expert's score for `query` (a base-encoder embedding), none for experts without
    /// pilots. The query is scaled to unit length first.
    pub fn scores(&self, query: &[f32], rule: RouteRule) -> Result<Vec<Option<f64>>> {
        let q = unit(query).ok_or_else(|| {
            Error::InvalidArgument("routing: the query embedding is zero or not finite".into())
        })?;
        self.pilots
            .iter()
            .map(|ps| {
                if ps.is_empty() {
                    return Ok(None);
                }
                let mut sims = Vec::with_capacity(ps.len());
                for p in ps {
                    if p.len() != q.len() {
                        return Err(Error::InvalidArgument(format!(
                            "routing: a {}-d pilot for a {}-d query (the router model changed?)",
                            p.len(),
                            q.len()
                        )));
                    }
                    sims.push(p.iter().zip(&q).map(|(a, b)| f64::from(*a) * b).sum::<f64>());
                }
                Ok(Some(match rule {
                    RouteRule::Mean => sims.iter().sum::<f64>() / sims.len() as f64,
                    RouteRule::Max => sims.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                }))
            })
            .collect()
    }

    /// Experts best first with their scores: by score, ties toward the lower index; experts
    /// without pilots last, in index order.
    pub fn rank(&self, query: &[f32], rule: RouteRule) -> Result<Vec<(usize, Option<f64>)>> {
        let mut ranked: Vec<(usize, Option<f64>)> =
            self.scores(query, rule)?.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.0.cmp(&b.0),
        });
        Ok(ranked)
    }

    /// Number of pilots of every expert.
    pub fn counts(&self) -> Vec<usize> {
        self.pilots.iter().map(Vec::len).collect()
    }
}

/// One training query for [`fit_pilots`].
#[derive(Debug, Clone)]
pub struct PilotQuery {
    /// Its base-encoder embedding.
    pub embedding: Vec<f32>,
    /// Its domain (dataset) label: groups are formed per label and best expert.
    pub label: String,
    /// Every expert's quality on it (for example nDCG@10), one value per expert.
    pub quality: Vec<f64>,
}

/// What [`fit_pilots`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotReport {
    /// Queries credited to each expert.
    pub credited: Vec<usize>,
    /// Queries left out because every expert ranked them equally.
    pub tied: usize,
    /// Pilots per expert.
    pub pilots: Vec<usize>,
    /// Queries per (label, expert) group.
    pub groups: BTreeMap<String, usize>,
}

/// Fits pilot embeddings for `experts` experts from `queries` (see the module docs): at most
/// `k` centroids per (label, best expert) group, fewer when the group has fewer queries. Errors
/// on a quality list of the wrong length, a non-finite value, mixed dimensions or `k == 0`.
pub fn fit_pilots(
    queries: &[PilotQuery],
    experts: usize,
    k: usize,
    seed: u64,
) -> Result<(Pilots, PilotReport)> {
    if k == 0 || experts == 0 {
        return Err(Error::InvalidArgument("routing: need at least one expert and k ≥ 1".into()));
    }
    let dim = queries.first().map_or(0, |q| q.embedding.len());
    let mut groups: BTreeMap<(String, usize), Vec<f32>> = BTreeMap::new();
    let mut credited = vec![0usize; experts];
    let mut tied = 0;
    for (i, q) in queries.iter().enumerate() {
        if q.quality.len() != experts {
            return Err(Error::InvalidArgument(format!(
                "routing: query {i} has {} quality values for {experts} experts",
                q.quality.len()
            )));
        }
        if q.quality.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!("routing: query {i} has a non-finite quality")));
        }
        if q.embedding.len() != dim || dim == 0 {
            return Err(Error::InvalidArgument(format!(
                "routing: query {i} has a {}-d embedding, the first a {dim}-d one",
                q.embedding.len()
            )));
        }
        let Some(e) = best(&q.quality) else {
            tied += 1;
            continue;
        };
        let Some(u) = unit(&q.embedding) else {
            return Err(Error::InvalidArgument(format!(
                "routing: query {i}'s embedding is zero or not finite"
            )));
        };
        credited[e] += 1;
        groups.entry((q.label.clone(), e)).or_default().extend(u.iter().map(|v| *v as f32));
    }
    let mut pilots = vec![Vec::new(); experts];
    let mut sizes = BTreeMap::new();
    for ((label, e), data) in &groups {
        let n = data.len() / dim;
        sizes.insert(format!("{label}/{e}"), n);
        let kk = k.min(n);
        let centroids: Vec<Vec<f32>> = if kk == 1 {
            let mut mean = vec![0.0f64; dim];
            for row in data.chunks_exact(dim) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += f64::from(*v);
                }
            }
            vec![mean.iter().map(|m| (*m / n as f64) as f32).collect()]
        } else {
            let mut params = quarry_quant::pq::KMeansParams::new(kk);
            params.seed = seed;
            params.max_points_per_centroid = 0;
            let km = quarry_quant::pq::kmeans::kmeans(data, dim, &params)?;
            km.centroids.chunks_exact(dim).map(<[f32]>::to_vec).collect()
        };
        for c in centroids {
            // A centroid of opposite directions can vanish: it carries no direction to route by.
            if let Some(u) = unit(&c) {
                pilots[*e].push(u.iter().map(|v| *v as f32).collect());
            }
        }
    }
    let report = PilotReport { credited, tied, pilots: pilots.iter().map(Vec::len).collect(), groups: sizes };
    Ok((Pilots { pilots }, report))
}

/// The expert with the strictly highest quality, ties toward the lower index; none when every
/// expert has the same quality.
fn best(quality: &[f64]) -> Option<usize> {
    let first = quality.first()?;
    if quality.iter().all(|v| v == first) {
        return None;
    }
    let mut b = 0;
    for (i, v) in quality.iter().enumerate() {
        if *v > quality[b] {
            b = i;
        }
    }
    Some(b)
}

/// `v` scaled to unit length in f64 (none if zero or not finite).
fn unit(v: &[f32]) -> Option<Vec<f64>> {
    let n = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    (n.is_finite() && n > 0.0).then(|| v.iter().map(|x| f64::from(*x) / n).collect())
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
