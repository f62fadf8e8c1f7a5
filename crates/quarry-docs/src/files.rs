//! The files an ingest reads: paths as given, folders walked recursively (hidden entries, such as
//! `.git`, skipped, symbolic links to folders not followed; only files with the extension of a
//! [`Format`] Quarry reads: a file without one is read as plain text only when named), and
//! shell-style glob patterns
//! (`docs/**/*.md`). Files come out sorted, each once.

use crate::document::Format;
use quarry_core::{Error, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The files named by `args` (see the module docs). A path that does not exist, or a pattern
/// that matches nothing, is an error naming it; a file given by name is kept whatever its
/// extension (reading it reports an unknown format).
pub fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = BTreeSet::new();
    for arg in args {
        let s = arg.to_string_lossy();
        if s.contains(['*', '?', '[']) && !arg.exists() {
            let paths = glob::glob(&s).map_err(|e| Error::InvalidArgument(format!("pattern {s:?}: {e}")))?;
            let mut any = false;
            for p in paths {
                let p =
                    p.map_err(|e| Error::io("listing", e.path(), std::io::Error::other(e.to_string())))?;
                any = true;
                if p.is_dir() {
                    walk(&p, &mut out)?;
                } else if Format::of(&p).is_some() {
                    out.insert(p);
                }
            }
            if !any {
                return Err(Error::NotFound(format!("no file matches {s:?}")));
            }
        } else if arg.is_dir() {
            walk(arg, &mut out)?;
        } else if arg.is_file() {
            out.insert(arg.clone());
        } else {
            return Err(Error::NotFound(format!("{}: no such file or folder", arg.display())));
        }
    }
    Ok(out.into_iter().collect())
}

/// Adds the readable files under `dir` (recursively, hidden entries skipped).
fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io("reading", &path, e))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if path.is_file() && path.extension().is_some() && Format::of(&path).is_some() {
            out.insert(path);
        }
    }
    Ok(())
}
