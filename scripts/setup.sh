#!/usr/bin/env bash
# Installs the Debian packages that building and testing lkl-hijack needs. Idempotent and
# quiet: it says something only when it installs.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

packages=(
    # kernel source and what kbuild runs for our config (headers_install runs rsync)
    linux-source-6.12 xz-utils patch make gcc libc6-dev binutils bc flex bison rsync
    # bindgen (lkl-sys) needs libclang
    clang libclang-dev
    # the rig and the tests: namespaces, links, qdiscs (ip, tc, ss), the firewall's two tools,
    # clients and checks
    iproute2 iputils-ping nftables iptables python3 curl iperf3 util-linux coreutils
    # the release: scripts/release.sh's zig toolchain venv; the Debian roots the release is
    # tested in (scripts/debian-root.sh)
    python3-venv mmdebstrap debian-archive-keyring
    # scripts/bench.sh draws its goodput-vs-loss plot with gnuplot
    gnuplot-nox
    # real programs the hijack tests run under the preload (tests/*_on_lkl.rs), their clients
    # (wrk, redis-benchmark in redis-tools) and gccgo for the Go server built at test time
    nginx redis-server redis-tools wrk gccgo-12
    # the v2ray tests: their TLS configs get a certificate made at test time
    openssl
)
install_packages setup.sh "${packages[@]}"
