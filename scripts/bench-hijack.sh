#!/usr/bin/env bash
# Hijack benchmark: wake-up latency of a thread sleeping in poll/epoll on a host pipe and a TCP
# socket when data reaches the socket, host kernel against the preloaded library (socket in
# LKL), in the same run; medians of ROUNDS runs (default 3). Needs root (a venet rig provides
# the interface the preload is configured with).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --quiet --release -p lkl-hijack -p lkl-rig --lib --bins --example wakeup_latency
target="${CARGO_TARGET_DIR:-$root/target}/release"
rounds="${ROUNDS:-3}"
name="bench$$"
host="$(mktemp)"; lkl="$(mktemp)"
trap 'rm -f "$host" "$lkl"; "$target/lkl-rig" venet down --name "$name" >/dev/null 2>&1 || true' EXIT
rig="$("$target/lkl-rig" venet up --name "$name")"
lkl_v4="$(sed -n 's/.*lkl_v4=\([0-9.]*\).*/\1/p' <<<"$rig")"
in_ns=(ip netns exec "lklc-$name")
preload=(env LD_PRELOAD="$target/liblkl_hijack.so" LKL_HIJACK_NET_IFTYPE=packet
    LKL_HIJACK_NET_IFPARAMS=venet0 LKL_HIJACK_NET_IP="$lkl_v4")

# median KEY FILE: the median of KEY=value over the lines of FILE
median() { grep -oE "(^| )$1=[0-9.]*" "$2" | cut -d= -f2 | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

for _ in $(seq "$rounds"); do
    "${in_ns[@]}" "$target/examples/wakeup_latency" >>"$host"
    "${in_ns[@]}" "${preload[@]}" "$target/examples/wakeup_latency" >>"$lkl"
done
echo "wake-up latency, poll/epoll on a host pipe + a TCP socket, median of $rounds runs x 2000 wakes:"
for kind in poll epoll; do
    h="$(median "${kind}_median_us" "$host")"; l="$(median "${kind}_median_us" "$lkl")"
    hp="$(median "${kind}_p99_us" "$host")"; lp="$(median "${kind}_p99_us" "$lkl")"
    printf '  %-6s host %6.1f us (p99 %6.1f)   lkl %6.1f us (p99 %6.1f)   lkl/host %.2f\n' \
        "$kind" "$h" "$hp" "$l" "$lp" "$(echo "$l / $h" | bc -l)"
done
