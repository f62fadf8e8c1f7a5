//! One module per `quarry` subcommand.

pub mod beir;
pub mod bench;
pub mod context;
pub mod db;
pub mod docs;
pub mod embed;
pub mod eval;
pub mod fuse;
pub mod group;
pub mod quality;
pub mod quickstart;
pub mod search;
pub mod serve;
