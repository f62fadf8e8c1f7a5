//! The codemap (ARCHITECTURE.md at the repository root) names only paths that exist.
//!
//! The map is read the way a reader reads it:
//!
//! * Inside the fenced block, a line starting at column 0 names a folder of the repository
//!   (`crates/`, `data/quickstart/`, `tests/compat/`, `fuzz/`, `scripts/`, `docs/`); a line
//!   starting at column 2 with `quarry-xyz` opens that crate (crates/quarry-xyz). The column where
//!   that line's description starts is the *sub-column*: a folder name there (`kernels/`, `io/`)
//!   opens a folder inside the crate's src/ (or the crate root: `tests/`, `benches/`) until the
//!   next line that starts at the sub-column; deeper-indented lines continue it.
//! * A folder name followed by a parenthesis (`qdrant/ (models.rs, …)`, `cluster/ (…)`) is the
//!   folder of the names inside that parenthesis only.
//! * A file name (`*.rs`, `*.py`, `*.sh`, `*.md`, `*.toml`, …, possibly with folders in front and
//!   `{a,b}` lists, which expand) or folder name resolves against, in order: the current folder,
//!   the crate's src/, the crate root, the top-level folder, the repository root, scripts/, docs/.
//!   It passes if any candidate exists.
//! * `quarry-xyz` anywhere must be a crate; `quarry_xyz::module` a module of that crate;
//!   `cargo test -p quarry-xyz --test name` a test target crates/quarry-xyz/tests/name.rs.
//! * Text in backticks inside the block is code or a command line (`passages/`, `quarry serve`),
//!   not a path of the repository, and is skipped; so are routes (`/healthz`), home-relative and
//!   out-of-repository paths (`~/…`, `../…`).
//!
//! Outside the block, only names with a `/` (files or folders), crate names, module paths and
//! `cargo test` commands are checked, from the repository root.

use std::path::{Path, PathBuf};

/// File extensions that make a bare word a file name.
const EXTENSIONS: &[&str] = &["rs", "py", "pyi", "sh", "md", "toml", "lua", "txt", "json", "jsonl", "qsnap"];

/// A name the map uses that matches no file or folder.
#[derive(Debug, Clone, PartialEq)]
struct Unresolved {
    /// 1-based line of ARCHITECTURE.md.
    line: usize,
    /// The name as the map writes it (after expanding `{a,b}`).
    name: String,
    /// Repository-relative candidates that were tried.
    tried: Vec<PathBuf>,
}

/// What checking a map found.
#[derive(Debug, Default)]
struct Report {
    /// Names checked (each expansion of a `{a,b}` list counts once).
    checked: usize,
    unresolved: Vec<Unresolved>,
    /// Each resolved name with its line and the path it resolved to.
    resolved: Vec<(usize, String, PathBuf)>,
    /// Whether a fenced block was found.
    saw_block: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    File,
    Dir,
}

/// Strips punctuation a sentence puts around a name: parentheses, quotes, commas, a final full stop,
/// a possessive `'s`.
fn clean(token: &str) -> &str {
    let t = token.trim_start_matches(['(', '"', '\'', '[', '`']);
    let t = t.trim_end_matches([',', ';', ':', '.', ')', '"', '`', ']', '!', '?']);
    let t = t.strip_suffix("'s").unwrap_or(t);
    t.trim_end_matches([',', ';', ':', '.', ')'])
}

/// Whether `name` is written like a path of the repository, and which kind.
fn path_kind(name: &str) -> Option<Kind> {
    if name.is_empty()
        || name.starts_with(['/', '~', '$', '-', '.'])
        || name.split('/').any(|c| c == "..")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-./{},+".contains(c))
    {
        return None;
    }
    if let Some(dir) = name.strip_suffix('/') {
        // Every component a plain name: `rrf/dbsf` or `SQ8/SQ4` are not folders, `a/b/` is.
        return (!dir.is_empty() && !dir.contains("//")).then_some(Kind::Dir);
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    let (stem, ext) = last.rsplit_once('.')?;
    let stem_ok = stem.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '{');
    (stem_ok && EXTENSIONS.contains(&ext)).then_some(Kind::File)
}

/// A crate name: `quarry-` and lower-case letters or digits.
fn crate_name(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("quarry-")?;
    (!rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())).then_some(name)
}

