#!/usr/bin/env bash
# Makes a minimal Debian root of SUITE (e.g. bullseye, bookworm) with mmdebstrap from Debian's
# mirror, as a VPS's container would have it, and prints its path. The release tests install
# the release tarball into such roots and serve from them. Roots are cached in
# ~/.cache/lkl-hijack/roots/SUITE-HASH, HASH covering this script (and so the package list);
# an entry appears by one rename when complete. Callers must not change a root (lay an
# overlay over it).
set -euo pipefail
me=debian-root.sh
[ $# -eq 1 ] || { echo "usage: $me SUITE" >&2; exit 2; }
suite="$1"
[[ "$suite" =~ ^[a-z]+$ ]] || { echo "$me: bad suite name $suite (e.g. bullseye)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$me: run it as root (mmdebstrap's root mode)" >&2; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
install_packages "$me" mmdebstrap debian-archive-keyring

mirror=http://deb.debian.org/debian
# python3: the server the tests run; iptables: lkl-run's firewall tool there (the host's
# nft is not in the root).
packages=python3,iptables

cache="${LKL_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack}/roots"
hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
key="$suite-$hash"
mkdir -p "$cache"
if [ ! -d "$cache/$key" ]; then
    exec 9>"$cache/$key.lock"
    flock 9
    # Another run may have made it while this one waited for the lock.
    if [ ! -d "$cache/$key" ]; then
        echo "$me: making a $suite root in $cache/$key (first time for this script, ~2 min)" >&2
        rm -rf "$cache/$key.tmp"
        started=$(date +%s)
        if ! mmdebstrap --quiet --mode=root --variant=minbase --include="$packages" \
            "$suite" "$cache/$key.tmp" "deb $mirror $suite main" >"$cache/$key.log" 2>&1; then
            tail -n 30 "$cache/$key.log" >&2
            echo "$me: mmdebstrap of $suite from $mirror failed (log: $cache/$key.log)" >&2
            exit 1
        fi
        mv "$cache/$key.tmp" "$cache/$key"
        rm -f "$cache/$key.log"
        echo "$me: $suite root ready in $(( $(date +%s) - started )) s" >&2
    fi
    exec 9>&-
fi
echo "$cache/$key"
