//! Any index family behind one interface, named by one spec string (faiss's index factory, in
//! our vocabulary): `flat`, `flat+sq8|sq4|pq|rabitq`, `hnsw`, `hnsw+…`, `spann`, `spann+…`.
//!
//! Files: `spec` ([`IndexSpec`]: the one parser of index specs, `Display` round-tripping it),
//! `index` ([`AnyIndex`]: build into a folder, open with the rows on the heap or mapped, search
//! with exact scores, exact scores of given ids, rows read back), `tests`.

mod index;
mod spec;
#[cfg(test)]
mod tests;

pub use index::{build_into, AnyIndex, Effort, Residency};
pub use spec::{Base, IndexSpec};