/// Expands `{a,b}` lists: `commands/{quickstart,search}.rs` → two names.
fn expand_braces(name: &str) -> Vec<String> {
    let Some(open) = name.find('{') else { return vec![name.to_string()] };
    let Some(close) = name[open..].find('}').map(|c| open + c) else { return vec![name.to_string()] };
    let (head, tail) = (&name[..open], &name[close + 1..]);
    name[open + 1..close].split(',').flat_map(|alt| expand_braces(&format!("{head}{alt}{tail}"))).collect()
}

/// Splits a line into words with their (character) column, leaving out text in backticks.
/// `in_code` carries an unclosed backtick over to the next line.
fn words(line: &str, in_code: &mut bool) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (col, c) in line.chars().enumerate() {
        if c == '`' {
            *in_code = !*in_code;
            // A word touching a code span ends there.
            out.extend(current.take());
            continue;
        }
        if *in_code || c.is_whitespace() {
            out.extend(current.take());
            continue;
        }
        match &mut current {
            Some((_, w)) => w.push(c),
            None => current = Some((col, c.to_string())),
        }
    }
    out.extend(current);
    out
}

/// Checks ARCHITECTURE.md text `map` against the repository at `root`.
fn check(map: &str, root: &Path) -> Report {
    let mut checker = Checker { root, report: Report::default() };
    let mut block = Block::default();
    let mut in_block = false;
    for (i, line) in map.lines().enumerate() {
        let line_no = i + 1;
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            checker.report.saw_block = true;
            block = Block::default();
            continue;
        }
        if in_block {
            block.line(&mut checker, line_no, line);
        } else {
            checker.prose(line_no, line);
        }
        checker.cargo_test_commands(line_no, line);
    }
    checker.report
}

struct Checker<'a> {
    root: &'a Path,
    report: Report,
}

impl Checker<'_> {
    /// Records `name` (a path of `kind`, braces not yet expanded) as resolved if any of
    /// `bases`/name exists. Returns the first existing candidate of the first expansion, if any.
    fn resolve(&mut self, line: usize, name: &str, kind: Kind, bases: &[PathBuf]) -> Option<PathBuf> {
        let mut first = None;
        for expanded in expand_braces(name) {
            self.report.checked += 1;
            let mut tried: Vec<PathBuf> = Vec::new();
            for base in bases {
                let rel = base.join(expanded.trim_end_matches('/'));
                if !tried.contains(&rel) {
                    tried.push(rel);
                }
            }
            let found = tried.iter().find(|rel| {
                let p = self.root.join(rel);
                match kind {
                    Kind::File => p.is_file(),
                    Kind::Dir => p.is_dir(),
                }
            });
            match found {
                Some(rel) => {
                    self.report.resolved.push((line, expanded.clone(), rel.clone()));
                    first.get_or_insert_with(|| rel.clone());
                }
                None => self.report.unresolved.push(Unresolved { line, name: expanded, tried }),
            }
        }
        first
    }

    /// Checks a crate name.
    fn krate(&mut self, line: usize, name: &str) -> PathBuf {
        let dir = PathBuf::from("crates");
        self.resolve(line, name, Kind::Dir, std::slice::from_ref(&dir)).unwrap_or_else(|| dir.join(name))
    }

    /// `quarry_xyz::module::…`: the crate, and the module when the next segment is lower case.
    fn module_path(&mut self, line: usize, word: &str) {
        let mut parts = word.split("::");
        let Some(krate) = parts.next().and_then(|k| k.strip_prefix("quarry_")) else { return };
        let krate = format!("quarry-{krate}");
        if crate_name(&krate).is_none() {
            return;
        }
        let dir = self.krate(line, &krate);
        if let Some(module) = parts.next().filter(|m| m.starts_with(|c: char| c.is_ascii_lowercase())) {
            let src = dir.join("src");
            let tried = vec![src.join(format!("{module}.rs")), src.join(module).join("mod.rs")];
            self.report.checked += 1;
            match tried.iter().find(|rel| self.root.join(rel).is_file()) {
                Some(rel) => self.report.resolved.push((line, word.to_string(), rel.clone())),
                None => self.report.unresolved.push(Unresolved { line, name: word.to_string(), tried }),
            }
        }
    }

    /// A line outside the fenced block: names with a `/`, crate names, module paths.
    fn prose(&mut self, line: usize, text: &str) {
        for word in text.split_whitespace() {
            let word = clean(word.trim_matches('`'));
            if word.contains("::") {
                self.module_path(line, word);
            } else if let Some(name) = crate_name(word) {
                self.krate(line, name);
            } else if let Some(kind) = path_kind(word).filter(|_| word.contains('/')) {
                self.resolve(line, word, kind, &[PathBuf::new()]);
            }
        }
    }

    /// `cargo test -p quarry-xyz --test name`: the test target must exist.
    fn cargo_test_commands(&mut self, line: usize, text: &str) {
        let mut rest = text;
        while let Some(at) = rest.find("cargo test") {
            rest = &rest[at + "cargo test".len()..];
            let command = rest.split('`').next().unwrap_or(rest);
            let args: Vec<&str> = command.split_whitespace().collect();
            let arg = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| clean(w[1]));
            if let (Some(krate), Some(test)) = (arg("-p"), arg("--test")) {
                let file = format!("{test}.rs");
                self.resolve(line, &file, Kind::File, &[PathBuf::from("crates").join(krate).join("tests")]);
            }
        }
    }
}

