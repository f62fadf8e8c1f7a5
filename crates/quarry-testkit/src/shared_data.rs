//! Finding the team's shared data folder (`../shared/data` beside the repository, or
//! `$QUARRY_SHARED_DATA`). It exists on developer machines and in CI, not in a user's clone, so
//! tests that need it call [`require`] and return early when it is absent — or fail, with
//! `QUARRY_REQUIRE_DATA=1` (see [`crate::skip`]).

use std::path::PathBuf;

/// The shared data folder if present.
pub fn dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("QUARRY_SHARED_DATA") {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if root.is_dir() {
        return Some(root);
    }
    // A test binary built in another checkout: look beside the workspace it runs in (cargo runs
    // tests from their crate's folder).
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().map(|a| a.join("shared/data")).find(|p| p.is_dir())
}

/// `shared/data/<sub>` if present; otherwise records the skip (a failure with
/// `QUARRY_REQUIRE_DATA=1`) and returns `None`.
#[track_caller]
pub fn require(sub: &str) -> Option<PathBuf> {
    match dir().map(|d| d.join(sub)).filter(|p| p.exists()) {
        Some(p) => Some(p),
        None => {
            crate::skip::missing(
                &format!("shared data {sub:?}"),
                "set QUARRY_SHARED_DATA or place the team's shared/data beside the repository",
            );
            None
        }
    }
}

/// Reads the first `rows` rows of a 2-D little-endian f16 or f32 `.npy` from the shared data
/// (a minimal reader, so the testkit needs no dependency on quarry-eval). Panics on anything
/// else: the shared files are known.
pub fn load_npy_rows(path: &std::path::Path, rows: usize) -> quarry_core::Matrix {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]).into_owned();
    let shape = &header[header.find("shape").expect("npy shape")..];
    let dims: Vec<usize> = shape[shape.find('(').expect("(") + 1..shape.find(')').expect(")")]
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let (n, d) = (dims[0].min(rows), dims[1]);
    let data = &bytes[10 + header_len..];
    let values: Vec<f32> = if header.contains("<f2") {
        (0..n * d).map(|i| f16_to_f32(u16::from_le_bytes([data[2 * i], data[2 * i + 1]]))).collect()
    } else if header.contains("<f4") {
        data[..n * d * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        panic!("{}: only <f2 and <f4 arrays are supported here", path.display())
    };
    quarry_core::Matrix::new(values, d).expect("npy shape")
}

/// IEEE binary16 to f32.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1F) as i32;
    let frac = (h & 0x3FF) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 => {
            if frac == 0.0 {
                sign * f32::INFINITY
            } else {
                f32::NAN
            }
        }
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}
