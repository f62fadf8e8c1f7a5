//! Helpers shared by the engine and server fuzz targets (included with `#[path]`, not a target).

#![allow(dead_code)]

use std::path::PathBuf;

/// A scratch folder for this fuzzing process, created once and reused by every input: in
/// `/dev/shm` when it exists (fsync is free there), else the system temporary folder.
pub fn scratch(target: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("quarry-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Splits `data` into chunks, each prefixed by a little-endian u16 length (a length past the
/// end takes the rest): how the targets turn fuzz input into a list of records.
pub fn chunks(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        out.push(data[2..2 + n].to_vec());
        data = &data[2 + n..];
    }
    out
}
