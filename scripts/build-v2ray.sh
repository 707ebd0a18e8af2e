#!/usr/bin/env bash
# Builds v2ray 4.34's own main (v2ray.com/core/main: the JSON loader, every proxy and
# transport of main/distro/all, the usual command line) with gccgo-12, from Debian's
# golang-v2ray-core-dev sources, unmodified on disk. gccgo's runtime (libgo) makes its socket
# calls through glibc, so liblkl_hijack.so can put the listeners on LKL; a gc-built Go binary
# makes raw system calls and cannot be moved.
#
# Five packages do not build with gccgo-12 (Go 1.18 level, no generics) as they are:
#   - transport/internet/quic, and app/dns (DNS over QUIC): quic-go 0.29 wants
#     github.com/marten-seemann/qtls-go1-18, which Debian does not package (only qtls-go1-19,
#     for golang-go 1.19), and past that golang.org/x/exp/constraints, which is generic
#     (`constraints.go:13:9: error: invalid character 0x7e in input file`, the `~int`).
#   - transport/internet/kcp: its XOR routine is Go assembly (xor_amd64.s), which gccgo hands
#     to the C preprocessor and GNU as: `fatal error: textflag.h: No such file`.
#   - transport/internet/headers/http: it reaches net/http.readRequest with //go:linkname,
#     which gccgo turns into a symbol difference the assembler rejects (`Error: invalid
#     operands (*UND* and *UND* sections) for '/'`).
#   - go.starlark.net/starlark (app/router's scripted conditions): it binds gc's
#     runtime.stringHash with //go:linkname, which libgo does not have (undefined reference
#     at the link).
# And one that builds but misbehaves:
#   - transport/internet/udp: its hub reads datagrams with net.UDPConn.ReadMsgUDP, which in
#     libgo 12 (as syscall.Recvmsg under it) gives the sender as [::]:0, so every UDP inbound
#     (mKCP, Shadowsocks and dokodemo-door over UDP) answers nobody.
# For each, v2ray/overlay/<import path>/ holds our replacement files and UPSTREAM, the list of
# upstream files kept; the package is put together from both in a GOPATH entry of its own
# that comes before /usr/share/gocode. kcp gets its XOR in plain Go and headers/http its
# request parsing through the exported http.ReadRequest (both then work), starlark a
# runtime.stringHash of its own, the UDP hub recvmsg(2) made directly; quic and DNS over
# QUIC refuse with one line naming the missing feature, so every other configuration loads.
#
# Installs what it needs with apt (gccgo-12 brings the go-12 tool; golang-go is not needed).
# Debian's gc-built v2ray, the reference the tests compare against, comes from
# scripts/fetch-gc-v2ray.sh.
# Builds in GOPATH mode (GO111MODULE=off) into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack/v2ray-<hash>/v2ray
# where <hash> covers this script, the overlay and the installed Go packages' versions; a
# later run with the same inputs only prints the path. The binary's path is the last line on
# stdout; progress goes to stderr.
set -euo pipefail

