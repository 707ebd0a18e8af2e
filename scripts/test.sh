#!/usr/bin/env bash
# Every test of the workspace. Release mode: the kernel-heavy tests are much faster so, and
# the kernel library itself is built (and cached) once either way. The rig's tests need root.
# The preload library's tests run twice: with the host's offloads (the default) and without
# (LKL_HIJACK_OFFLOAD=0, inherited by every program the tests start).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The lints of Cargo.toml's [workspace.lints] (every unsafe block says why it is sound) and
# clippy's defaults, as errors.
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
echo "== the preload library's tests again, offloads off (LKL_HIJACK_OFFLOAD=0)"
LKL_HIJACK_OFFLOAD=0 cargo test --release -p lkl-hijack
