#!/usr/bin/env bash
# Every test of the workspace. Release mode: the kernel-heavy tests are much faster so, and
# the kernel library itself is built (and cached) once either way. The rig's tests need root.
# The preload library's tests run twice: with the host's offloads (the default) and without
# (LKL_HIJACK_OFFLOAD=0, inherited by every program the tests start). Then the programs users
# run (python, nginx, redis, a gccgo server, iperf3, lkl-run, v2ray) once more as on each host kernel
# users have (LKL_TEST_KERNEL_PROFILE: a seccomp filter refusing what that kernel lacks); with
# LKL_SOAK=1, all of the library's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The lints of Cargo.toml's [workspace.lints] (every unsafe block says why it is sound) and
# clippy's defaults, as errors.
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
echo "== the preload library's tests again, offloads off (LKL_HIJACK_OFFLOAD=0)"
LKL_HIJACK_OFFLOAD=0 cargo test --release -p lkl-hijack
programs=(python_http_server_on_lkl nginx_on_lkl redis_on_lkl gccgo_http_server_on_lkl
    iperf3_on_lkl lkl_run_launcher_checks_then_runs_programs old_host_kernels_keep_programs_working
    v2ray_on_lkl_serves_users_configs)
selection=()
if [ "${LKL_SOAK:-}" != 1 ]; then
    for t in "${programs[@]}"; do selection+=(--test "$t"); done
fi
for profile in 3.10 4.18 5.4 5.10; do
    echo "== as on host kernel $profile (LKL_TEST_KERNEL_PROFILE=$profile)"
    LKL_TEST_KERNEL_PROFILE=$profile cargo test --release -p lkl-hijack "${selection[@]}"
done
