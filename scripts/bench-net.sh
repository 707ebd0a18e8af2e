#!/usr/bin/env bash
# Network benchmark: single-stream TCP throughput, LKL against the host kernel, on
# the veth and the venet topology, with CPU seconds per GB. Needs root and iperf3.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v iperf3 >/dev/null || { echo "bench-net.sh: iperf3 is not installed" >&2; exit 1; }
# The forwarder of the same profile, found one directory above the example.
cargo build --release -p lkl-rig --bins
exec cargo run --release -p lkl --example bench_net
