#!/usr/bin/env bash
# Prints the path of Debian's gc-built v2ray (package v2ray, the same 4.34 sources as
# golang-v2ray-core-dev), the reference that tests compare the gccgo build against.
#
# The package is not installed: on a systemd host its postinst enables and starts v2ray.service
# with the sample /etc/v2ray/config.json, a VMess server on port 10086 whose user id is printed
# in the package — an open proxy. Only the binary is taken from the .deb (apt-get download), into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack/v2ray-gc-<version>/v2ray
# A later run with the same candidate version only prints the path. Progress goes to stderr.
set -euo pipefail

me=fetch-gc-v2ray.sh
die() {
    echo "$me: $*" >&2
    exit 1
}

candidate() {
    apt-cache show --no-all-versions v2ray 2>/dev/null | sed -n 's/^Version: //p' | head -n1
}
version=$(candidate)
if [ -z "$version" ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >&2 || true
    version=$(candidate)
fi
[ -n "$version" ] || die "apt knows no package v2ray (Debian 12 main has it)"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack"
out="$cache/v2ray-gc-${version//[:\/]/_}"
if [ -x "$out/v2ray" ]; then
    echo "$out/v2ray"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/v2ray-gc.lock"
flock 9
if [ -x "$out/v2ray" ]; then
    echo "$out/v2ray"
    exit 0
fi
echo "$me: fetching Debian's v2ray $version into $out" >&2
work=$(mktemp -d "$cache/v2ray-gc.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt's sandbox user may not write into a root-owned cache; the download then runs as root,
# with a notice on stderr.
(cd "$work" && apt-get download -q "v2ray=$version") >&2 ||
    die "cannot download package v2ray $version with apt-get (see above)"
dpkg-deb -x "$work"/v2ray_*.deb "$work/root" || die "cannot unpack the v2ray .deb"
[ -x "$work/root/usr/bin/v2ray" ] || die "the v2ray .deb has no usr/bin/v2ray"
mkdir "$work/out"
mv "$work/root/usr/bin/v2ray" "$work/out/v2ray"
"$work/out/v2ray" -version >/dev/null || die "Debian's v2ray does not run"
mv -T "$work/out" "$out" || die "cannot move the binary into $out"
echo "$out/v2ray"
