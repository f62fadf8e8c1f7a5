//! Memory as the OS counts it: a benchmark's searching process runs in its own memory cgroup,
//! capped at `--memory-limit-mb`, so its page cache (posting lists and rows read with `pread` or
//! `mmap`) is charged to it exactly as a peer that loads its index into process memory pays for
//! it. The cgroup's peak usage (anonymous memory plus page cache) is reported in every row.
//!
//! Both cgroup versions are supported, whichever the machine mounts: v2 (`memory.max`,
//! `memory.peak`, `memory.events`) under `/sys/fs/cgroup`, or v1 (`memory.limit_in_bytes`,
//! `memory.max_usage_in_bytes`, `memory.oom_control`) under `/sys/fs/cgroup/memory`. Creating a
//! cgroup needs root; without it the benchmark says so and refuses to run uncapped.
//!
//! The page cache is dropped before the capped process starts: pages already cached by the
//! process that built the index are charged to that process's cgroup and would otherwise be free
//! to the capped one.
//!
//! `quarry bench capped --memory-limit-mb N -- CMD…` runs any command (a peer's search process)
//! under the same cap and adds the same fields to the JSON rows it prints; `bench ann` and `bench
//! open` re-run themselves under it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable set in a capped child (so it does not cap itself again).
pub const CHILD_ENV: &str = "QUARRY_BENCH_CAPPED";

/// Which cgroup interface the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A memory cgroup made for one capped run; removed when dropped.
#[derive(Debug)]
pub struct MemoryCap {
    dir: PathBuf,
    version: Version,
    limit_bytes: u64,
}

/// What a capped run used.
#[derive(Debug, Clone, Copy)]
pub struct CapReport {
    /// The cap, in bytes.
    pub limit_bytes: u64,
    /// The cgroup's peak charge (anonymous memory and page cache), in bytes.
    pub peak_bytes: Option<u64>,
    /// Whether the kernel killed a process of the cgroup for lack of memory.
    pub oom_killed: bool,
}

impl CapReport {
    /// The fields every row of a capped run gets.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("memory_limit_bytes".into(), self.limit_bytes.into());
        m.insert("cgroup_peak_bytes".into(), self.peak_bytes.map_or(serde_json::Value::Null, Into::into));
        m.insert("oom_killed".into(), self.oom_killed.into());
        m
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl MemoryCap {
    /// Makes a memory cgroup capped at `limit_mb` MiB (swap capped at 0 where the kernel allows).
    pub fn create(limit_mb: u64) -> Result<MemoryCap> {
        anyhow::ensure!(limit_mb > 0, "--memory-limit-mb must be at least 1");
        if !is_root() {
            bail!(
                "--memory-limit-mb runs the search in a memory cgroup, which needs root: run as root \
                 (or drop the flag: memory is then not capped)"
            );
        }
        let v2_root = Path::new("/sys/fs/cgroup");
        let v1_root = Path::new("/sys/fs/cgroup/memory");
        let (version, root) = if std::fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
        {
            (Version::V2, v2_root)
        } else if v1_root.join("memory.limit_in_bytes").exists() {
            (Version::V1, v1_root)
        } else {
            bail!("--memory-limit-mb: this machine mounts no memory cgroup (neither v2 /sys/fs/cgroup with the memory controller nor v1 /sys/fs/cgroup/memory)");
        };
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = root.join(format!("quarry-bench-{}-{stamp}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating the cgroup {}", dir.display()))?;
        let cap = MemoryCap { dir, version, limit_bytes: limit_mb << 20 };
        let (limit_file, swap_file) = match version {
            Version::V2 => ("memory.max", "memory.swap.max"),
            Version::V1 => ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
        };
        std::fs::write(cap.dir.join(limit_file), cap.limit_bytes.to_string())
            .with_context(|| format!("writing {limit_file} of {}", cap.dir.display()))?;
        // No swapping around the cap (v1's memsw limit is memory + swap; absent without swap
        // accounting, which is fine: then there is nothing to swap to either way).
        let swap = if version == Version::V2 { 0 } else { cap.limit_bytes };
        let _ = std::fs::write(cap.dir.join(swap_file), swap.to_string());
        Ok(cap)
    }

    /// A command that joins this cgroup, then runs `program args…` (through `sh`, so the
    /// program's very first allocation is already charged).
    pub fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("echo $$ > \"$0\" && exec \"$@\"")
            .arg(self.dir.join("cgroup.procs"))
            .arg(program)
            .args(args)
            .env(CHILD_ENV, "1");
        c
    }

    /// Kills every process in the cgroup (SIGKILL): a stopped run's children too.
    pub fn kill_all(&self) {
        let pids = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill only sends a signal to a process of this run's cgroup.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// The peak charge so far and whether an OOM kill happened.
    pub fn report(&self) -> CapReport {
        let peak = match self.version {
            Version::V2 => read_u64(&self.dir.join("memory.peak")),
            Version::V1 => read_u64(&self.dir.join("memory.max_usage_in_bytes")),
        };
        let events = match self.version {
            Version::V2 => std::fs::read_to_string(self.dir.join("memory.events")),
            Version::V1 => std::fs::read_to_string(self.dir.join("memory.oom_control")),
        }
        .unwrap_or_default();
        let oom_killed = events
            .lines()
            .filter_map(|l| l.split_once(' '))
            .any(|(k, v)| k == "oom_kill" && v.trim().parse::<u64>().is_ok_and(|n| n > 0));
        CapReport { limit_bytes: self.limit_bytes, peak_bytes: peak, oom_killed }
    }
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        // The cgroup is empty once its processes exit; its page cache moves to the parent.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("warning: could not remove the cgroup {}", self.dir.display());
    }
}

