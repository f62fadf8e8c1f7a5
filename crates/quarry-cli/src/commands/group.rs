//! `quarry group`: expert groups (several text collections behind one query, routed by pilot
//! embeddings; `quarry_engine::group`): create, fit on judged queries, search, list, show,
//! delete.

use anyhow::{bail, Context, Result};
use quarry_engine::group::{GroupFitQuery, GroupMember, GroupQuery, GroupSpec};
use quarry_engine::{Database, TextHit};
use quarry_rank::route::RouteRule;
use serde_json::json;
use std::path::PathBuf;

/// `quarry group` subcommands.
#[derive(clap::Subcommand)]
pub enum GroupCommand {
    /// Create (or replace) a group of text collections routed by a base model.
    Create(CreateArgs),
    /// Fit a group's pilot embeddings on judged queries.
    Fit(FitArgs),
    /// Run a text query on a group: route, search the chosen experts, fuse.
    Search(SearchArgs),
    /// List the groups of a database.
    List(DirArgs),
    /// Show a group's settings and fit.
    Info(NameArgs),
    /// Delete a group (its collections stay).
    Delete(NameArgs),
}

/// A database folder.
#[derive(clap::Args)]
pub struct DirArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
}

/// A database folder and a group.
#[derive(clap::Args)]
pub struct NameArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Group name.
    #[arg(long)]
    name: String,
}

/// Arguments of `quarry group create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Group name.
    #[arg(long)]
    name: String,
    /// Experts, the general one first: `collection[:mode]` (mode dense, bm25 or hybrid; default
    /// dense), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    members: Vec<String>,
    /// Base encoder whose query embeddings are routed (a model folder or name).
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    router_model: String,
    /// Routing rule: mean (mean similarity to an expert's pilots) or max (its nearest pilot).
    #[arg(long, default_value = "mean")]
    rule: RouteRule,
    /// Experts searched per query (1 routes; the number of members fuses all).
    #[arg(long, default_value_t = 1)]
    fuse_top: usize,
    /// The members hold the same documents under the same ids (fused lists merge by id).
    #[arg(long)]
    same_documents: bool,
}

/// Arguments of `quarry group fit`.
#[derive(clap::Args)]
pub struct FitArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Group name.
    #[arg(long)]
    name: String,
    /// Judged queries (BEIR queries JSONL with `_id` and `text`). A query's domain label is the
    /// part of its id before a `/` (none: one domain).
    #[arg(long)]
    queries: PathBuf,
    /// Judgements (BEIR TSV or TREC qrels); documents are named by `--doc-key` in the payload,
    /// else by point id.
    #[arg(long)]
    qrels: PathBuf,
    /// Payload key naming documents in the qrels.
    #[arg(long, default_value = "_id")]
    doc_key: String,
    /// Pilots (k-means centroids) per domain and expert.
    #[arg(long, default_value_t = 1)]
    k: usize,
}

/// Arguments of `quarry group search`.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Group name.
    #[arg(long)]
    name: String,
    /// Query text.
    #[arg(long)]
    text: String,
    /// Results.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
    /// Experts searched (default: the group's).
    #[arg(long)]
    fuse_top: Option<usize>,
    /// Routing rule (default: the group's).
    #[arg(long)]
    rule: Option<RouteRule>,
}

/// Runs a `quarry group` subcommand.
pub fn run(cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::Create(a) => {
            let db = open(&a.dir)?;
            let members = a
                .members
                .iter()
                .map(|m| m.parse::<GroupMember>())
                .collect::<quarry_core::Result<Vec<_>>>()?;
            let mut spec = GroupSpec::new(members, &a.router_model);
            spec.rule = a.rule;
            spec.fuse_top = a.fuse_top;
            spec.same_documents = a.same_documents;
            db.create_group(&a.name, spec.clone())?;
            println!("{}", json!({"group": a.name, "settings": spec}));
        }
        GroupCommand::Fit(a) => {
            let db = open(&a.dir)?;
            let queries = super::quality::read_queries(&a.queries)?;
            let qrels = quarry_eval::trec::read_qrels(&a.qrels)?;
            let judged: Vec<(String, String)> =
                queries.into_iter().filter(|q| qrels.get(&q.0).is_some()).collect();
            if judged.is_empty() {
                bail!("no query of {} has judgements in {}", a.queries.display(), a.qrels.display());
            }
            let fit: Vec<GroupFitQuery> = judged
                .iter()
                .map(|(id, text)| GroupFitQuery { text: text.clone(), label: label_of(id).to_string() })
                .collect();
            let key = a.doc_key.clone();
            let gain = |i: usize, _collection: &str, h: &TextHit| -> f64 {
                let name = match h.payload.get(&key) {
                    Some(v) => v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    None => h.id.to_string(),
                };
                qrels.get(&judged[i].0).and_then(|j| j.get(&name)).map_or(0.0, |g| f64::from((*g).max(0)))
            };
            let report = db.fit_group(&a.name, &fit, &gain, a.k)?;
            println!("{}", json!({"group": a.name, "queries": fit.len(), "fit": report}));
        }
        GroupCommand::Search(a) => {
            let db = open(&a.dir)?;
            let mut q = GroupQuery::new(&a.text, a.k);
            q.fuse_top = a.fuse_top;
            q.rule = a.rule;
            let r = db.search_group(&a.name, &q)?;
            let hits: Vec<_> = r
                .hits
                .iter()
                .map(|h| json!({"collection": h.collection, "id": h.hit.id.to_json(), "score": h.hit.score, "payload": h.hit.payload}))
                .collect();
            println!("{}", json!({"routing": r.routing, "hits": hits}));
        }
        GroupCommand::List(a) => {
            let db = open(&a.dir)?;
            println!("{}", json!({"groups": db.group_names()}));
        }
        GroupCommand::Info(a) => {
            let db = open(&a.dir)?;
            let g = db.group(&a.name)?;
            let summary = json!({
                "members": g.members,
                "router_model": g.router_model,
                "rule": g.rule,
                "fuse_top": g.fuse_top,
                "same_documents": g.same_documents,
                "fusion": g.fusion,
                "pilots": g.pilots.counts(),
                "fit": g.fit,
            });
            println!("{}", json!({"group": a.name, "settings": summary}));
        }
        GroupCommand::Delete(a) => {
            let db = open(&a.dir)?;
            let gone = db.delete_group(&a.name)?;
            println!("{}", json!({"group": a.name, "deleted": gone}));
        }
    }
    Ok(())
}

fn open(dir: &std::path::Path) -> Result<Database> {
    Database::open_existing(dir).with_context(|| format!("opening {}", dir.display()))
}

/// A query's domain label: its id before the first `/` (empty if none).
pub fn label_of(id: &str) -> &str {
    id.split_once('/').map_or("", |(l, _)| l)
}
