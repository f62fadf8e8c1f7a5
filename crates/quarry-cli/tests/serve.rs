//! `quarry serve` as a process: acknowledged upserts survive a kill -9 in the middle of a write
//! load, a SIGTERM drains queued `wait=false` writes before exiting 0, and HTTPS with a
//! self-signed certificate (when the openssl and curl commands exist).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quarry-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Starts `quarry serve` on a free port; returns the child and its address.
fn start(data: &Path, extra: &[&str]) -> (Child, String) {
    let mut args = vec!["--data", data.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    start_args(&args)
}

/// One HTTP/1.1 request on a fresh connection: the status and the body as JSON (or a string).
fn http(addr: &str, method: &str, path: &str, body: &Value) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let b = serde_json::to_vec(body).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())?;
    s.write_all(&b)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
    Ok((status, serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))))
}

fn create(addr: &str) {
    let (s, v) = http(addr, "PUT", "/collections/c", &json!({"vectors": {"size": 4, "distance": "Dot"}}))
        .expect("create");
    assert_eq!(s, 200, "{v}");
}

fn present(addr: &str, ids: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let (s, v) = http(addr, "POST", "/collections/c/points", &json!({"ids": chunk})).expect("retrieve");
        assert_eq!(s, 200, "{v}");
        out.extend(v["result"].as_array().expect("records").iter().filter_map(|r| r["id"].as_u64()));
    }
    out.sort_unstable();
    out
}

/// Starts `quarry serve` with `args` (after `serve`) on a free port.
fn start_args(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("quarry serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address line");
    let addr = line.rsplit("://").next().expect("address").trim().to_string();
    (child, addr)
}

