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
    /// Index a small bundled sample (WordNet glosses + embeddings), run example queries, show recall.
    Quickstart(commands::quickstart::Args),
    /// Search a vector file with a query file and write a TREC run.
    Search(commands::search::Args),
    /// Evaluate a TREC run against qrels exactly as trec_eval does.
    Eval(commands::eval::Args),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart(a) => commands::quickstart::run(a),
        Command::Search(a) => commands::search::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Bench(b) => commands::bench::run(b),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
