//! Finding the team's shared data folder (`../shared/data` beside the repository, or
//! `$QUARRY_SHARED_DATA`). It exists on developer machines and in CI, not in a user's clone, so
//! tests that need it call [`require`] and return early when it is absent.

use std::path::PathBuf;

/// The shared data folder if present.
pub fn dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("QUARRY_SHARED_DATA") {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    root.is_dir().then_some(root)
}

/// `shared/data/<sub>` if present; otherwise prints why the calling test is skipped.
pub fn require(sub: &str) -> Option<PathBuf> {
    match dir().map(|d| d.join(sub)).filter(|p| p.exists()) {
        Some(p) => Some(p),
        None => {
            eprintln!(
                "skipping: shared data {sub:?} not found (set QUARRY_SHARED_DATA or place ../shared/data)"
            );
            None
        }
    }
}