me=build-v2ray.sh
die() {
    echo "$me: $*" >&2
    exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/lib/packages.sh"
script="$root/scripts/build-v2ray.sh"
overlay="$root/v2ray/overlay"
upstream=/usr/share/gocode/src
[ -d "$overlay" ] || die "missing $overlay"

packages=(
    gccgo-12                                 # the compiler and its go tool, go-12
    golang-v2ray-core-dev                    # v2ray's sources and (through Depends) most of theirs
    golang-github-seiflotfy-cuckoofilter-dev # VMess AEAD's replay filter (common/antireplay) ...
    golang-github-dgryski-go-metro-dev       # ... and cuckoofilter needs this; neither is a Depends
    golang-starlark-dev                      # app/router's scripted conditions; not a Depends
)

install_packages "$me" "${packages[@]}"
command -v go-12 >/dev/null || die "go-12 (from gccgo-12) is not on PATH"

# Every Go source package (golang-*) and the compiler with its runtime library.
versions=$(dpkg-query -W -f='${db:Status-Abbrev}${Package} ${Version}\n' \
    'golang-*' 'gccgo-12' 'libgo[0-9]*' 2>/dev/null | grep '^ii' || true)
# The overlay's files by name and content, so a rename changes the hash too.
overlay_sum=$(cd "$overlay" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
hash=$( { cat "$script"; printf '%s\n' "$overlay_sum" "$versions"; } | sha256sum | cut -c1-16)

cache="${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack"
out="$cache/v2ray-$hash"
bin="$out/v2ray"
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

echo "$me: building v2ray with gccgo-12 into $out (about 3 min with a cold Go build cache)" >&2
work=$(mktemp -d "$cache/v2ray-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The first GOPATH entry: the trees the overlay touches (v2ray.com, go.starlark.net) as
# symlinks (GOPATH mode takes a directory from the first entry that has it, so the parents of
# a replaced package must be complete there too), in which each replaced package is put
# together from the upstream files its UPSTREAM lists and our files.
mkdir -p "$work/gopath/src"
for top in "$overlay"/*/; do
    top=$(basename "$top")
    cp -as "$upstream/$top" "$work/gopath/src/$top"
done
while IFS= read -r list; do
    pkg=$(dirname "${list#"$overlay"/}")
    dest="$work/gopath/src/$pkg"
    rm -rf "$dest"
    mkdir -p "$dest"
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        [ -f "$upstream/$pkg/$f" ] ||
            die "v2ray/overlay/$pkg/UPSTREAM lists $f, which $upstream/$pkg does not have"
        cp "$upstream/$pkg/$f" "$dest/"
    done <"$list"
    cp "$(dirname "$list")"/*.go "$dest/"
done < <(find "$overlay" -name UPSTREAM | LC_ALL=C sort)
# libgo linked in and the program not position-independent: libgo.so's and a PIE's
# relocations are applied to every page of their data at start (49 MiB resident before the
# first connection, 26 MiB so).
gccgoflags="-static-libgo -no-pie"
log="$work/build.log"
started=$(date +%s)
if ! (
    cd "$work" &&
        env -u GOROOT -u GOFLAGS -u GOBIN \
            GO111MODULE=off GOPATH="$work/gopath:/usr/share/gocode" \
            GOCACHE="$cache/go-build-gccgo" GCCGO=gccgo-12 \
            go-12 build -compiler gccgo -gccgoflags "$gccgoflags" -o "$work/v2ray" v2ray.com/core/main
) >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    what=$(grep -o 'cannot find package "[^"]*"' "$log" | head -n1 || true)
    die "go-12 build of v2ray.com/core/main failed${what:+: $what}"
fi
"$work/v2ray" -version >/dev/null || die "the built v2ray does not run"
mkdir -p "$work/out"
# Stripped: libgo records the creator's stack of threads it starts (mcommoninit), and
# libbacktrace then reads the symbols and DWARF of the program and of every shared object
# into memory it keeps (18 MiB for v2ray's own; glibc's from /usr/lib/debug where libc6-dbg
# is installed, which examples/systemd/v2ray-on-lkl.service hides). Without them only
# function names in panics are lost; the unstripped binary stays beside it, with no
# debuglink that would lead libbacktrace to it.
mv "$work/v2ray" "$work/out/v2ray.unstripped"
strip --strip-all --remove-section=.go_export -o "$work/out/v2ray" "$work/out/v2ray.unstripped"
"$work/out/v2ray" -version >/dev/null || die "the stripped v2ray does not run"
mv "$log" "$work/out/build.log"
# The entry appears whole or not at all.
mv -T "$work/out" "$out" || die "cannot move the build into $out"
# Earlier builds (other inputs) are dead weight now.
for old in "$cache"/v2ray-????????????????; do
    [ "$old" = "$out" ] || rm -rf "$old"
done
echo "$me: built in $(($(date +%s) - started)) s" >&2
echo "$bin"
