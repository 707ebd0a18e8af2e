#!/usr/bin/env bash
# The whole benchmark: throughput, CPU per GB, goodput under loss, request/response, connection
# rate, memory and boot time for LKL (real servers under the preload) and the host kernel in one
# run, medians of RUNS runs (default 3); then nginx's pre-fork scaling, 1 worker against 2, on
# both (examples/bench_prefork.rs; PREFORK=0 leaves it out). Prints markdown tables and
# writes it, every single run and the goodput-vs-loss plot (PNG) into BENCH_OUT (default
# target/bench/). Needs root; sets up and tears down its own rigs (network namespaces), changes
# nothing outside them. Takes about 8 minutes with RUNS=3 (after the first build).
# Other settings: SWEEP_RUNS SECS LOSSY_SECS RR_SECS CONNS CONNECT_THREADS (examples/bench_suite.rs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --quiet --release -p lkl-hijack -p lkl-rig -p lkl-run --lib --bins \
    --example bench_suite --example bench_rr --example bench_prefork
target="${CARGO_TARGET_DIR:-$root/target}/release"
export BENCH_OUT="${BENCH_OUT:-${CARGO_TARGET_DIR:-$root/target}/bench}"
mkdir -p "$BENCH_OUT"
# The suite tears its rigs down itself, also when a measurement fails; should it be killed,
# this removes what it left (rigs whose creator is gone, and nothing else).
trap '"$target/lkl-rig" cleanup >/dev/null 2>&1 || true' EXIT
"$target/examples/bench_suite"
if [ "${PREFORK:-1}" != 0 ]; then
    "$target/examples/bench_prefork"
fi