/// Drops the OS page cache (`sync`, then 3 into /proc/sys/vm/drop_caches; root).
pub fn drop_page_cache() -> Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    anyhow::ensure!(status.success(), "sync exited with {status}");
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("writing 3 to /proc/sys/vm/drop_caches (needs root and a writable /proc/sys)")
}

/// Runs `program args…` under a fresh cap of `limit_mb` MiB after dropping the page cache. Its
/// stderr passes through; every stdout line that is a JSON object gets the cap's fields (the
/// peak of the whole run) and is printed when the run ends, other lines as they are. A run the
/// kernel killed for lack of memory prints one row `{"oom_killed": true, …, "command": …}` and
/// is not an error (it is the result at that cap); any other failure is. With `timeout`, a run
/// still going after that long (thrashing under the cap rather than killed) is killed and
/// prints one row `{"timed_out": true, …}`, also the result at that cap.
pub fn run_capped(
    limit_mb: u64,
    program: &Path,
    args: &[String],
    timeout: Option<std::time::Duration>,
) -> Result<()> {
    let cap = MemoryCap::create(limit_mb)?;
    drop_page_cache()?;
    let what = || format!("running {} under a {limit_mb} MiB memory cap", program.display());
    let mut child = cap
        .command(program, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(what)?;
    let mut stdout = child.stdout.take().context("the child's stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let start = std::time::Instant::now();
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait().with_context(what)? {
            break (s, false);
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            cap.kill_all();
            let _ = child.kill();
            break (child.wait().with_context(what)?, true);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap_or_default();
    let report = cap.report();
    let mut rows = 0;
    for line in String::from_utf8_lossy(&stdout).lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(mut row)) => {
                row.extend(report.fields());
                println!("{}", serde_json::Value::Object(row));
                rows += 1;
            }
            _ => println!("{line}"),
        }
    }
    if timed_out {
        let mut row = report.fields();
        row.insert("timed_out".into(), true.into());
        row.insert("timeout_seconds".into(), timeout.map_or(0.0, |t| t.as_secs_f64()).into());
        row.insert("command".into(), format!("{} {}", program.display(), args.join(" ")).into());
        println!("{}", serde_json::Value::Object(row));
        eprintln!(
            "stopped after {:.0} s under a cap of {limit_mb} MiB (peak {:.1} MB); {rows} rows printed before",
            start.elapsed().as_secs_f64(),
            report.peak_bytes.unwrap_or(0) as f64 / 1e6
        );
        return Ok(());
    }
    if !status.success() {
        if report.oom_killed {
            let mut row = report.fields();
            row.insert("command".into(), format!("{} {}", program.display(), args.join(" ")).into());
            println!("{}", serde_json::Value::Object(row));
            eprintln!(
                "killed for lack of memory at a cap of {limit_mb} MiB (peak {:.1} MB); {rows} rows printed before",
                report.peak_bytes.unwrap_or(0) as f64 / 1e6
            );
            return Ok(());
        }
        bail!("{} exited with {} under a {limit_mb} MiB memory cap", program.display(), status);
    }
    eprintln!(
        "memory cap {limit_mb} MiB: cgroup peak {:.1} MB (page cache included)",
        report.peak_bytes.unwrap_or(0) as f64 / 1e6
    );
    Ok(())
}

/// Re-runs this very command (same arguments) under a cap of `limit_mb` MiB, unless this process
/// is already the capped child; returns whether it did (the caller then returns).
pub fn rerun_capped(limit_mb: Option<u64>) -> Result<bool> {
    let Some(mb) = limit_mb else { return Ok(false) };
    if std::env::var_os(CHILD_ENV).is_some() {
        return Ok(false);
    }
    let exe = std::env::current_exe().context("finding this program's path")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    run_capped(mb, &exe, &args, None)?;
    Ok(true)
}

/// Whether this process is a capped child (its memory is capped; it must not load more than
/// the search needs, e.g. no exact scorer over the raw base).
pub fn in_capped_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Arguments of `quarry bench capped`.
#[derive(clap::Args)]
pub struct CappedArgs {
    /// The cap in MiB, page cache included.
    #[arg(long)]
    memory_limit_mb: u64,
    /// Stop the command after this many seconds (a run thrashing under the cap); a row
    /// `{"timed_out": true}` is printed.
    #[arg(long)]
    timeout_s: Option<u64>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Runs `quarry bench capped`.
pub fn run(a: CappedArgs) -> Result<()> {
    let (program, args) = a.command.split_first().context("a command to run after --")?;
    let program = which(program)?;
    run_capped(a.memory_limit_mb, &program, args, a.timeout_s.map(std::time::Duration::from_secs))
}

/// `name` as a path: as given when it has a `/`, else searched in PATH.
fn which(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found in PATH"))
}
