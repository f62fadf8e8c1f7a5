//! Fuzz target: the TEXMEX parsers (`.fvecs`, `.ivecs`, `.bvecs`) must never panic, and what they
//! accept must be self-consistent.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quarry_eval::io::{parse_bvecs, parse_fvecs, parse_ivecs};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.fvecs");
    if let Ok(m) = parse_fvecs(data, path) {
        // Accepted: the size is exactly rows * (4 + 4 * dim).
        assert_eq!(m.rows() * (4 + 4 * m.dim()), data.len());
    }
    if let Ok((ids, dim)) = parse_ivecs(data, path) {
        assert!(dim > 0 && ids.len() % dim == 0);
        assert_eq!(ids.len() / dim * (4 + 4 * dim), data.len());
    }
    if let Ok(m) = parse_bvecs(data, path) {
        assert_eq!(m.rows() * (4 + m.dim()), data.len());
    }
});
