#!/usr/bin/env python3
"""Fails when a crate in Cargo.lock (as resolved for this platform) declares a rust-version
newer than ours: the `rust-version` in Cargo.toml must be the real minimum.
Uses `cargo metadata`, which reports every resolved package's own `rust_version`."""
import json
import subprocess
import sys


def ver(s):
    v = [int(x) for x in s.split(".")]
    return tuple(v + [0] * (3 - len(v)))


meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--locked", "--format-version", "1", "--filter-platform",
         subprocess.check_output(["rustc", "-vV"], text=True).split("host: ")[1].split()[0]]
    )
)
ours = next(p for p in meta["packages"] if p["id"] in meta["workspace_members"])
need = max(
    ((ver(p["rust_version"]), p["name"], p["version"])
     for p in meta["packages"] if p.get("rust_version") and p["id"] != ours["id"]),
)
print(f"rust-version: ours {ours['rust_version']}, the lock file needs {'.'.join(map(str, need[0]))} ({need[1]} {need[2]})")
if ver(ours["rust_version"]) < need[0]:
    sys.exit("rust-version in Cargo.toml is below what the locked dependencies need")
