#!/usr/bin/env bash
# The main job, end to end: an unmodified Python web server runs with its sockets on LKL
# (LD_PRELOAD=liblkl_hijack.so) inside an emulated OpenVZ container (netns with a tun venet0),
# and a client on the other side of the emulated host node downloads a file from it.
# Needs root (namespaces, tun); everything it creates is removed at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --quiet --release -p lkl-hijack -p lkl-rig --lib --bins
target="${CARGO_TARGET_DIR:-$root/target}/release"

name="demo$$"
work="$(mktemp -d)"
cleanup() {
    set +e
    if [ -n "${server:-}" ]; then
        kill "$server" 2>/dev/null
        wait "$server" 2>/dev/null
    fi
    "$target/lkl-rig" venet down --name "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== an emulated container: netns lklc-$name with venet0, a peer behind a forwarder"
"$target/lkl-rig" venet up --name "$name" > "$work/rig"
cat "$work/rig"
lkl_v4="$(sed -n 's/.*lkl_v4=\([0-9.]*\).*/\1/p' "$work/rig")"

mkdir "$work/www"
head -c $((20 << 20)) /dev/urandom > "$work/www/file.bin"
port=8080
echo
echo "== python3 serving $work/www on $lkl_v4:$port, its sockets on LKL"
(cd "$work/www" && exec ip netns exec "lklc-$name" env \
    LD_PRELOAD="$target/liblkl_hijack.so" \
    LKL_HIJACK_NET_IFTYPE=packet LKL_HIJACK_NET_IFPARAMS=venet0 LKL_HIJACK_NET_IP="$lkl_v4" \
    LKL_HIJACK_DEBUG=1 \
    python3 -c '
import http.server, socketserver, sys
class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
Server((sys.argv[1], int(sys.argv[2])), http.server.SimpleHTTPRequestHandler).serve_forever()
' "$lkl_v4" "$port" 2> >(grep -v "INFO \]" >&2)) &
server=$!

for _ in $(seq 100); do
    ip netns exec "lklp-$name" curl -s -o /dev/null "http://$lkl_v4:$port/" && break
    sleep 0.1
done
echo
echo "== the peer downloads 20 MiB"
ip netns exec "lklp-$name" curl -s -o "$work/got.bin" -w "%{size_download} bytes at %{speed_download} bytes/s\n" \
    "http://$lkl_v4:$port/file.bin"
if cmp -s "$work/www/file.bin" "$work/got.bin"; then echo "content matches"; else echo "CONTENT DIFFERS"; exit 1; fi
echo
echo "== the container's host stack has no listener on port $port (the server lives in LKL):"
ip netns exec "lklc-$name" ss -ltn
