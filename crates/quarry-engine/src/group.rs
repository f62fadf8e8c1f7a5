//! Expert groups: several text collections (experts) behind one query, with routing among them
//! (`quarry_rank::route`, RouterRetriever). An expert is a collection searched in a mode; the
//! experts may hold the same documents embedded by different models (`same_documents`: their
//! point ids name the same documents and fused lists merge by id) or different domains' documents
//! (ids are per collection).
//!
//! A query is embedded once by the group's router model (the base encoder), the experts are
//! ranked by their pilot embeddings, and the best `fuse_top` are searched; more than one are
//! fused with the group's fusion (RRF by default). Fitting runs judged queries through every
//! expert, credits each to the expert with the best DCG@10 and stores the pilots.
//!
//! A group is stored as `<db>/groups/<name>.qg`: a framed file (magic `QRYGROUP`, version 1, one
//! checksummed JSON section), written crash-safely; see docs/FORMAT.md.

use crate::database::Database;
use crate::text::{TextHit, TextMode, TextQuery};
use crate::PointId;
use quarry_core::{Error, Result};
use quarry_rank::route::{fit_pilots, PilotQuery, PilotReport, Pilots, RouteRule};
use quarry_rank::Fusion;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Folder of group files in a database folder.
pub const GROUPS_DIR: &str = "groups";
const MAGIC: [u8; 8] = *b"QRYGROUP";
const VERSION: u32 = 1;

/// One expert of a group: a text collection and the mode it is searched in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The text collection.
    pub collection: String,
    /// Its ranking: dense (default), bm25 or hybrid.
    #[serde(default = "dense")]
    pub mode: TextMode,
}

impl std::str::FromStr for GroupMember {
    type Err = Error;
    /// `collection[:mode]` (mode dense, bm25 or hybrid; default dense).
    fn from_str(s: &str) -> Result<GroupMember> {
        let (c, mode) = match s.rsplit_once(':') {
            Some((c, m)) => (c, m.parse::<TextMode>()?),
            None => (s, TextMode::Dense),
        };
        if c.is_empty() {
            return Err(Error::InvalidArgument(format!("member {s:?}: expected collection[:mode]")));
        }
        Ok(GroupMember { collection: c.to_string(), mode })
    }
}

/// A group's settings and fitted pilots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// The experts, the general one first (routing ties go to the lower index).
    pub members: Vec<GroupMember>,
    /// The base encoder whose query embeddings are compared with the pilots.
    pub router_model: String,
    /// How pilots score a query.
    #[serde(default)]
    pub rule: RouteRule,
    /// Experts searched per query (1: route; the number of experts: fuse all).
    #[serde(default = "one")]
    pub fuse_top: usize,
    /// The experts hold the same documents under the same ids (fused lists merge by id).
    #[serde(default)]
    pub same_documents: bool,
    /// Fusion of the experts' lists when more than one is searched.
    #[serde(default = "rrf")]
    pub fusion: Fusion,
    /// Fitted pilots (none: every query goes to the first experts).
    #[serde(default)]
    pub pilots: Pilots,
    /// What the last fit did.
    #[serde(default)]
    pub fit: Option<PilotReport>,
}

fn dense() -> TextMode {
    TextMode::Dense
}

fn one() -> usize {
    1
}

fn rrf() -> Fusion {
    Fusion::Rrf { k: 60.0 }
}

impl GroupSpec {
    /// A group of `members` routed by `router_model`, with the defaults: mean rule, one expert
    /// per query, RRF, no pilots.
    pub fn new(members: Vec<GroupMember>, router_model: &str) -> GroupSpec {
        GroupSpec {
            members,
            router_model: router_model.to_string(),
            rule: RouteRule::Mean,
            fuse_top: 1,
            same_documents: false,
            fusion: rrf(),
            pilots: Pilots::default(),
            fit: None,
        }
    }

