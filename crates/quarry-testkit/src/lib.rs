//! Shared test machinery.
//!
//! * [`gen`]: deterministic data generators (Gaussian, clustered, with duplicates).
//! * [`oracle`]: f64 brute-force top-k and tie-robust recall — the ground truth of every test.
//! * [`conformance`]: the suite every [`quarry_core::VectorIndex`] must pass.
//! * [`shared_data`]: locating the team's `shared/data` folder, so tests can skip when it is absent.
//! * [`skip`]: skipping for lack of data, a model or root — visibly, and never in CI
//!   (`QUARRY_REQUIRE_DATA=1` turns a skip into a failure).
//! * [`faults`]: a fault-injecting log file (failed, short or garbled writes, failed fsyncs).
//! * [`docs`]: document fixtures (PDFs made here, folders of mixed documents).

pub mod conformance;
pub mod docs;
pub mod faults;
pub mod gen;
pub mod oracle;
pub mod shared_data;
pub mod skip;
pub mod tempdirs;
