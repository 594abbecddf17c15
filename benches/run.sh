#!/bin/sh
# Runs the content benchmarks in one go: installs Debian's nginx when missing (the peer), then
# `cargo bench --bench content` (release build). Needs ~12 GiB free under $WSUS_EDGE_BENCH_DIR
# (default: the system temp dir). WSUS_EDGE_BENCH_QUICK=1 for a small dry run.
set -eu
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx (Debian package) for the peer comparison..." >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx openssl coreutils
fi
exec cargo bench --bench content "$@"
