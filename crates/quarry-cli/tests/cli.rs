//! End-to-end tests of the `quarry` binary: quickstart, bench ann, search + eval, and clear
//! errors (never a panic) on bad input.

use quarry_core::Matrix;
use quarry_eval::io::{write_fvecs, write_ivecs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quarry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry")).args(args).output().expect("quarry runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quarry-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

/// Writes a random L2 dataset with exact ground truth computed in f64.
fn dataset(tag: &str, n: usize, nq: usize, dim: usize, k: usize) -> (PathBuf, PathBuf, PathBuf) {
    let mut s = 7u64;
    let base = Matrix::new((0..n * dim).map(|_| lcg(&mut s)).collect(), dim).expect("shape");
    let query = Matrix::new((0..nq * dim).map(|_| lcg(&mut s)).collect(), dim).expect("shape");
    let mut gt = Vec::new();
    for q in query.iter() {
        let mut d: Vec<(f64, i32)> = base
            .iter()
            .enumerate()
            .map(|(i, x)| (q.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum(), i as i32))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        gt.extend(d.iter().take(k).map(|x| x.1));
    }
    let (b, q, g) = (
        tmp(&format!("{tag}-base.fvecs")),
        tmp(&format!("{tag}-query.fvecs")),
        tmp(&format!("{tag}-gt.ivecs")),
    );
    write_fvecs(&b, &base).expect("write base");
    write_fvecs(&q, &query).expect("write query");
    write_ivecs(&g, &gt, k).expect("write gt");
    (b, q, g)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn quickstart_runs_offline_and_reports_full_recall() {
    let o = quarry(&["quickstart", "--examples", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Query 0:") && out.contains("Query 1:"), "{out}");
    assert!(out.contains("over all 100 queries: flat 1.0000"), "{out}");
    // The graph index's recall, and a text question answered (by the model or BM25).
    let graph: f64 = out
        .split("), HNSW ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("HNSW recall printed");
    assert!(graph >= 0.95, "{out}");
    assert!(out.contains("Question: a bird that flies") && out.contains("   1. "), "{out}");
    assert!(out.contains("Next:") && out.contains("quarry ingest") && out.contains("quarry serve"), "{out}");
}

#[test]
fn bench_ann_prints_peer_schema_with_exact_recall() {
    let (b, q, g) = dataset("bench", 3000, 40, 24, 20);
    let o = bench(
        &(b.clone(), q.clone(), g.clone()),
        &[
            "--metric",
            "l2",
            "--index",
            "flat",
            "-k",
            "10",
            "--threads",
            "1",
            "--queries",
            "30",
            "--storage",
            "f32,f16",
            "--passes",
            "1",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "one row per storage");
    for line in &lines {
        let row: serde_json::Value = serde_json::from_str(line).expect("JSON row");
        for key in [
            "system",
            "index",
            "params",
            "k",
            "threads",
            "recall",
            "qps",
            "build_seconds",
            "index_bytes",
            "queries",
        ] {
            assert!(row.get(key).is_some(), "missing {key} in {line}");
        }
        assert_eq!(row["queries"], 30);
        assert_eq!(row["k"], 10);
        assert!(row["qps"].as_f64().expect("qps") > 0.0);
    }
    let f32_row: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(f32_row["recall"].as_f64(), Some(1.0));
    assert_eq!(f32_row["index_bytes"].as_u64().map(|b| b >= 3000 * 24 * 4), Some(true));
}

#[test]
fn search_then_eval_round_trip() {
    let (b, q, _) = dataset("search", 500, 5, 8, 1);
    let run = tmp("run.trec");
    let o = quarry(&[
        "search",
        "--base",
        p(&b),
        "--query",
        p(&q),
        "--index",
        "flat",
        "-k",
        "7",
        "--out",
        p(&run),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&run).expect("run written");
    assert_eq!(text.lines().count(), 35);
    assert!(text.lines().next().expect("line").starts_with("0 Q0 "), "{text}");
    // Qrels marking each query's top result relevant: MRR = 1.
    let qrels = tmp("qrels.txt");
    let top: Vec<String> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("1"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} 0 {} 1", f[0], f[2])
        })
        .collect();
    std::fs::write(&qrels, top.join("\n")).expect("write qrels");
    let o = quarry(&["eval", "--qrels", p(&qrels), "--run", p(&run), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["recip_rank"].as_f64(), Some(1.0));
    assert_eq!(v["num_q"].as_u64(), Some(5));
}

#[test]
fn bad_input_gives_clear_errors_not_panics() {
    let (b, _, g) = dataset("bad", 50, 2, 8, 5);
    let wrong_dim = tmp("q4.fvecs");
    write_fvecs(&wrong_dim, &Matrix::new(vec![0.5; 8], 4).expect("shape")).expect("write");
    let o = bench(&(b.clone(), wrong_dim.clone(), g.clone()), &["-k", "5", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong dimension"), "{}", stderr(&o));

    let truncated = tmp("trunc.fvecs");
    let bytes = std::fs::read(&b).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() - 3]).expect("write");
    let o = quarry(&["search", "--base", p(&truncated), "--query", p(&b), "--out", p(&tmp("x.trec"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("trunc.fvecs"), "{}", stderr(&o));

    let o = quarry(&["eval", "--qrels", "/nonexistent/qrels", "--run", p(&b)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/qrels"), "{}", stderr(&o));

    let o = bench(&(b.clone(), b.clone(), g.clone()), &["--index", "ivf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown index"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

/// On machines with the team's shared data: the exact dense run over SciFact reproduces the
/// reference measures (all-MiniLM-L6-v2, nDCG@10 = 0.6451).
#[test]
fn scifact_dense_run_matches_reference() {
    let Some(dir) = quarry_testkit::shared_data::require("scifact") else { return };
    let run = tmp("scifact.trec");
    let o = quarry(&[
        "search",
        "--base",
        p(&dir.join("corpus_embeddings.npy")),
        "--query",
        p(&dir.join("query_embeddings.npy")),
        "--base-ids",
        p(&dir.join("corpus_ids.txt")),
        "--query-ids",
        p(&dir.join("query_ids.txt")),
        "--metric",
        "cosine",
        "-k",
        "100",
        "--out",
        p(&run),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quarry(&["eval", "--qrels", p(&dir.join("qrels/test.tsv")), "--run", p(&run), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference_measures.json")).expect("read"))
            .expect("JSON");
    let want = &reference["runs"]["dense_minilm"]["mean"];
    for m in ["ndcg_cut_10", "recall_100", "map", "recip_rank", "P_10"] {
        let (g, w) = (got[m].as_f64().expect("value"), want[m].as_f64().expect("reference"));
        assert!((g - w).abs() < 1e-4, "{m}: {g} vs reference {w}");
    }
}

/// Ground truth that picked the other copy of a duplicated vector still gives recall 1.0.
#[test]
fn bench_recall_counts_exact_ties() {
    let mut s = 3u64;
    let half: Vec<f32> = (0..50 * 8).map(|_| lcg(&mut s)).collect();
    let base = Matrix::new([half.clone(), half].concat(), 8).expect("shape");
    let queries = Matrix::new(base.as_slice()[..5 * 8].to_vec(), 8).expect("shape");
    let gt: Vec<i32> = (0..5).map(|i| 50 + i).collect();
    let (b, q, g) = (tmp("dup-base.fvecs"), tmp("dup-query.fvecs"), tmp("dup-gt.ivecs"));
    write_fvecs(&b, &base).expect("write");
    write_fvecs(&q, &queries).expect("write");
    write_ivecs(&g, &gt, 1).expect("write");
    let o =
        bench(&(b.clone(), q.clone(), g.clone()), &["--metric", "l2", "-k", "1", "--passes", "1", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(row["recall"].as_f64(), Some(1.0), "{row}");
}

#[test]
fn eval_refuses_runs_sharing_no_query_with_qrels_and_accepts_trec_eval_measure_lists() {
    let (qrels, run) = (tmp("mismatch.qrels"), tmp("mismatch.run"));
    std::fs::write(&qrels, "1 0 d1 1\n").expect("write");
    std::fs::write(&run, "q1 Q0 d1 1 0.5 t\n").expect("write");
    let o = quarry(&["eval", "--qrels", p(&qrels), "--run", p(&run)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no query is in both"), "{}", stderr(&o));
    std::fs::write(&run, "1 Q0 d2 1 0.9 t\n1 Q0 d1 2 0.5 t\n").expect("write");
    let o = quarry(&[
        "eval",
        "--qrels",
        p(&qrels),
        "--run",
        p(&run),
        "-m",
        "P.1,2",
        "-m",
        "recip_rank",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(
        (v["P_1"].as_f64(), v["P_2"].as_f64(), v["recip_rank"].as_f64()),
        (Some(0.0), Some(0.5), Some(0.5))
    );
}

/// `bench ann` with `args` appended to the base/query/ground-truth flags.
fn bench(files: &(PathBuf, PathBuf, PathBuf), args: &[&str]) -> Output {
    let (b, q, g) = files;
    let mut all = vec!["bench", "ann", "--base", p(b), "--query", p(q), "--gt", p(g)];
    all.extend_from_slice(args);
    quarry(&all)
}

fn json_rows(o: &Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).expect("JSON row")).collect()
}

#[test]
fn bench_params_and_sweep_errors_name_the_valid_choices() {
    let files = dataset("kv-errors", 60, 3, 8, 5);
    for (args, want) in [
        (
            &["--index", "hnsw", "--params", "M=16,foo=3"][..],
            "unknown --params key \"foo\" for the hnsw index: valid keys are M, efc, seed, storage",
        ),
        (&["--index", "hnsw", "--params", "M"], "expects key=value"),
        (&["--index", "hnsw", "--params", "efc=lots"], "--params efc=lots: expected a positive integer"),
        (
            &["--index", "flat", "--params", "efc=200"],
            "unknown --params key \"efc\" for the flat index: valid keys are storage",
        ),
        (&["--index", "flat", "--params", "storage=f8"], "expected f32 or f16"),
        (&["--index", "flat", "--sweep", "ef=10,20"], "the flat index has no search parameter to sweep"),
        (
            &["--index", "hnsw", "--sweep", "nprobe=1,2"],
            "unknown --sweep parameter \"nprobe\" for the hnsw index",
        ),
        (&["--index", "hnsw", "--sweep", "ef=10,abc"], "\"abc\" is not a positive integer"),
        (&["--index", "hnsw", "--sweep", "10,20"], "--sweep expects name=v1,v2"),
        (&["--index", "hnsw", "--storage", "f16"], "--storage applies to the flat index only"),
        (
            &["--index", "flat", "--storage", "f16", "--params", "storage=f32"],
            "either --storage or --params storage=",
        ),
        (&["--index", "hnsw", "--build-threads", "0"], "--build-threads must be at least 1"),
    ] {
        let o = bench(&files, &[args, &["-k", "5", "--json"]].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: want {want:?} in {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked") && stdout(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn bench_flat_takes_storage_from_params() {
    let files = dataset("kv-flat", 800, 20, 16, 10);
    let o = bench(
        &files,
        &["--metric", "l2", "--index", "flat", "--params", "storage=f16", "--passes", "1", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_rows(&o);
    assert_eq!(rows.len(), 1, "{}", stdout(&o));
    assert_eq!(rows[0]["params"], serde_json::json!({ "storage": "f16" }));
    let bytes = rows[0]["index_bytes"].as_u64().expect("bytes");
    assert!((800 * 16 * 2..800 * 16 * 4).contains(&bytes), "f16 rows take 2 bytes a component: {bytes}");
    assert!(rows[0]["recall"].as_f64().expect("recall") >= 0.9, "{}", rows[0]);
}

/// A clustered L2 set (like real embeddings): 2,000 × 16-d base, 50 queries from the same
/// clusters, exact top-10 in f64.
fn clustered_dataset(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    use quarry_testkit::{gen, oracle};
    let all = gen::clustered(2050, 16, 24, 0.35, 11);
    let base = Matrix::new(all.as_slice()[..2000 * 16].to_vec(), 16).expect("shape");
    let query = Matrix::new(all.as_slice()[2000 * 16..].to_vec(), 16).expect("shape");
    let gt: Vec<i32> = query
        .iter()
        .flat_map(|q| oracle::exact_top_k(&base, q, quarry_core::Metric::L2, 10))
        .map(|(id, _)| id as i32)
        .collect();
    let files = (
        tmp(&format!("{tag}-base.fvecs")),
        tmp(&format!("{tag}-query.fvecs")),
        tmp(&format!("{tag}-gt.ivecs")),
    );
    write_fvecs(&files.0, &base).expect("write base");
    write_fvecs(&files.1, &query).expect("write query");
    write_ivecs(&files.2, &gt, 10).expect("write gt");
    files
}

#[test]
fn bench_hnsw_sweeps_ef_over_one_build() {
    let files = clustered_dataset("hnsw-sweep");
    let o = bench(
        &files,
        &[
            "--metric",
            "l2",
            "--index",
            "hnsw",
            "--params",
            "M=16,efc=200",
            "--sweep",
            "ef=10,40",
            "--build-threads",
            "2",
            "--threads",
            "1",
            "-k",
            "10",
            "--passes",
            "1",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_rows(&o);
    assert_eq!(rows.len(), 2, "one row per ef: {}", stdout(&o));
    for (row, ef) in rows.iter().zip([10, 40]) {
        assert_eq!(
            row["params"],
            serde_json::json!({ "M": 16, "efc": 200, "ef": ef, "walk": "sq8" }),
            "{row}"
        );
        assert_eq!(
            (row["index"].as_str(), row["k"].as_u64(), row["queries"].as_u64()),
            (Some("hnsw"), Some(10), Some(50))
        );
        assert!(
            row["qps"].as_f64().expect("qps") > 0.0
                && row["index_bytes"].as_u64().expect("bytes") > 2000 * 16 * 4
        );
    }
    // One build: both rows report the same build time.
    assert_eq!(rows[0]["build_seconds"], rows[1]["build_seconds"]);
    let recall = |r: &serde_json::Value| r["recall"].as_f64().expect("recall");
    assert!(recall(&rows[1]) >= recall(&rows[0]), "ef=40 {} < ef=10 {}", recall(&rows[1]), recall(&rows[0]));
    assert!(recall(&rows[1]) >= 0.9, "recall at ef=40: {}", recall(&rows[1]));
}

#[test]
fn saved_hnsw_index_opens_and_answers() {
    let (b, q, g) = dataset("open", 1500, 20, 16, 10);
    let file = tmp("open.qhnsw");
    let o = bench(
        &(b.clone(), q.clone(), g.clone()),
        &[
            "--metric",
            "l2",
            "--index",
            "hnsw",
            "--sweep",
            "ef=32",
            "--passes",
            "1",
            "--save",
            p(&file),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quarry(&["bench", "open", "--index-file", p(&file), "--query", p(&q), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(row["index"], "hnsw");
    assert!(row["open_seconds"].as_f64().expect("open") < 5.0);
    let o = quarry(&["bench", "open", "--index-file", p(&b), "--query", p(&q)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a Quarry index file"), "{}", stderr(&o));
}

#[test]
fn bench_quantized_indexes_sweep_rerank_save_and_open() {
    let files = clustered_dataset("quant");
    let dir = tmp("quant-hnsw-sq8");
    let _ = std::fs::remove_dir_all(&dir);
    let o = bench(
        &files,
        &[
            "--metric",
            "l2",
            "--index",
            "hnsw+sq8",
            "--params",
            "M=12,efc=100,rerank=3",
            "--sweep",
            "ef=16,48;rerank=1,4",
            "--passes",
            "1",
            "--save",
            p(&dir),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_rows(&o);
    assert_eq!(rows.len(), 4, "ef × rerank: {}", stdout(&o));
    for row in &rows {
        let params = &row["params"];
        assert_eq!((params["codes"].as_str(), params["M"].as_u64()), (Some("sq8"), Some(12)), "{row}");
        assert_eq!(params["code_bytes"].as_u64(), Some(16 + 4), "16 one-byte cells and |x̂|² for L2");
    }
    // Resident: codes (20 bytes a row) and graph, not the f32 rows (64 bytes a row, memory-mapped
    // for re-scoring): less than the same graph with its rows.
    let o = bench(
        &files,
        &["--metric", "l2", "--index", "hnsw", "--load", &format!("{}/graph.qhnsw", p(&dir)), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = json_rows(&o)[0]["index_bytes"].as_u64().expect("bytes");
    let resident = rows[0]["index_bytes"].as_u64().expect("bytes");
    assert!(resident >= 2000 * 20 && resident < plain, "resident {resident} vs plain hnsw {plain}");
    let best = rows.iter().map(|r| r["recall"].as_f64().expect("recall")).fold(0.0, f64::max);
    assert!(best >= 0.9, "best recall {best}");
    // The folder opens in another process, with the OS's resident memory reported.
    let o = quarry(&[
        "bench",
        "open",
        "--index-file",
        p(&dir),
        "--query",
        p(&files.1),
        "--rerank",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(row["index"], "hnsw+sq8");
    assert!(row["process_rss_bytes"].as_u64().is_some());
    // --load of the folder with other codes than --index asks for is refused.
    let o = bench(&files, &["--metric", "l2", "--index", "hnsw+rabitq", "--load", p(&dir), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("holds sq8 codes"), "{}", stderr(&o));
    // flat+pq with 4-bit fast-scan, and bad codes parameters named.
    let o = bench(
        &files,
        &[
            "--metric",
            "l2",
            "--index",
            "flat+pq",
            "--params",
            "m=8,nbits=4",
            "--sweep",
            "rerank=20",
            "--passes",
            "1",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_rows(&o);
    assert!(rows[0]["recall"].as_f64().expect("recall") >= 0.9, "{}", stdout(&o));
    let o = bench(&files, &["--index", "flat+pq", "--params", "nbits=5", "--json"]);
    assert!(stderr(&o).contains("nbits=5"), "{}", stderr(&o));
    let o = bench(&files, &["--index", "hnsw+zip", "--json"]);
    assert!(stderr(&o).contains("unknown compression"), "{}", stderr(&o));
    let o = bench(&files, &["--index", "flat+sq8", "--sweep", "ef=10", "--json"]);
    assert!(stderr(&o).contains("unknown --sweep parameter"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_spann_builds_into_a_folder_and_sweeps_probes() {
    let files = clustered_dataset("spann");
    let dir = tmp("spann-index");
    let _ = std::fs::remove_dir_all(&dir);
    let args = [
        "--metric",
        "l2",
        "--index",
        "spann",
        "--index-dir",
        p(&dir),
        "--params",
        "head_ratio=0.1,cache_mb=1",
    ];
    let o =
        bench(&files, &[&args[..], &["--sweep", "max_postings=2,64", "--passes", "1", "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_rows(&o);
    assert_eq!(rows.len(), 2, "{}", stdout(&o));
    let recall = |r: &serde_json::Value| r["recall"].as_f64().expect("recall");
    assert!(recall(&rows[1]) >= recall(&rows[0]) && recall(&rows[1]) >= 0.9, "{}", stdout(&o));
    assert!(rows[1]["p99_ms"].as_f64().expect("p99") >= rows[1]["p50_ms"].as_f64().expect("p50"));
    assert_eq!(rows[0]["params"]["head_count"].as_u64(), Some(200));
    // Resident memory as the OS measures it, in a child process that only opens and searches.
    for row in &rows {
        let resident = row["resident_bytes"].as_u64().expect("resident_bytes");
        let process = row["process_rss_bytes"].as_u64().expect("process_rss_bytes");
        assert!(resident > 0 && resident < process, "{row}");
        assert!(
            row["rss_anon_bytes"].as_u64().is_some() && row["rss_file_bytes"].as_u64().is_some(),
            "{row}"
        );
        assert_eq!(row["cold"].as_bool(), Some(false), "{row}");
        assert!(row["index_bytes"].as_u64().expect("estimate") > 0, "{row}");
    }
    // `bench open` takes the full SPANN search parameters and reports the index's RSS growth.
    let o = quarry(&[
        "bench",
        "open",
        "--index-file",
        p(&dir),
        "--query",
        p(&files.1),
        "--max-postings",
        "16",
        "--ratio",
        "4",
        "--head-ef",
        "40",
        "--heads",
        "graph",
        "--rerank",
        "2",
        "--queries",
        "30",
        "--warm",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(row["index"], "spann");
    assert_eq!(row["queries"].as_u64(), Some(30));
    assert_eq!(row["search"]["heads"], "graph");
    assert_eq!(row["search"]["head_ef"].as_u64(), Some(40));
    assert!(row["resident_bytes"].as_u64().expect("resident") > 0, "{row}");
    let o = quarry(&["bench", "open", "--index-file", p(&dir), "--query", p(&files.1), "--heads", "scan0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("heads=scan0"), "{}", stderr(&o));
    // Opened again from the folder, without rebuilding.
    let o = bench(
        &files,
        &[
            "--metric",
            "l2",
            "--index",
            "spann",
            "--load",
            p(&dir),
            "--sweep",
            "max_postings=64",
            "--passes",
            "1",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_rows(&o)[0]["build_seconds"].as_f64(), Some(0.0));
    let o = bench(&files, &["--index", "spann", "--json"]);
    assert!(stderr(&o).contains("--index-dir"), "{}", stderr(&o));
    let o = bench(&files, &["--index", "hnsw", "--cold", "--json"]);
    assert!(stderr(&o).contains("--cold applies to --index spann only"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// JSONL points `first..first + n` of dimension 4 with a payload naming their group.
fn points_jsonl(path: &Path, first: u64, n: u64) {
    let mut text = String::new();
    for id in first..first + n {
        let v: Vec<f32> = (0..4).map(|j| ((id * 7 + j) % 13) as f32 / 13.0 + 0.01).collect();
        text += &format!(
            "{}\n",
            serde_json::json!({"id": id, "vector": v, "payload": {"group": id % 5, "name": format!("p{id}")}})
        );
    }
    std::fs::write(path, text).expect("write jsonl");
}

#[test]
fn collection_create_ingest_count_get_search() {
    let dir = tmp("db-basic");
    let _ = std::fs::remove_dir_all(&dir);
    let o = quarry(&[
        "collection",
        "create",
        "--dir",
        p(&dir),
        "--name",
        "c",
        "--dim",
        "4",
        "--metric",
        "cosine",
        "--index",
        "hnsw",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let jsonl = tmp("db-basic.jsonl");
    points_jsonl(&jsonl, 0, 250);
    let o =
        quarry(&["ingest", "--dir", p(&dir), "--collection", "c", "--jsonl", p(&jsonl), "--batch", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().collect::<Vec<_>>(), vec!["acked 100", "acked 200", "acked 250"]);
    let o = quarry(&["count", "--dir", p(&dir), "--collection", "c"]);
    assert_eq!(stdout(&o).trim(), "250");
    let o = quarry(&[
        "count",
        "--dir",
        p(&dir),
        "--collection",
        "c",
        "--filter",
        r#"{"must": [{"key": "group", "match": {"value": 2}}]}"#,
    ]);
    assert_eq!(stdout(&o).trim(), "50");
    let o = quarry(&["get", "--dir", p(&dir), "--collection", "c", "--id", "7"]);
    let got: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(got["id"], 7);
    assert_eq!(got["payload"]["name"], "p7");
    assert_eq!(got["vector"].as_array().map(Vec::len), Some(4));
    // Search with a filter: every hit passes it, the first is the query's own point.
    let q = tmp("db-basic-q.fvecs");
    let v: Vec<f32> = (0..4).map(|j| ((7 * 7 + j) % 13) as f32 / 13.0 + 0.01).collect();
    write_fvecs(&q, &Matrix::new(v, 4).expect("q")).expect("write q");
    let filter = r#"{"must": [{"key": "group", "match": {"any": [2]}}]}"#;
    let o = quarry(&[
        "search",
        "--dir",
        p(&dir),
        "--collection",
        "c",
        "--vector-file",
        p(&q),
        "-k",
        "10",
        "--filter",
        filter,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().expect("a line")).expect("json");
    let hits = row["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 10);
    assert_eq!(hits[0]["id"], 7);
    assert!(hits.iter().all(|h| h["payload"]["group"] == 2));
    // The beam and codes-only ranking are search options (an exact `hnsw` ignores the latter).
    let o = quarry(&[
        "search",
        "--dir",
        p(&dir),
        "--collection",
        "c",
        "--vector-file",
        p(&q),
        "-k",
        "3",
        "--ef",
        "16",
        "--no-rescore",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().expect("a line")).expect("json");
    assert_eq!(row["hits"][0]["id"], 7);
    // Bad input: named, with its line; the bad batch is not written, earlier ones stay.
    let bad = tmp("db-bad.jsonl");
    std::fs::write(&bad, "{\"id\": 900, \"vector\": [1, 2, 3, 4]}\n{\"id\": 901, \"vector\": [1, 2]}\n")
        .expect("write");
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "c", "--jsonl", p(&bad), "--batch", "10"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 2") && stderr(&o).contains("wrong dimension"), "{}", stderr(&o));
    std::fs::write(&bad, "{\"id\": 902, \"vector\": [1, 2, 3, 4]}\nnot json\n").expect("write");
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "c", "--jsonl", p(&bad)]);
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
    std::fs::write(&bad, "{\"id\": 903, \"vector\": [1, NaN, 3, 4]}\n").expect("write");
    assert!(!quarry(&["ingest", "--dir", p(&dir), "--collection", "c", "--jsonl", p(&bad)]).status.success());
    assert_eq!(stdout(&quarry(&["count", "--dir", p(&dir), "--collection", "c"])).trim(), "250");
    let o = quarry(&["count", "--dir", p(&dir), "--collection", "nope"]);
    assert!(stderr(&o).contains("unknown collection"), "{}", stderr(&o));
    let o = quarry(&["count", "--dir", p(&dir), "--collection", "c", "--filter", "{\"must\": 3}"]);
    assert!(stderr(&o).contains("bad filter"), "{}", stderr(&o));
    // Snapshot and restore elsewhere.
    let snap = tmp("db-basic.qsnap");
    let o = quarry(&["collection", "snapshot", "--dir", p(&dir), "--collection", "c", "--out", p(&snap)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let other = tmp("db-restored");
    let _ = std::fs::remove_dir_all(&other);
    let o = quarry(&["collection", "restore", "--dir", p(&other), "--name", "copy", "--snapshot", p(&snap)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&quarry(&["count", "--dir", p(&other), "--collection", "copy"])).trim(), "250");
    let _ = std::fs::remove_dir_all(&other);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills `quarry ingest` with SIGKILL at random moments (three runs in four; the fourth ends
/// normally), with background seals and checkpoints every 500 points; after every run, each
/// acknowledged point must be present with its exact vector and payload, and every batch either
/// whole or absent. 20 iterations in CI.
#[test]
fn crash_loop_keeps_every_acknowledged_point() {
    crash_loop(20, "db-crash");
}

/// The long crash loop: 200 iterations (`cargo test -p quarry-cli --test cli -- --ignored crash`).
#[test]
#[ignore = "long: 200 SIGKILLs"]
fn crash_loop_200_iterations() {
    crash_loop(200, "db-crash-long");
}

fn crash_loop(iters: u64, name: &str) {
    use std::io::BufRead;
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    let o =
        // Seals (segment folders, manifest checkpoints, log cuts) run in the background every
        // 500 points, so kills also land in the middle of checkpoints.
        quarry(&[
            "collection", "create", "--dir", p(&dir), "--name", "c", "--dim", "4", "--metric", "l2",
            "--seal-threshold", "500",
        ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (per_run, batch) = (3000u64, 50u64);
    let mut seed = 0xC0FFEEu64;
    let (mut total_acked, mut lost, mut kills) = (0u64, 0u64, 0u64);
    let mut acked_ranges: Vec<(u64, u64)> = Vec::new();
    for it in 0..iters {
        let first = it * per_run;
        let jsonl = tmp(&format!("{name}-{it}.jsonl"));
        points_jsonl(&jsonl, first, per_run);

        let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args([
                "ingest",
                "--dir",
                p(&dir),
                "--collection",
                "c",
                "--jsonl",
                p(&jsonl),
                "--batch",
                &batch.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ingest");
        let out = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut last = 0u64;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.parse().ok()) {
                    last = n;
                }
            }
            last
        });
        let wait_ms = (lcg(&mut seed) + 0.5) * 120.0;
        // Every fourth run ends normally (closing waits for its background seal, so checkpoints
        // complete and later kills hit a log that starts after one); the others are killed.
        if it % 4 != 3 {
            std::thread::sleep(std::time::Duration::from_micros((wait_ms * 1000.0) as u64));
            if child.kill().is_ok() {
                kills += 1;
            }
        }
        let _ = child.wait();
        let acked = reader.join().expect("reader");
        total_acked += acked;
        acked_ranges.push((first, acked));
        // Restart: reopen and check everything acknowledged so far, in every run.
        let db = quarry_engine::Database::open(&dir).expect("reopens after SIGKILL");
        let col = db.collection("c").expect("collection");
        for &(start, n) in &acked_ranges {
            for id in start..start + n {
                let want: Vec<f32> = (0..4).map(|j| ((id * 7 + j) % 13) as f32 / 13.0 + 0.01).collect();
                match col.get(quarry_engine::PointId::Num(id)) {
                    Some(pt) if pt.vectors[0] == want && pt.payload["name"] == format!("p{id}") => {}
                    _ => lost += 1,
                }
            }
        }
        // Nothing half-present: this run's points form whole batches (or the whole file).
        let present = (first..first + per_run)
            .filter(|&id| col.get(quarry_engine::PointId::Num(id)).is_some())
            .count() as u64;
        assert!(
            present >= acked && (present.is_multiple_of(batch) || present == per_run),
            "run {it}: {present} present, {acked} acked"
        );
        assert!(
            (first..first + present).all(|id| col.get(quarry_engine::PointId::Num(id)).is_some()),
            "a prefix of batches"
        );
        // The unacknowledged tail of the run is written now (as a client would retry it).
        acked_ranges.last_mut().expect("this run").1 = present;
    }
    let segments = quarry_engine::Database::open(&dir)
        .and_then(|db| db.collection("c"))
        .map(|c| c.segment_count())
        .expect("reopen");
    eprintln!(
        "crash loop: {iters} iterations, {kills} kills, {total_acked} points acknowledged, {lost} lost, {segments} sealed segments on disk at the end"
    );
    assert_eq!(lost, 0);
    assert!(
        dir.join("collections/c/manifest.qman").exists(),
        "background seals wrote checkpoints during the loop"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn mini_beir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .join("tests/data/mini-beir")
}

/// `quarry beir` on the shipped ten-document folder: BM25 always; dense and hybrid when the test
/// model has been fetched (`scripts/fetch_model.sh`). The run file holds the judged queries only.
#[test]
fn beir_builds_queries_and_evaluates_through_the_engine() {
    let data = mini_beir();
    let run = tmp("mini-bm25.trec");
    let o = quarry(&["beir", "--dataset", p(&data), "--mode", "bm25", "--json", "--run-out", p(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(row["docs"], 10);
    assert_eq!(row["queries"], 3);
    for m in ["ndcg_cut_10", "recall_100", "recip_rank", "map"] {
        let v = row[m].as_f64().expect(m);
        assert!((0.0..=1.0).contains(&v), "{m} = {v}");
    }
    // Each judged query's best-judged document shares words with it: BM25 ranks it first.
    assert!(row["recip_rank"].as_f64().expect("mrr") > 0.99, "{row}");
    let lines = std::fs::read_to_string(&run).expect("run");
    assert!(lines.lines().all(|l| l.split_whitespace().count() == 6));
    assert!(!lines.contains("q4 "));
    if let Err(e) = quarry_text::locate::model_dir("all-MiniLM-L6-v2") {
        quarry_testkit::skip::missing(
            "the model all-MiniLM-L6-v2",
            &format!("{e}; run scripts/fetch_model.sh"),
        );
        return;
    }
    for (mode, extra) in [("dense", &["--index", "flat"][..]), ("hybrid", &["--fusion", "weighted"][..])] {
        let mut args = vec!["beir", "--dataset", p(&data), "--mode", mode, "--json"];
        args.extend_from_slice(extra);
        let o = quarry(&args);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
        assert!(row["recip_rank"].as_f64().expect("mrr") > 0.99, "{mode}: {row}");
    }
    // Bad arguments are errors that name them.
    let o = quarry(&["beir", "--dataset", p(&data), "--mode", "sparse"]);
    assert!(!o.status.success() && stderr(&o).contains("sparse"), "{}", stderr(&o));
    let o = quarry(&["beir", "--dataset", p(&data), "--split", "dev"]);
    assert!(!o.status.success() && stderr(&o).contains("dev"), "{}", stderr(&o));
}

/// Routing from the CLI: `beir --route` builds one collection per expert and a group `route`,
/// which `quarry group` then lists, shows, searches (routed and fused) and deletes.
#[test]
fn beir_route_and_group_commands() {
    if quarry_text::locate::model_dir("all-MiniLM-L6-v2").is_err() {
        quarry_testkit::skip::missing("the model all-MiniLM-L6-v2", "run scripts/fetch_model.sh");
        return;
    }
    let dir = tmp("routedb");
    let _ = std::fs::remove_dir_all(&dir);
    let data = mini_beir();
    let o = quarry(&[
        "beir",
        "--dataset",
        p(&data),
        "--dir",
        p(&dir),
        "--index",
        "flat",
        "--route",
        "all-MiniLM-L6-v2,bm25",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    for run in ["expert:route-all-MiniLM-L6-v2", "expert:bm25", "routed:mean", "routed:max", "fuse_all:rrf"] {
        let nd = row["runs"][run]["ndcg_cut_10"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&nd), "{run}: {row}");
    }
    assert_eq!(row["runs"]["fuse_all:rrf"]["experts_searched"], 2.0);
    let o = quarry(&["group", "list", "--dir", p(&dir)]);
    assert!(stdout(&o).contains("\"route\""), "{}", stdout(&o));
    let o = quarry(&["group", "info", "--dir", p(&dir), "--name", "route"]);
    let info: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(info["settings"]["members"][1]["mode"], "bm25", "{info}");
    let o = quarry(&[
        "group",
        "search",
        "--dir",
        p(&dir),
        "--name",
        "route",
        "--text",
        "solar energy",
        "-k",
        "3",
        "--fuse-top",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(r["hits"].as_array().map(Vec::len), Some(3), "{r}");
    assert!(r["routing"].as_array().is_some_and(|a| a.iter().all(|e| e["searched"] == true)), "{r}");
    // Bad input names the problem.
    let o =
        quarry(&["group", "search", "--dir", p(&dir), "--name", "route", "--text", "x", "--fuse-top", "3"]);
    assert!(!o.status.success() && stderr(&o).contains("fuse_top"), "{}", stderr(&o));
    let o = quarry(&["group", "create", "--dir", p(&dir), "--name", "g2", "--members", "nowhere"]);
    assert!(!o.status.success() && stderr(&o).contains("nowhere"), "{}", stderr(&o));
    let o = quarry(&["group", "delete", "--dir", p(&dir), "--name", "route"]);
    assert!(stdout(&o).contains("true"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A text collection from the CLI: create (BM25 only), ingest JSONL with text, search with
/// several texts and explanations, and clear errors for lines without text.
#[test]
fn text_collection_create_ingest_search() {
    let dir = tmp("textdb");
    let _ = std::fs::remove_dir_all(&dir);
    let bad_analyzer = r#"{"stemer": 1}"#;
    let o = quarry(&[
        "collection",
        "create",
        "--dir",
        p(&dir),
        "--name",
        "bad",
        "--text",
        "--analyzer",
        bad_analyzer,
    ]);
    assert!(!o.status.success() && stderr(&o).contains("stemer"), "{}", stderr(&o));
    let analyzer = r#"{"ascii_folding": true}"#;
    let o = quarry(&[
        "collection",
        "create",
        "--dir",
        p(&dir),
        "--name",
        "t",
        "--text",
        "--k1",
        "0.9",
        "--b",
        "0.4",
        "--analyzer",
        analyzer,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let docs = tmp("text-docs.jsonl");
    let corpus = std::fs::read_to_string(mini_beir().join("corpus.jsonl")).expect("corpus");
    let lines: Vec<String> = corpus
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            serde_json::json!({"id": i, "text": v["text"], "payload": {"title": v["title"]}}).to_string()
        })
        .collect();
    std::fs::write(&docs, lines.join("\n")).expect("write");
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "t", "--jsonl", p(&docs), "--batch", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("acked 10"));
    let o = quarry(&[
        "search",
        "--dir",
        p(&dir),
        "--collection",
        "t",
        "--text",
        "bread yeast",
        "--text",
        "dough rise",
        "-k",
        "3",
        "--explain",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let res: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(res["mode"], "bm25");
    let hits = res["hits"].as_array().expect("hits");
    assert_eq!(hits[0]["id"], 5); // "Commercial yeast makes bread rise quickly; the dough …"
    assert!(hits[0]["explain"].as_array().expect("explain").len() == 2, "{res}");
    // Dense needs a model; a line without text is refused with its line number.
    let o = quarry(&["search", "--dir", p(&dir), "--collection", "t", "--text", "x", "--mode", "dense"]);
    assert!(!o.status.success() && stderr(&o).contains("no model"), "{}", stderr(&o));
    let bad = tmp("text-bad.jsonl");
    std::fs::write(&bad, "{\"id\": 99, \"payload\": {}}\n").expect("write");
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "t", "--jsonl", p(&bad)]);
    assert!(
        !o.status.success() && stderr(&o).contains("line 1") && stderr(&o).contains("text"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Multi-vector collections from the CLI: create with --multivector, ingest JSONL whose vectors
/// are arrays of vectors (sealed in segments), search with JSONL query sets (MaxSim),
/// refuse a malformed set; with the test model, `quarry embed --tokens` writes token vectors and
/// a text collection with --multivector answers text queries by MaxSim of token vectors.
#[test]
fn multivector_collection_create_ingest_search() {
    let dir = tmp("mvdb");
    let _ = std::fs::remove_dir_all(&dir);
    let o = quarry(&[
        "collection",
        "create",
        "--dir",
        p(&dir),
        "--name",
        "m",
        "--dim",
        "3",
        "--multivector",
        "--rerank",
        "50",
        "--seal-threshold",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("vector sets, MaxSim, muvera"), "{}", stdout(&o));
    let docs = tmp("mv-docs.jsonl");
    let mut seed = 3u64;
    let sets: Vec<Vec<[f32; 3]>> = (0..60)
        .map(|i| (0..1 + i % 4).map(|_| [lcg(&mut seed), lcg(&mut seed), lcg(&mut seed) + 0.6]).collect())
        .collect();
    let lines: Vec<String> =
        sets.iter().enumerate().map(|(i, s)| serde_json::json!({"id": i, "vector": s}).to_string()).collect();
    std::fs::write(&docs, lines.join("\n")).expect("write");
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "m", "--jsonl", p(&docs)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let queries = tmp("mv-queries.jsonl");
    std::fs::write(
        &queries,
        format!("{}\n{}\n", serde_json::json!(sets[7]), serde_json::json!({"vector": sets[20]})),
    )
    .expect("write");
    let search = || {
        let o = quarry(&[
            "search",
            "--dir",
            p(&dir),
            "--collection",
            "m",
            "--vector-file",
            p(&queries),
            "-k",
            "1",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["hits"][0]["id"].clone())
            .collect::<Vec<_>>()
    };
    // Seals every 20 points: the answers come from sealed segments (MUVERA + MaxSim).
    assert!(
        std::fs::read_dir(dir.join("collections").join("m").join("segments")).map(|d| d.count()).unwrap_or(0)
            > 0,
        "sealed segments"
    );
    assert_eq!(search(), vec![serde_json::json!(7), serde_json::json!(20)], "a set is its own best match");
    std::fs::write(&docs, "{\"id\": 100, \"vector\": [1, 2, 3]}\n").expect("write");
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "m", "--jsonl", p(&docs)]);
    assert!(!o.status.success() && stderr(&o).contains("array of vectors"), "{}", stderr(&o));
    if quarry_text::locate::model_dir("all-MiniLM-L6-v2").is_err() {
        quarry_testkit::skip::missing("the model all-MiniLM-L6-v2", "run scripts/fetch_model.sh");
        return;
    }
    let texts = tmp("mv-texts.txt");
    std::fs::write(&texts, "yeast makes bread rise\nthe cat sat on the mat\n").expect("write");
    let out = tmp("mv-tokens.npy");
    let o = quarry(&["embed", "--texts", p(&texts), "--tokens", "--out", p(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tokens = quarry_eval::io::npy::read_npy(&out).expect("tokens");
    let offsets = quarry_eval::io::npy::read_npy(&out.with_extension("offsets.npy")).expect("offsets");
    assert_eq!((tokens.cols(), offsets.data.len()), (384, 3));
    let o = quarry(&[
        "collection",
        "create",
        "--dir",
        p(&dir),
        "--name",
        "t",
        "--text",
        "--model",
        "all-MiniLM-L6-v2",
        "--multivector",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let corpus = std::fs::read_to_string(mini_beir().join("corpus.jsonl")).expect("corpus");
    let lines: Vec<String> = corpus
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            serde_json::json!({"id": i, "text": v["text"]}).to_string()
        })
        .collect();
    std::fs::write(&docs, lines.join("\n")).expect("write");
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "t", "--jsonl", p(&docs)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quarry(&[
        "search",
        "--dir",
        p(&dir),
        "--collection",
        "t",
        "--text",
        "commercial yeast bread",
        "--mode",
        "dense",
        "-k",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let res: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(res["hits"][0]["id"], 5, "{res}");
}

#[test]
fn collection_list_info_and_delete() {
    let dir = tmp("coll-lid");
    let _ = std::fs::remove_dir_all(&dir);
    let o =
        quarry(&["collection", "create", "--dir", p(&dir), "--name", "c", "--dim", "4", "--metric", "l2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let jsonl = tmp("coll-lid.jsonl");
    points_jsonl(&jsonl, 0, 25);
    let o = quarry(&["ingest", "--dir", p(&dir), "--collection", "c", "--jsonl", p(&jsonl)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quarry(&["collection", "list", "--dir", p(&dir), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_rows(&o);
    assert_eq!(rows.len(), 1, "{}", stdout(&o));
    assert_eq!((rows[0]["name"].as_str(), rows[0]["points"].as_u64()), (Some("c"), Some(25)));
    let o = quarry(&["collection", "list", "--dir", p(&dir)]);
    assert!(stdout(&o).starts_with("c\t25 points"), "{}", stdout(&o));
    let o = quarry(&["collection", "info", "--dir", p(&dir), "--collection", "c"]);
    let info: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("info is JSON");
    assert_eq!(info["schema"]["vectors"][0]["dim"], 4, "{info}");
    assert!(info["disk_bytes"].as_u64().is_some_and(|b| b > 0), "{info}");
    // Search from a collection: 10 hits by default, the query ids of a JSONL query file kept.
    let q = tmp("coll-lid-q.jsonl");
    std::fs::write(
        &q,
        "{\"id\": \"q-a\", \"vector\": [0.5, 0.5, 0.5, 0.5]}\n{\"id\": 7, \"vector\": [1, 0, 0, 0]}\n",
    )
    .expect("write");
    let o = quarry(&["search", "--dir", p(&dir), "--collection", "c", "--vector-file", p(&q), "--json"]);
    let rows = json_rows(&o);
    assert_eq!(rows.len(), 2, "{}{}", stdout(&o), stderr(&o));
    assert_eq!((rows[0]["query"].as_str(), rows[1]["query"].as_u64()), (Some("q-a"), Some(7)));
    assert_eq!(rows[0]["hits"].as_array().map(Vec::len), Some(10));
    let o = quarry(&["search", "--dir", p(&dir), "--collection", "c", "--vector-file", p(&q)]);
    assert!(stdout(&o).starts_with("query q-a: "), "{}", stdout(&o));
    let o = quarry(&["collection", "info", "--dir", p(&dir), "--collection", "nope"]);
    assert!(!o.status.success() && stderr(&o).contains("nope"), "{}", stderr(&o));
    let o = quarry(&["collection", "delete", "--dir", p(&dir), "--collection", "c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quarry(&["collection", "list", "--dir", p(&dir), "--json"]);
    assert!(json_rows(&o).is_empty(), "{}", stdout(&o));
    let o = quarry(&["collection", "delete", "--dir", p(&dir), "--collection", "c"]);
    assert!(!o.status.success() && stderr(&o).contains("no collection"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `quarry ingest --files` over a folder of mixed documents (made here) into a new BM25 text
/// collection: a summary naming the corrupt PDF; re-ingesting skips unchanged files; `quarry
/// context` answers as numbered text and as a Ragnarök request within its budget, also for a
/// file of questions.
#[test]
fn ingest_files_then_context() {
    let root = tmp("rag");
    let _ = std::fs::remove_dir_all(&root);
    let docs = root.join("docs");
    quarry_testkit::docs::mixed_folder(&docs, 24).expect("fixture");
    std::fs::write(docs.join("part0/broken.pdf"), b"%PDF-1.5\ngarbage").expect("write");
    let db = root.join("db");
    let ingest = |extra: &[&str]| {
        let mut args =
            vec!["ingest", "--dir", p(&db), "--collection", "kb", "--files", p(&docs), "--model", "none"];
        args.extend_from_slice(extra);
        quarry(&args)
    };
    let o = ingest(&["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("report JSON");
    let files = report["files"].as_array().expect("files");
    assert_eq!(files.len(), 25);
    let failed: Vec<&serde_json::Value> = files.iter().filter(|f| f["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["path"].as_str().is_some_and(|s| s.ends_with("broken.pdf")), "{report}");
    assert!(stderr(&o).contains("24 added") && stderr(&o).contains("1 failed"), "{}", stderr(&o));
    let o = ingest(&[]);
    assert!(stderr(&o).contains("24 unchanged"), "{}", stderr(&o));

    let o = quarry(&[
        "context",
        "--dir",
        p(&db),
        "--collection",
        "kb",
        "--query",
        "Document topic-7",
        "--budget-tokens",
        "80",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("Question: Document topic-7\n\n[1] Topic 7 ("), "{text}");
    let o = quarry(&[
        "context",
        "--dir",
        p(&db),
        "--collection",
        "kb",
        "--query",
        "Document topic-7",
        "--qid",
        "q7",
        "--json",
    ]);
    let req: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("request JSON");
    assert_eq!(req["query"], serde_json::json!({"text": "Document topic-7", "qid": "q7"}));
    let c = req["candidates"].as_array().expect("candidates");
    assert!(!c.is_empty() && c.iter().all(|c| c["docid"].is_string() && c["doc"]["segment"].is_string()));
    let questions = root.join("questions.tsv");
    std::fs::write(&questions, "a\tDocument topic-3\nb\tDocument topic-11\n").expect("write");
    let o = quarry(&["context", "--dir", p(&db), "--collection", "kb", "--queries", p(&questions), "--json"]);
    let rows = json_rows(&o);
    assert_eq!(rows.len(), 2, "{}", stderr(&o));
    assert_eq!((rows[0]["query"]["qid"].as_str(), rows[1]["query"]["qid"].as_str()), (Some("a"), Some("b")));
    // The requests read back as a run (evaluated by their candidates' scores).
    let requests = root.join("requests.jsonl");
    std::fs::write(&requests, stdout(&o)).expect("write");
    let qrels = root.join("qrels.tsv");
    let first = |r: &serde_json::Value| r["candidates"][0]["docid"].as_str().unwrap_or_default().to_string();
    std::fs::write(
        &qrels,
        format!("query-id\tcorpus-id\tscore\na\t{}\t1\nb\t{}\t1\n", first(&rows[0]), first(&rows[1])),
    )
    .expect("write");
    let o = quarry(&["eval", "--qrels", p(&qrels), "--run", p(&requests), "-m", "recip_rank", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("eval JSON");
    assert_eq!(e["num_q"], 2, "{e}");
    assert!(e["recip_rank"].as_f64().is_some_and(|r| r > 0.0), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}