    /// Checks the settings: at least one member, none twice, `fuse_top` in range, one pilot
    /// list per member when there are pilots.
    pub fn check(&self) -> Result<()> {
        if self.members.is_empty() {
            return Err(Error::InvalidArgument("a group needs at least one member collection".into()));
        }
        if self.fuse_top == 0 || self.fuse_top > self.members.len() {
            return Err(Error::InvalidArgument(format!(
                "fuse_top {} must be between 1 and the number of members ({})",
                self.fuse_top,
                self.members.len()
            )));
        }
        if !self.pilots.pilots.is_empty() && self.pilots.pilots.len() != self.members.len() {
            return Err(Error::InvalidArgument(format!(
                "pilots for {} experts in a group of {}",
                self.pilots.pilots.len(),
                self.members.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.members {
            if !seen.insert((&m.collection, m.mode)) {
                return Err(Error::InvalidArgument(format!(
                    "member {} ({:?}) is listed twice",
                    m.collection, m.mode
                )));
            }
        }
        Ok(())
    }
}

/// A query of a group.
#[derive(Debug, Clone)]
pub struct GroupQuery {
    /// The query text.
    pub text: String,
    /// Results wanted.
    pub k: usize,
    /// Experts searched (default: the group's `fuse_top`).
    pub fuse_top: Option<usize>,
    /// Routing rule (default: the group's).
    pub rule: Option<RouteRule>,
    /// Graph beam of dense searches (default: the collections').
    pub ef: Option<usize>,
    /// Return payloads.
    pub with_payload: bool,
}

impl GroupQuery {
    /// `text`, `k` results, the group's defaults, with payloads.
    pub fn new(text: &str, k: usize) -> GroupQuery {
        GroupQuery { text: text.to_string(), k, fuse_top: None, rule: None, ef: None, with_payload: true }
    }
}

/// An expert's routing score and whether the query searched it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routed {
    /// Member collection.
    pub collection: String,
    /// Its mode.
    pub mode: TextMode,
    /// Pilot score (none without pilots).
    pub score: Option<f64>,
    /// Searched for this query.
    pub searched: bool,
}

/// A hit of a group query: the collection it came from and the hit.
#[derive(Debug, Clone)]
pub struct GroupHit {
    /// The member collection.
    pub collection: String,
    /// The hit (its score is the fused score when several experts were searched).
    pub hit: TextHit,
}

/// The answer to a group query.
#[derive(Debug, Clone)]
pub struct GroupResult {
    /// Every expert, best routed first.
    pub routing: Vec<Routed>,
    /// The hits, best first.
    pub hits: Vec<GroupHit>,
}

/// A judged query for [`Database::fit_group`].
#[derive(Debug, Clone)]
pub struct GroupFitQuery {
    /// The query text.
    pub text: String,
    /// Its domain label (pilots are clustered per label and expert).
    pub label: String,
}

fn check_group_name(name: &str) -> Result<()> {
    crate::database::check_name_of("group", name)
}

fn group_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(GROUPS_DIR).join(format!("{name}.qg"))
}

/// Writes `spec` as group file `path` crash-safely.
pub fn save_group(path: &Path, spec: &GroupSpec) -> Result<()> {
    let json = serde_json::to_vec(spec).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    quarry_store::framing::write_framed(
        path,
        MAGIC,
        VERSION,
        &[0u8; quarry_store::framing::FIELDS_LEN],
        &[&json],
        0,
    )
}

/// Reads and validates group file `path`.
pub fn load_group(path: &Path) -> Result<GroupSpec> {
    let mut f = quarry_store::framing::Framed::open(path, MAGIC, VERSION, "group")?;
    if f.sections.len() != 1 {
        return Err(Error::corrupt(path, "header", format!("{} sections, expected 1", f.sections.len())));
    }
    let json = f.read(0, "settings")?;
    let spec: GroupSpec =
        serde_json::from_slice(&json).map_err(|e| Error::corrupt(path, "settings", e.to_string()))?;
    spec.check().map_err(|e| Error::corrupt(path, "settings", e.to_string()))?;
    let dim = spec.pilots.pilots.iter().flatten().map(Vec::len).next();
    if spec.pilots.pilots.iter().flatten().any(|p| Some(p.len()) != dim || p.iter().any(|v| !v.is_finite())) {
        return Err(Error::corrupt(
            path,
            "settings",
            "pilots of mixed dimensions or non-finite values".to_string(),
        ));
    }
    Ok(spec)
}

impl Database {
    /// Creates (or replaces) group `name`; every member must be a text collection that can run
    /// its mode, and the router model must load. Keeps no pilots of a replaced group.
    pub fn create_group(&self, name: &str, spec: GroupSpec) -> Result<()> {
        check_group_name(name)?;
        spec.check()?;
        for m in &spec.members {
            let col = self.text_collection(&m.collection)?;
            if m.mode != TextMode::Bm25 && col.spec().model.is_none() {
                return Err(Error::InvalidArgument(format!(
                    "member {} has no sentence model: it can only be searched in bm25 mode",
                    m.collection
                )));
            }
        }
        self.model(&spec.router_model)?;
        let dir = self.dir().join(GROUPS_DIR);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
            quarry_store::sync_folder(self.dir())?;
        }
        save_group(&group_path(self.dir(), name), &spec)
    }

    /// Group `name`'s settings.
    pub fn group(&self, name: &str) -> Result<GroupSpec> {
        check_group_name(name)?;
        let path = group_path(self.dir(), name);
        if !path.exists() {
            return Err(Error::NotFound(format!("no group {name:?} in {}", self.dir().display())));
        }
        load_group(&path)
    }

    /// Names of the groups.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir().join(GROUPS_DIR))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".qg").map(str::to_string))
                    .filter(|n| check_group_name(n).is_ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Deletes group `name` (its collections stay); false if there was none.
    pub fn delete_group(&self, name: &str) -> Result<bool> {
        check_group_name(name)?;
        let path = group_path(self.dir(), name);
        if !path.exists() {
            return Ok(false);
        }
        std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        quarry_store::sync_folder(&self.dir().join(GROUPS_DIR))?;
        Ok(true)
    }

    /// Fits group `name`'s pilots from judged `queries`: each runs through every expert (top 10),
    /// `gain(query index, member collection, hit)` grades the hits, and the query is credited to
    /// the expert with the best DCG@10 (the same query's ideal DCG is common to all experts, so
    /// this orders them as nDCG@10 does). `k` centroids per (label, expert) group. Stores the
    /// pilots and returns the fit's report.
    pub fn fit_group(
        &self,
        name: &str,
        queries: &[GroupFitQuery],
        gain: &dyn Fn(usize, &str, &TextHit) -> f64,
        k: usize,
    ) -> Result<PilotReport> {
        let mut spec = self.group(name)?;
        if queries.is_empty() {
            return Err(Error::InvalidArgument("fitting a group needs judged queries".into()));
        }
        let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        let router = self.model(&spec.router_model)?;
        let emb = router.encode(&texts, 64)?;
        let mut quality = vec![Vec::with_capacity(spec.members.len()); queries.len()];
        for m in &spec.members {
            let col = self.text_collection(&m.collection)?;
            for (i, q) in queries.iter().enumerate() {
                let mut tq = TextQuery::new(&q.text, m.mode, 10);
                tq.with_payload = true;
                let hits = col.search(&tq, None)?;
                let dcg: f64 = hits
                    .iter()
                    .enumerate()
                    .map(|(r, h)| (2f64.powf(gain(i, &m.collection, h)) - 1.0) / ((r + 2) as f64).log2())
                    .sum();
                quality[i].push(dcg);
            }
        }
        let pq: Vec<PilotQuery> = queries
            .iter()
            .zip(quality)
            .enumerate()
            .map(|(i, (q, quality))| PilotQuery {
                embedding: emb.row(i).to_vec(),
                label: q.label.clone(),
                quality,
            })
            .collect();
        let (pilots, report) = fit_pilots(&pq, spec.members.len(), k, 42)?;
        spec.pilots = pilots;
        spec.fit = Some(report.clone());
        save_group(&group_path(self.dir(), name), &spec)?;
        Ok(report)
    }

    /// Runs `query` on group `name`: routes, searches the chosen experts, fuses when several.
    pub fn search_group(&self, name: &str, query: &GroupQuery) -> Result<GroupResult> {
        let spec = self.group(name)?;
        let top = query.fuse_top.unwrap_or(spec.fuse_top);
        if top == 0 || top > spec.members.len() {
            return Err(Error::InvalidArgument(format!(
                "fuse_top {top} must be between 1 and the number of members ({})",
                spec.members.len()
            )));
        }
        if query.k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        let rule = query.rule.unwrap_or(spec.rule);
        let has_pilots = spec.pilots.pilots.iter().any(|p| !p.is_empty());
        // Routing needs the router's embedding only when there is a choice to make.
        let needs_router = has_pilots && top < spec.members.len();
        let router_vec = if needs_router || spec.members.iter().any(|m| self.reuses_router(&spec, m)) {
            let enc = self.model(&spec.router_model)?;
            Some(enc.encode(&[query.text.as_str()], 1)?.row(0).to_vec())
        } else {
            None
        };
        let ranked: Vec<(usize, Option<f64>)> = match (&router_vec, has_pilots) {
            (Some(v), true) => spec.pilots.rank(v, rule)?,
            _ => (0..spec.members.len()).map(|i| (i, None)).collect(),
        };
        let chosen: Vec<usize> = ranked.iter().take(top).map(|r| r.0).collect();
        let mut lists: Vec<Vec<GroupHit>> = Vec::with_capacity(chosen.len());
        for &e in &chosen {
            let m = &spec.members[e];
            let col = self.text_collection(&m.collection)?;
            let mut tq = TextQuery::new(&query.text, m.mode, query.k);
            tq.with_payload = query.with_payload;
            if let Some(ef) = query.ef {
                tq.ef = ef.max(query.k);
            }
            if m.mode == TextMode::Dense && self.reuses_router(&spec, m) {
                tq.vectors = router_vec.clone().map(|v| vec![v]);
            }
            let hits = col.search(&tq, None)?;
            lists.push(
                hits.into_iter().map(|hit| GroupHit { collection: m.collection.clone(), hit }).collect(),
            );
        }
        let hits = if lists.len() == 1 {
            lists.pop().unwrap_or_default()
        } else {
            fuse_lists(lists, &spec.fusion, spec.same_documents, query.k)?
        };
        let routing = ranked
            .iter()
            .map(|(e, score)| Routed {
                collection: spec.members[*e].collection.clone(),
                mode: spec.members[*e].mode,
                score: *score,
                searched: chosen.contains(e),
            })
            .collect();
        Ok(GroupResult { routing, hits })
    }

    /// Whether member `m`'s dense query embedding is the router's own (same model, no prefix).
    fn reuses_router(&self, spec: &GroupSpec, m: &GroupMember) -> bool {
        m.mode == TextMode::Dense
            && self.text_collection(&m.collection).is_ok_and(|c| {
                c.spec().model.as_deref() == Some(spec.router_model.as_str())
                    && c.spec().query_prefix.is_empty()
            })
    }
}

/// Fuses the experts' lists with `fusion`: by id when the experts hold the same documents,
/// otherwise by (collection, id). A fused hit keeps the first list's copy (payload, collection).
fn fuse_lists(lists: Vec<Vec<GroupHit>>, fusion: &Fusion, same: bool, k: usize) -> Result<Vec<GroupHit>> {
    let key = |h: &GroupHit| -> (String, PointId) {
        (if same { String::new() } else { h.collection.clone() }, h.hit.id)
    };
    let ranked: Vec<Vec<((String, PointId), f64)>> =
        lists.iter().map(|l| l.iter().map(|h| (key(h), h.hit.score)).collect()).collect();
    let fused = quarry_rank::fuse(&ranked, fusion, k)?;
    let mut first: HashMap<(String, PointId), GroupHit> = HashMap::new();
    for h in lists.into_iter().flatten() {
        first.entry(key(&h)).or_insert(h);
    }
    Ok(fused
        .into_iter()
        .filter_map(|(k, score)| {
            first.remove(&k).map(|mut h| {
                h.hit.score = score;
                h.hit.explain = None;
                h
            })
        })
        .collect())
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