/// Object storage behind `quarry serve`: a writer node (kill -9 in the middle of writes), a
/// read-only node with an empty cache that serves every acknowledged write, refuses writes and
/// follows a replacement writer; a second writer is refused while the lease is live.
#[test]
fn writer_and_read_only_nodes_share_an_object_store() {
    let store = temp("objects");
    std::fs::create_dir_all(&store).expect("store");
    let url = format!("file://{}", store.display());
    let (w, r) = (temp("node-w"), temp("node-r"));
    let (mut writer, addr) =
        start_args(&["--data", &url, "--cache-dir", w.to_str().expect("utf-8"), "--lease-ms", "1500"]);
    create(&addr);
    // A second writer is refused while the first holds the lease.
    let o = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args([
            "serve",
            "--data",
            &url,
            "--cache-dir",
            temp("node-x").to_str().expect("utf-8"),
            "--port",
            "0",
        ])
        .output()
        .expect("second writer");
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("lease"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (acked, stop, addr) = (acked.clone(), stop.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let ids: Vec<u64> = (0..5).map(|j| t * 1_000_000 + i * 5 + j).collect();
                    let pts: Vec<Value> =
                        ids.iter().map(|&id| json!({"id": id, "vector": [1, id % 97, 2, 3]})).collect();
                    match http(&addr, "PUT", "/collections/c/points?wait=true", &json!({"points": pts})) {
                        Ok((200, _)) => acked.lock().expect("lock").extend(ids),
                        Ok((s, v)) => panic!("upsert answered {s}: {v}"),
                        Err(_) => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    writer.kill().expect("kill -9");
    let _ = writer.wait();
    stop.store(true, Ordering::SeqCst);
    for t in workers {
        t.join().expect("worker");
    }
    let mut acked = acked.lock().expect("lock").clone();
    acked.sort_unstable();
    assert!(acked.len() >= 20, "the load ran: {} acknowledged", acked.len());
    // The writer's node is gone: a read-only node with an empty cache has every acknowledged write.
    let (mut reader, raddr) = start_args(&[
        "--data",
        &url,
        "--cache-dir",
        r.to_str().expect("utf-8"),
        "--read-only",
        "--follow-ms",
        "200",
    ]);
    assert_eq!(present(&raddr, &acked), acked, "every acknowledged point is served");
    let (s, v) = http(
        &raddr,
        "PUT",
        "/collections/c/points?wait=true",
        &json!({"points": [{"id": 1, "vector": [1, 1, 1, 1]}]}),
    )
    .expect("write to reader");
    assert!((400..500).contains(&s), "a read-only node refuses writes: {s} {v}");
    // Once the lease expires a replacement writer (new, empty folder) takes over from the store.
    std::thread::sleep(Duration::from_millis(1700));
    let w2 = temp("node-w2");
    let (mut writer2, addr2) = start_args(&["--data", &url, "--cache-dir", w2.to_str().expect("utf-8")]);
    assert_eq!(present(&addr2, &acked), acked, "the replacement writer starts from the store");
    let (s, v) = http(
        &addr2,
        "PUT",
        "/collections/c/points?wait=true",
        &json!({"points": [{"id": 7_777_777, "vector": [1, 2, 3, 4]}]}),
    )
    .expect("write");
    assert_eq!(s, 200, "{v}");
    // The reader follows within a few refresh intervals.
    let mut seen = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if present(&raddr, &[7_777_777]) == vec![7_777_777] {
            seen = true;
            break;
        }
    }
    assert!(seen, "the read-only node followed the new write");
    let _ = writer2.kill();
    let _ = reader.kill();
    let _ = writer2.wait();
    let _ = reader.wait();
    for d in [store, w, r, w2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn acknowledged_upserts_survive_kill_9() {
    let dir = temp("kill9");
    let (mut child, addr) = start(&dir, &[]);
    create(&addr);
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let (acked, stop, addr) = (acked.clone(), stop.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let ids: Vec<u64> = (0..5).map(|j| w * 1_000_000 + i * 5 + j).collect();
                    let pts: Vec<Value> = ids
                        .iter()
                        .map(|&id| json!({"id": id, "vector": [1, id % 97, 2, 3], "payload": {"w": w}}))
                        .collect();
                    match http(&addr, "PUT", "/collections/c/points?wait=true", &json!({"points": pts})) {
                        Ok((200, _)) => acked.lock().expect("lock").extend(ids),
                        Ok((s, v)) => panic!("upsert answered {s}: {v}"),
                        Err(_) => break, // the server is gone
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().expect("kill -9");
    let _ = child.wait();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    let mut acked = acked.lock().expect("lock").clone();
    acked.sort_unstable();
    assert!(acked.len() >= 100, "the load ran: {} acknowledged", acked.len());
    let (mut child, addr) = start(&dir, &[]);
    assert_eq!(present(&addr, &acked), acked, "every acknowledged point is back");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn sigterm_applies_queued_writes_then_exits_cleanly() {
    let dir = temp("term");
    let (child, addr) = start(&dir, &[]);
    create(&addr);
    let ids: Vec<u64> = (0..200).collect();
    for chunk in ids.chunks(10) {
        let pts: Vec<Value> = chunk.iter().map(|&id| json!({"id": id, "vector": [1, id, 0, 1]})).collect();
        let (s, v) =
            http(&addr, "PUT", "/collections/c/points?wait=false", &json!({"points": pts})).expect("upsert");
        assert_eq!((s, v["result"]["status"].clone()), (200, json!("acknowledged")));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let out = child.wait_with_output().expect("exit");
    assert!(out.status.success(), "graceful shutdown exits 0: {:?}", out.status);
    let (mut child, addr) = start(&dir, &[]);
    assert_eq!(present(&addr, &ids), ids, "queued writes were applied before exit");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn https_with_a_self_signed_certificate() {
    let have = |c: &str| {
        Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    };
    if !have("openssl") || !have("curl") {
        quarry_testkit::skip::missing("openssl and curl", "install Debian's openssl and curl");
        return;
    }
    let dir = temp("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    let (mut child, addr) = start(
        &dir.join("db"),
        &[
            "--tls-cert",
            cert.to_str().expect("p"),
            "--tls-key",
            key.to_str().expect("p"),
            "--api-key",
            "tls-test-key-1",
        ],
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "--cacert",
            cert.to_str().expect("p"),
            "-H",
            "api-key: tls-test-key-1",
            &format!("https://{addr}/collections"),
        ])
        .output()
        .expect("curl");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(body["status"], json!("ok"), "{}", String::from_utf8_lossy(&out.stdout));
    // Plain HTTP to the TLS port is refused, not answered.
    assert!(http(&addr, "GET", "/collections", &Value::Null).map_or(true, |(s, _)| s != 200));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the `quarry` CLI with `args`.
fn quarry(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quarry runs");
    let mut input = child.stdin.take().expect("stdin");
    // A command refused before it reads its input (a held folder) closes the pipe first.
    if let Err(e) = input.write_all(stdin.unwrap_or("").as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing quarry's stdin: {e}");
    }
    drop(input);
    child.wait_with_output().expect("quarry exits")
}

/// The lost-write scenario of a second writer: with `quarry serve --data D` running, `quarry
/// ingest --dir D` used to print `acked 50` and exit 0, and after one more upsert through the
/// server and a normal stop the collection held 2 points. Now every second opener of the folder
/// is refused with an error naming the folder and the server's PID, acknowledges nothing, and
/// every write the server acknowledged is there after the stop.
#[test]
fn a_second_writer_is_refused_and_nothing_acknowledged_is_lost() {
    let dir = temp("second-writer");
    let d = dir.to_str().expect("utf-8");
    let (mut child, addr) = start(&dir, &[]);
    let pid = child.id().to_string();
    create(&addr);
    let points: Vec<Value> = (0..3).map(|i| json!({"id": i, "vector": [1.0, i as f64, 0.0, 0.0]})).collect();
    let (s, v) =
        http(&addr, "PUT", "/collections/c/points?wait=true", &json!({"points": points})).expect("upsert");
    assert_eq!(s, 200, "{v}");

    // Another process writing: refused, naming the folder and the holder.
    let lines: String =
        (5..55).map(|i| format!("{}\n", json!({"id": i, "vector": [0.0, 1.0, i as f64, 0.0]}))).collect();
    let o = quarry(&["ingest", "--dir", d, "--collection", "c", "--jsonl", "-"], Some(&lines));
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "a second writer must fail: {out} {err}");
    assert!(!out.contains("acked"), "nothing may be acknowledged: {out}");
    assert!(err.contains("in use") && err.contains(d) && err.contains(&format!("PID {pid}")), "{err}");
    // A second server on the same folder does not start either.
    let o = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["serve", "--data", d, "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("second server runs");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("in use"), "{}", String::from_utf8_lossy(&o.stderr));
    // Read commands say why they cannot open it, and change nothing.
    let o = quarry(&["count", "--dir", d, "--collection", "c"], None);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("in use"));

    // One more write through the server, then a normal stop.
    let (s, v) = http(
        &addr,
        "PUT",
        "/collections/c/points?wait=true",
        &json!({"points": [{"id": 100, "vector": [0.0, 0.0, 1.0, 0.0]}]}),
    )
    .expect("upsert");
    assert_eq!(s, 200, "{v}");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    assert!(child.wait().expect("server exits").success());

    // Every acknowledged write is there; the refused ones are not.
    let o = quarry(&["count", "--dir", d, "--collection", "c"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "4");
    for id in ["0", "1", "2", "100"] {
        let o = quarry(&["get", "--dir", d, "--collection", "c", "--id", id], None);
        assert!(o.status.success(), "point {id}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = quarry(&["get", "--dir", d, "--collection", "c", "--id", "5"], None);
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Read commands never create a missing folder, and a failed `collection create` leaves no
/// database folder behind.
#[test]
fn read_commands_and_failed_creates_leave_no_folder() {
    let dir = temp("no-folder");
    let d = dir.to_str().expect("utf-8");
    for args in [
        &["count", "--dir", d, "--collection", "c"][..],
        &["get", "--dir", d, "--collection", "c", "--id", "1"],
        &["ingest", "--dir", d, "--collection", "c", "--jsonl", "-"],
        &["collection", "create", "--dir", d, "--name", "c", "--model", "/nonexistent/model-folder"],
        &["collection", "create", "--dir", d, "--name", "c", "--dim", "4", "--index", "no-such-index"],
    ] {
        let o = quarry(args, None);
        assert!(!o.status.success(), "{args:?} must fail");
        assert!(!dir.exists(), "{args:?} left {} behind", dir.display());
    }
    let o = quarry(&["count", "--dir", d, "--collection", "c"], None);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no Quarry database"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A closed standard output (`quarry get … | head -c 1`) ends quietly with status 0.
#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = temp("pipe");
    let d = dir.to_str().expect("utf-8");
    let o =
        quarry(&["collection", "create", "--dir", d, "--name", "c", "--dim", "2000", "--metric", "l2"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Vec<f64> = (0..2000).map(|i| i as f64).collect();
    let line = format!("{}\n", json!({"id": 1, "vector": v}));
    let o = quarry(&["ingest", "--dir", d, "--collection", "c", "--jsonl", "-"], Some(&line));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The reader goes away at once: the writer meets a closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["get", "--dir", d, "--collection", "c", "--id", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quarry get");
    drop(child.stdout.take());
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    let status = child.wait().expect("exit");
    assert!(status.success(), "status {status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
