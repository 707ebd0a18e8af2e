#!/usr/bin/env bash
# Builds v2ray-lkl: v2ray 4.34 (Debian's golang-v2ray-core-dev sources) compiled with gccgo-12,
# whose runtime (libgo) makes its socket calls through glibc, so liblkl_hijack.so can put its
# listeners on LKL. A gc-built Go binary makes raw system calls and cannot be moved.
#
# The main package is our own, tests/programs/v2ray/main.go: it builds the core.Config from
# flags and links only
#   core, app/dispatcher, app/proxyman (+ inbound, outbound), app/log,
#   proxy/dokodemo (inbound), proxy/freedom (outbound), proxy/vmess/inbound (AEAD users),
#   transport/internet/tcp.
# Left out, because gccgo-12 (Go 1.18 level, no generics) cannot compile them:
#   - the JSON config loader (main/jsonem, infra/conf): it imports every transport, so it fails
#     with the two below. v2ray's own main (main/distro/all) fails the same way.
#   - transport/internet/quic, and app/dns (DNS over QUIC): quic-go 0.29 selects its TLS fork by
#     Go version and wants github.com/marten-seemann/qtls-go1-18, which Debian does not package
#     (only qtls-go1-19, for golang-go 1.19): `cannot find package
#     "github.com/marten-seemann/qtls-go1-18"`. Past that, quic-go/internal/utils imports
#     golang.org/x/exp/constraints, which is generic: `constraints.go:13:9: error: invalid
#     character 0x7e in input file` (the `~int` of a type set).
#   - transport/internet/kcp: its XOR routine is Go assembly (xor_amd64.s), which gccgo hands to
#     the C preprocessor and GNU as: `xor_amd64.s:1:10: fatal error: textflag.h: No such file`.
#   - transport/internet/headers/http: it reaches net/http.readRequest with //go:linkname, which
#     gccgo turns into a broken symbol difference: `Error: invalid operands (*UND* and *UND*
#     sections) for '/'` from the assembler.
# (The rest of main/distro/all — tls, websocket, domainsocket, http/2 transport, socks, http,
# shadowsocks, trojan, vless, vmess outbound, router, stats, commander — does compile with
# gccgo-12 but is not linked: nothing here uses it. app/router would also need
# golang-starlark-dev, which is therefore not installed.)
#
# Installs what it needs with apt (gccgo-12 brings the go-12 tool; golang-go is not needed).
# Debian's gc-built v2ray, the reference the tests compare against, comes from
# scripts/fetch-gc-v2ray.sh.
# Builds in GOPATH mode (GO111MODULE=off, GOPATH=/usr/share/gocode) into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack/v2ray-<hash>/v2ray-lkl
# where <hash> covers this script, main.go and the installed Go packages' versions; a later run
# with the same inputs only prints the path. The binary's path is the last line on stdout;
# progress goes to stderr.
set -euo pipefail

me=build-v2ray.sh
die() {
    echo "$me: $*" >&2
    exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/lib/packages.sh"
script="$root/scripts/build-v2ray.sh"
src="$root/tests/programs/v2ray/main.go"
[ -f "$src" ] || die "missing $src"

packages=(
    gccgo-12                                 # the compiler and its go tool, go-12
    golang-v2ray-core-dev                    # v2ray's sources and (through Depends) most of theirs
    golang-github-seiflotfy-cuckoofilter-dev # VMess AEAD's replay filter (common/antireplay) ...
    golang-github-dgryski-go-metro-dev       # ... and cuckoofilter needs this; neither is a Depends
)

install_packages "$me" "${packages[@]}"
command -v go-12 >/dev/null || die "go-12 (from gccgo-12) is not on PATH"

# Every Go source package (golang-*) and the compiler with its runtime library.
versions=$(dpkg-query -W -f='${db:Status-Abbrev}${Package} ${Version}\n' \
    'golang-*' 'gccgo-12' 'libgo[0-9]*' 2>/dev/null | grep '^ii' || true)
hash=$( { cat "$script" "$src"; printf '%s\n' "$versions"; } | sha256sum | cut -c1-16)

cache="${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack"
out="$cache/v2ray-$hash"
bin="$out/v2ray-lkl"
if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi

mkdir -p "$cache"
# Concurrent runs (parallel tests) build once: the second waits and then finds the binary.
exec 9>"$cache/v2ray.lock"
flock 9
if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi

echo "$me: building v2ray-lkl with gccgo-12 into $out (about 15 s with a cold Go build cache)" >&2
work=$(mktemp -d "$cache/v2ray-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# GOPATH mode: the program sits in a GOPATH of its own, the Debian sources in the second entry.
mkdir -p "$work/gopath/src/v2ray-lkl"
cp "$src" "$work/gopath/src/v2ray-lkl/main.go"
log="$work/build.log"
started=$(date +%s)
if ! (
    cd "$work/gopath/src/v2ray-lkl" &&
        env -u GOROOT -u GOFLAGS -u GOBIN \
            GO111MODULE=off GOPATH="$work/gopath:/usr/share/gocode" \
            GOCACHE="$cache/go-build-gccgo" GCCGO=gccgo-12 \
            go-12 build -compiler gccgo -o "$work/v2ray-lkl" .
) >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    what=$(grep -o 'cannot find package "[^"]*"' "$log" | head -n1 || true)
    die "go-12 build of tests/programs/v2ray failed${what:+: $what}"
fi
"$work/v2ray-lkl" -h >/dev/null 2>&1 ||
    [ $? -eq 2 ] || die "the built v2ray-lkl does not run"
mkdir -p "$work/out"
mv "$work/v2ray-lkl" "$work/out/v2ray-lkl"
mv "$log" "$work/out/build.log"
# The entry appears whole or not at all.
mv -T "$work/out" "$out" || die "cannot move the build into $out"
# Earlier builds (other inputs) are dead weight now.
for old in "$cache"/v2ray-????????????????; do
    [ "$old" = "$out" ] || rm -rf "$old"
done
echo "$me: built in $(($(date +%s) - started)) s" >&2
echo "$bin"
