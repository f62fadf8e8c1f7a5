//! Fuzz target: the `.npy` parser must never panic, and an accepted array must match its header.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quarry_eval::io::{parse_npy, parse_npy_header};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npy");
    let header = parse_npy_header(data, path);
    if let Ok(array) = parse_npy(data, path) {
        let header = header.expect("a parsed array has a parsable header");
        let elements: usize = array.shape.iter().product();
        assert_eq!(array.data.len(), elements);
        assert_eq!(header.data_offset + elements * header.dtype.itemsize(), data.len());
        assert_eq!(array.rows() * array.cols(), elements);
    }
});
