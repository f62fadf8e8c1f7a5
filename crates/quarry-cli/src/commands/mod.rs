//! One module per `quarry` subcommand.

pub mod bench;
pub mod eval;
pub mod quickstart;
pub mod search;
