//! Skipping a test for lack of something outside the repository (the team's shared data, the
//! embedding model, root for a tmpfs mount, a system tool), visibly.
//!
//! A user's clone has none of `../shared/data`, so such tests skip there. CI must never skip by
//! accident: with `QUARRY_REQUIRE_DATA=1` (set by `.ci/run`) [`missing`] fails the test instead,
//! naming what is missing. Every skip is also appended to the file named by `QUARRY_SKIP_LOG`
//! (set by `scripts/test.sh`), whose summary line makes skips visible in every log; cargo's test
//! harness would otherwise hide the message of a test that returns early.

use std::io::Write;

/// The environment variable that turns skips into failures.
pub const REQUIRE_VAR: &str = "QUARRY_REQUIRE_DATA";

/// The environment variable naming the file every skip is appended to.
pub const LOG_VAR: &str = "QUARRY_SKIP_LOG";

/// True when `QUARRY_REQUIRE_DATA` is set to anything but empty or `0`.
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Records that the calling test cannot run because `what` is missing (`why` says how to get it).
/// Returns normally so the test can return early, unless `QUARRY_REQUIRE_DATA=1`, where it panics
/// with a message naming what is missing.
#[track_caller]
pub fn missing(what: &str, why: &str) {
    let at = std::panic::Location::caller();
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if required() {
        panic!("{REQUIRE_VAR}=1 but {what} is missing ({why}); test {test} at {at}");
    }
    let line = format!("{test}\t{what}\t{why}");
    eprintln!("SKIPPED {line}");
    if let Some(path) = std::env::var_os(LOG_VAR) {
        // One short append per skip: lines from parallel test processes do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}
