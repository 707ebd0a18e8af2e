#!/usr/bin/env bash
# Installs the Debian packages that building and testing lkl-hijack needs. Idempotent and
# quiet: it says something only when it installs.
set -euo pipefail

packages=(
    # kernel source and what kbuild runs for our config
    linux-source-6.12 xz-utils patch make gcc binutils bc flex bison
    # bindgen (lkl-sys) needs libclang
    clang libclang-dev
    # tests, demos and benchmarks
    iproute2 iputils-ping python3 curl iperf3
    # scripts/bench.sh draws its goodput-vs-loss plot with gnuplot
    gnuplot-nox
    # real programs the hijack tests run under the preload (tests/*_on_lkl.rs), their clients
    # (wrk, redis-benchmark in redis-tools) and gccgo for the Go server built at test time
    nginx redis-server redis-tools wrk gccgo-12
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "setup.sh: installing ${missing[*]}"
# Refresh the package lists only when the wanted packages are unknown to them.
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
