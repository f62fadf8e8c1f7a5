//! Helpers shared by the golden-file tests: where the golden files are, a fresh temporary
//! folder, and copying a golden folder so the one in git stays untouched.

use std::path::{Path, PathBuf};

/// `name` in the repository's tests/compat/.
pub fn golden(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .join("../../tests/compat")
        .join(name)
}

/// A fresh (removed if present) temporary folder named after `name` and the process.
pub fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quarry-engine-compat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Copies the folder tree `from` into `to` (created).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("list golden folder") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy golden file");
        }
    }
}
