//! `quarry`: the command-line front end of the Quarry retrieval engine.
//!
//! Subcommands live in `commands/`, one file each; `load.rs` turns vector files into indexes and
//! `progress.rs` holds the progress-bar conventions (shown only on a terminal, never with `--json`).

mod commands;
mod load;
mod progress;

use clap::{Parser, Subcommand};

/// Quarry: fast, small, trustworthy embedding retrieval.
#[derive(Parser)]
#[command(name = "quarry", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Index a small bundled sample (WordNet glosses + embeddings) exactly and as a graph, answer a
    /// text question, run example queries, check recall against an exact scan.
    Quickstart(commands::quickstart::Args),
    /// Embed texts (BEIR JSONL or lines) into an .npy matrix with a local sentence model.
    Embed(commands::embed::Args),
    /// Search a collection (vectors, or text: dense, BM25, hybrid), or a vector file into a TREC run.
    Search(commands::search::Args),
    /// Fuse TREC runs (reciprocal rank fusion or weighted score fusion) into one run.
    Fuse(commands::fuse::Args),
    /// Evaluate a TREC run against qrels exactly as trec_eval does.
    Eval(commands::eval::Args),
    /// Build a text collection from a BEIR folder, run its queries (dense, BM25 or hybrid) and
    /// evaluate them (nDCG@10, recall@100, MRR, MAP) with indexing and query timings.
    Beir(commands::beir::Args),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Collections of an embedded database folder.
    #[command(subcommand)]
    Collection(commands::db::CollectionCommand),
    /// Add documents to a collection: files and folders of text, Markdown, HTML and PDF
    /// (`--files`: chunked, unchanged files skipped), or JSONL points in durable batches
    /// (`--jsonl`: prints `acked <total>` per batch).
    Ingest(commands::db::IngestArgs),
    /// The best passages of a text collection for a question, de-duplicated and packed into a
    /// token budget, for an LLM: numbered citations, or a TREC RAG (Ragnarök) request (--json).
    Context(commands::context::Args),
    /// Count the points of a collection (optionally under a filter).
    Count(commands::db::CountArgs),
    /// Serve a database over HTTP: a Qdrant-compatible REST subset plus native endpoints.
    Serve(commands::serve::Args),
    /// Print one point of a collection as JSON.
    Get(commands::db::GetArgs),
    /// Fit a text collection's relevance calibration on judged queries (or the training-free
    /// rule), so queries can take `--min-relevance`.
    Calibrate(commands::quality::CalibrateArgs),
    /// Fit a text collection's hubness correction (QB-Norm / DBNorm) from a bank of queries.
    Hubness(commands::quality::HubnessArgs),
    /// A collection's statistics: counts, BM25 statistics, quality settings, hubness.
    Stats(commands::quality::StatsArgs),
    /// Let queries of a new model search a text collection embedded by its old model: fit an
    /// orthogonal (Procrustes) map from documents embedded by both.
    Align(commands::quality::AlignArgs),
    /// Choose a text collection's hybrid fusion (RRF or a weighted combination) on judged
    /// queries; hybrid queries that name no fusion then use it.
    TuneFusion(commands::quality::TuneFusionArgs),
    /// Expert groups: several text collections behind one query, routed by pilot embeddings
    /// (create, fit on judged queries, search, list, info, delete).
    #[command(subcommand)]
    Group(commands::group::GroupCommand),
}

/// A closed standard output (`quarry get … | head`) ends the program quietly with status 0:
/// Rust ignores SIGPIPE, so `println!` panics with a broken pipe; this hook turns exactly that
/// panic into a normal exit, keeps quiet about a PDF extractor's panic (caught, and reported as
/// that file's failure), and leaves every other panic to the default hook.
fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        // The PDF text extractor panics on some damaged files; the panic is caught and the file
        // reported as failed with the message, so it is not printed here too.
        if quarry_engine::quarry_docs::extracting_pdf() {
            return;
        }
        default(info);
    }));
}

fn main() {
    exit_quietly_on_closed_stdout();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart(a) => commands::quickstart::run(a),
        Command::Embed(a) => commands::embed::run(a),
        Command::Search(a) => commands::search::run(a),
        Command::Calibrate(a) => commands::quality::run_calibrate(a),
        Command::Hubness(a) => commands::quality::run_hubness(a),
        Command::Stats(a) => commands::quality::run_stats(a),
        Command::Align(a) => commands::quality::run_align(a),
        Command::TuneFusion(a) => commands::quality::run_tune_fusion(a),
        Command::Group(c) => commands::group::run(c),
        Command::Eval(a) => commands::eval::run(a),
        Command::Fuse(a) => commands::fuse::run(a),
        Command::Beir(a) => commands::beir::run(a),
        Command::Bench(b) => commands::bench::run(b),
        Command::Collection(c) => commands::db::collection(c),
        Command::Ingest(a) => commands::db::ingest(a),
        Command::Context(a) => commands::context::run(a),
        Command::Count(a) => commands::db::count(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Get(a) => commands::db::get(a),
    };
    if let Err(e) = result {
        // A closed pipe reported as an error (explicit writes) is not a failure either.
        if e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        }) {
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