/// Where the reader is inside the fenced block.
#[derive(Default)]
struct Block {
    /// The top-level folder of the current section (`crates`, `scripts`, …).
    top: Option<PathBuf>,
    /// The crate being described (crates/quarry-xyz).
    krate: Option<PathBuf>,
    /// Column where the current entry's descriptions start.
    sub_column: usize,
    /// Folder opened at the sub-column (`kernels/`), until the next line at the sub-column.
    heading: Option<PathBuf>,
    /// Folders written before a parenthesis, each with the depth inside that parenthesis.
    scopes: Vec<(PathBuf, usize)>,
    /// Parenthesis depth.
    depth: usize,
    /// The previous word was a folder outside the heading position: a parenthesis right after it
    /// makes it the folder of that parenthesis.
    pending: Option<PathBuf>,
    /// An unclosed backtick.
    in_code: bool,
}

impl Block {
    /// The folder bare names are read in first.
    fn current(&self) -> Option<&PathBuf> {
        self.scopes.last().map(|(dir, _)| dir).or(self.heading.as_ref())
    }

    /// Candidate folders for a name, nearest first.
    fn bases(&self) -> Vec<PathBuf> {
        let mut bases: Vec<PathBuf> = self.current().cloned().into_iter().collect();
        if let Some(krate) = &self.krate {
            bases.push(krate.join("src"));
            bases.push(krate.clone());
        }
        bases.extend(self.top.clone());
        bases.extend([PathBuf::new(), PathBuf::from("scripts"), PathBuf::from("docs")]);
        bases
    }

    fn line(&mut self, checker: &mut Checker<'_>, line: usize, text: &str) {
        let words = words(text, &mut self.in_code);
        let Some(&(indent, ref first)) = words.first() else { return };
        let mut heading_at = None;
        if indent == 0 {
            // A folder of the repository: a new section.
            let name = clean(first);
            *self = Block { in_code: self.in_code, ..Block::default() };
            let kind = path_kind(name).unwrap_or(Kind::Dir);
            let found = checker.resolve(line, name, kind, &[PathBuf::new()]);
            self.top = Some(found.unwrap_or_else(|| PathBuf::from(name.trim_end_matches('/'))));
            self.sub_column = words.get(1).map_or(usize::MAX, |w| w.0);
            return self.words(checker, line, &words[1..], None);
        }
        if let Some(name) = crate_name(clean(first)).filter(|_| indent == 2 && self.top.is_some()) {
            self.krate = Some(checker.krate(line, name));
            (self.heading, self.scopes, self.depth, self.pending) = (None, Vec::new(), 0, None);
            self.sub_column = words.get(1).map_or(usize::MAX, |w| w.0);
            heading_at = words.get(1).map(|w| w.0);
            return self.words(checker, line, &words[1..], heading_at);
        }
        if indent <= self.sub_column {
            // A new item at the sub-column closes the folder opened there.
            self.heading = None;
            heading_at = Some(indent);
        }
        self.words(checker, line, &words, heading_at)
    }

