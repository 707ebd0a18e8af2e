#!/usr/bin/env bash
# Kernel benchmark: boot time, getpid round trip, loopback TCP, RSS growth.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release -p lkl --example bench_boot
