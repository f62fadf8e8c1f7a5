#!/usr/bin/env python3
"""Checks that the Python extension (crates/quarry-py, its own cargo workspace) resolves every
dependency it shares with the main workspace to the same features. Where they differ, cargo
builds that dependency — and everything above it, up to tokenizers, tantivy and candle — a second
time for `pip install` in scripts/test.sh (minutes on 2 cores). The fix is to ask for the missing
features in crates/quarry-py/Cargo.toml's build-alignment block (or, for a feature only the
extension's own dependencies turn on, in the main workspace).

Usage: scripts/check_feature_alignment.py   (exit 1 and a list when a shared dependency differs)
"""
import json, subprocess, sys

# Platform-only crates never built on Linux.
IGNORED = {"js-sys", "winapi", "windows-sys", "wasm-bindgen", "portable-atomic"}


def features(*manifest):
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", *manifest],
                         check=True, capture_output=True, text=True).stdout
    return {n["id"].split("#")[-1]: set(n["features"]) for n in json.loads(out)["resolve"]["nodes"]}


def main():
    ws = features()
    py = features("--manifest-path", "crates/quarry-py/Cargo.toml")
    bad = []
    for key in sorted(py):
        name = key.split("@")[0]
        if key in ws and ws[key] != py[key] and name not in IGNORED and not name.startswith("quarry"):
            bad.append(f"  {key}: main only {sorted(ws[key] - py[key])}, extension only {sorted(py[key] - ws[key])}")
    if bad:
        print("shared dependencies resolved with different features (the extension rebuilds them):")
        print("\n".join(bad))
        sys.exit(1)
    print(f"feature alignment: {sum(k in ws for k in py)} shared dependencies, all with the same features")


if __name__ == "__main__":
    main()
