#!/usr/bin/env bash
# Every test of the workspace. Release mode: the kernel-heavy tests are much faster so, and
# the kernel library itself is built (and cached) once either way. The rig's tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --release --workspace