    /// Checks the words of one line; the word at column `heading_at` is in heading position.
    fn words(
        &mut self,
        checker: &mut Checker<'_>,
        line: usize,
        words: &[(usize, String)],
        heading_at: Option<usize>,
    ) {
        for (col, raw) in words {
            let opens = raw.chars().filter(|&c| c == '(').count();
            let closes = raw.chars().filter(|&c| c == ')').count();
            if opens > 0 {
                self.depth += opens;
                if let Some(dir) = self.pending.take().filter(|_| raw.starts_with('(')) {
                    self.scopes.push((dir, self.depth));
                }
            }
            self.pending = None;
            let word = clean(raw);
            let at_heading = heading_at == Some(*col);
            if word.contains("::") {
                checker.module_path(line, word);
            } else if let Some(name) = crate_name(word) {
                checker.krate(line, name);
            } else if let Some(kind) = path_kind(word) {
                let bases = self.bases();
                let found = checker.resolve(line, word, kind, &bases);
                if kind == Kind::Dir {
                    let dir = found.unwrap_or_else(|| bases[0].join(word.trim_end_matches('/')));
                    if at_heading {
                        self.heading = Some(dir);
                    } else if closes == 0 && !raw.ends_with([',', ';', '.', ':']) {
                        self.pending = Some(dir);
                    }
                }
            }
            if closes > 0 {
                self.depth = self.depth.saturating_sub(closes);
                while self.scopes.last().is_some_and(|&(_, d)| d > self.depth) {
                    self.scopes.pop();
                }
            }
        }
    }
}

fn repo_root() -> PathBuf {
    // Cargo sets CARGO_MANIFEST_DIR when it runs the test too: prefer that, so a test binary
    // built from another checkout of the same sources (a shared target folder) reads this one.
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .join("../..")
}

fn format_unresolved(u: &[Unresolved]) -> String {
    u.iter()
        .map(|u| {
            let tried: Vec<String> = u.tried.iter().map(|p| p.display().to_string()).collect();
            format!("  line {}: `{}` (tried {})", u.line, u.name, tried.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_path_the_codemap_names_exists() {
    let root = repo_root();
    let path = root.join("ARCHITECTURE.md");
    let map = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let report = check(&map, &root);
    // Shown with `--nocapture`: how every name was read.
    for (line, name, path) in &report.resolved {
        println!("line {line}: {name} -> {}", path.display());
    }
    assert!(report.saw_block, "ARCHITECTURE.md has no fenced code block: the map's format changed");
    assert!(
        report.checked >= 150,
        "only {} names found in ARCHITECTURE.md: the map's format changed and this test no longer reads it",
        report.checked
    );
    assert!(
        report.unresolved.is_empty(),
        "ARCHITECTURE.md names {} path(s) that do not exist (of {} checked):\n{}",
        report.unresolved.len(),
        report.checked,
        format_unresolved(&report.unresolved)
    );
}

/// The reader's rules, on a small map over this repository: folders at the sub-column, folders
/// scoped to a parenthesis, brace lists, fallbacks, and every unresolved name with its line.
#[test]
fn the_parser_resolves_names_as_a_reader_would() {
    let map = "\
# title, `crates/nowhere/` is checked too
Prose: docs/FORMAT.md, `quarry_testkit::conformance`, `quarry_core::Error`, `cargo test -p quarry-testkit --test codemap`.

```
crates/
  quarry-linalg   kernels/   scalar.rs (`passages/`, see /quarry/ and rrf/dbsf), avx2.rs,
                             mod.rs, topk.rs
                  aligned.rs AlignedVec, kernels/scalar.rs, benches/kernels.rs
                  tests.rs, lib.rs
  quarry-ann      hnsw/      graph.rs, cluster/ (nope.rs), builder.rs
                  spann/     cluster.rs + cluster/ (split.rs, tests.rs), builder.rs, graph.rs
  quarry-cli      commands/{quickstart,search,nosuch}.rs, commands/bench/
                  (params.rs: x, quant.rs), load.rs, peer_bench.py's schema
  quarry-nope     x.rs
scripts/          test.sh, fuzz.sh + peer_quant.py (bench_flat.sh)
docs/             FORMAT.md, decisions/, benchmarks/, nothing/
```
";
    let report = check(map, &repo_root());
    let got: Vec<(usize, &str)> = report.unresolved.iter().map(|u| (u.line, u.name.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (1, "crates/nowhere/"),
            // tests.rs is in kernels/, not in the crate's src/ (the heading folder closed at the sub-column).
            (9, "tests.rs"),
            // No hnsw/cluster/ (nor cluster/ elsewhere in the crate); nope.rs nowhere.
            (10, "cluster/"),
            (10, "nope.rs"),
            // graph.rs is in hnsw/, not spann/.
            (11, "graph.rs"),
            (12, "commands/nosuch.rs"),
            (13, "peer_bench.py"),
            (14, "quarry-nope"),
            (14, "x.rs"),
            (16, "nothing/"),
        ],
        "\n{}",
        format_unresolved(&report.unresolved)
    );
    assert!(report.checked > got.len());
}
