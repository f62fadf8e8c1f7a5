//! `quarry eval`: relevance measures of a TREC run, exactly as trec_eval computes them.

use anyhow::{Context, Result};
use quarry_eval::trec::{default_measures, evaluate, read_qrels, read_run, EvalOptions, Measure};
use std::path::PathBuf;

/// Arguments of `quarry eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Judgements: TREC qrels (`qid iter docno rel`) or BEIR TSV (`query-id corpus-id score`).
    #[arg(long)]
    qrels: PathBuf,
    /// TREC run (`qid Q0 docno rank score tag`), or TREC RAG (Ragnarök) requests (`quarry
    /// context --json`: the candidates are the ranking) or responses (the references, in order),
    /// as JSONL, one object or an array.
    #[arg(long)]
    run: PathBuf,
    /// Measures named as trec_eval names them, comma-separated or repeated; trec_eval's
    /// `P.5,10` form works too (default: ndcg_cut_10,recall_100,map,recip_rank,P_10).
    #[arg(short = 'm', long)]
    measures: Vec<String>,
    /// Average over every judged query; queries missing from the run count 0 (trec_eval -c).
    #[arg(short = 'c', long)]
    complete: bool,
    /// Also print per-query values (trec_eval -q).
    #[arg(short = 'q', long)]
    per_query: bool,
    /// Keep only the top N results per query after sorting (trec_eval -M).
    #[arg(short = 'M', long)]
    max_results: Option<usize>,
    /// Lowest judgement that counts as relevant (trec_eval -l).
    #[arg(short = 'l', long, default_value_t = 1)]
    level: i32,
    /// Print JSON instead of trec_eval's text layout.
    #[arg(long)]
    json: bool,
}

/// Runs `quarry eval`.
pub fn run(a: Args) -> Result<()> {
    let measures = if a.measures.is_empty() {
        default_measures()
    } else {
        let mut all = Vec::new();
        for m in &a.measures {
            all.extend(Measure::parse_list(m)?);
        }
        all
    };
    let qrels = read_qrels(&a.qrels).with_context(|| format!("reading qrels {}", a.qrels.display()))?;
    let run = read_run(&a.run).with_context(|| format!("reading run {}", a.run.display()))?;
    let opts = EvalOptions { relevance_level: a.level, complete: a.complete, max_results: a.max_results };
    let eval = evaluate(&qrels, &run, &measures, &opts);
    if !run.query_ids().any(|q| qrels.contains_query(q)) {
        // trec_eval stops here too ("No queries with both results and relevance info"): an
        // all-zero report would hide a query-id mismatch.
        let example =
            |mut ids: Box<dyn Iterator<Item = &str> + '_>| ids.next().unwrap_or("(none)").to_string();
        anyhow::bail!(
            "no query is in both the run and the qrels (run has e.g. {:?}, qrels e.g. {:?}): check the query ids",
            example(Box::new(run.query_ids())),
            example(Box::new(qrels.query_ids()))
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&eval.to_json(a.per_query))?);
    } else {
        print!("{}", eval.to_trec_eval_text(a.per_query));
    }
    Ok(())
}
