//! Temporary folders of tests that keep large index files: named with a `p<pid>` component so
//! that folders left by test processes that are gone (a failed or killed run) can be found and
//! removed by a later run instead of filling the disk of a long-lived CI machine.

use std::path::PathBuf;

/// `<tmp>/<prefix>-<tag>-p<pid>` (or `<prefix>-p<pid>` with an empty tag), removed first.
pub fn fresh(prefix: &str, tag: &str) -> PathBuf {
    sweep_stale(prefix);
    let name = if tag.is_empty() {
        format!("{prefix}-p{}", std::process::id())
    } else {
        format!("{prefix}-{tag}-p{}", std::process::id())
    };
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Removes `<tmp>/<prefix>…` folders whose `p<pid>` component names a process that no longer
/// runs (checked through `/proc`, so only on Linux; elsewhere nothing is removed). Runs once per
/// process and prefix.
pub fn sweep_stale(prefix: &str) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static DONE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let done = DONE.get_or_init(|| Mutex::new(HashSet::new()));
    if !done.lock().map(|mut d| d.insert(prefix.to_string())).unwrap_or(false) {
        return;
    }
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(prefix) else { continue };
        let pid = rest.rsplit('-').find_map(|c| c.strip_prefix('p').and_then(|d| d.parse::<u32>().ok()));
        if let Some(pid) = pid {
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
