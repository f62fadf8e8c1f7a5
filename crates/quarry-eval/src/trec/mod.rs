//! TREC files and the relevance measures exactly as trec_eval v9.0.8 (and pytrec_eval) compute them.
//!
//! Two input-handling choices follow pytrec_eval, the reference the team's values come from, rather
//! than the trec_eval binary: a duplicate `(qid, docno)` in the qrels keeps the last grade (the
//! binary rejects the file), and a duplicate docno in a run is rejected before `-M` truncation.
//! The CLI, like the binary, refuses a run that shares no query with the qrels.
//!
//! * [`Qrels`] / [`read_qrels`]: judgements from TREC (`qid iter docno rel`) or BEIR
//!   (`query-id corpus-id score`) files.
//! * [`Run`] / [`read_run`] / [`write_run`] / [`RunWriter`]: TREC run files
//!   (`qid Q0 docno rank score tag`), written crash-safely with round-trip-exact scores;
//!   [`read_run`] also reads TREC RAG (Ragnarök) requests and responses ([`parse_ragnarok`]).
//! * [`Measure`] / [`evaluate`] / [`Evaluation`]: `P_k`, `recall_k`, `map`, `map_cut_k`,
//!   `recip_rank`, `ndcg`, `ndcg_cut_k`, `Rprec` and document counts, per query and averaged over
//!   trec_eval's query set, printable in trec_eval's layout or as JSON.
//!
//! ```
//! use quarry_eval::trec::{evaluate, EvalOptions, Measure, Qrels, Run};
//! # fn main() -> quarry_core::Result<()> {
//! let mut qrels = Qrels::new();
//! qrels.insert("q1", "d1", 1);
//! let mut run = Run::new();
//! // Equal scores: trec_eval ranks "d2" before "d1" (docno descending), so recip_rank = 1/2.
//! run.insert_query("q1", &[("d1", 0.5f32), ("d2", 0.5)])?;
//! let eval = evaluate(&qrels, &run, &[Measure::parse("recip_rank")?], &EvalOptions::default());
//! assert_eq!(eval.mean_value("recip_rank"), Some(0.5));
//! # Ok(())
//! # }
//! ```

mod evaluate;
mod measures;
mod qrels;
mod ragnarok;
mod report;
mod run;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_io;

pub use evaluate::{evaluate, evaluate_query, EvalOptions, Evaluation};
pub use measures::{default_measures, Measure};
pub use qrels::{read_qrels, write_qrels, Qrels, QrelsFormat};
pub use ragnarok::parse_ragnarok;
pub use run::{read_run, Run};
pub use write::{write_ranked, write_run, RunWriter, TrecScore};
