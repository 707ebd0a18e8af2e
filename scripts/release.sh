#!/usr/bin/env bash
# Builds the tarball a VPS user installs without compiling anything there, and prints its path:
#   dist/lkl-hijack-VERSION-x86_64-linux-gnu.tar.gz
# holding lkl-run and liblkl_hijack.so (stripped, each one's debug info in NAME.debug beside it,
# named by .gnu_debuglink), install.sh, INSTALL and the systemd example.
#
# Both binaries load with glibc 2.17 (CentOS 7) or newer: cargo-zigbuild links them against
# zig's stubs of glibc 2.17, so they reference no symbol version above it (std reaches newer
# functions through weak, unversioned references it checks at run time). The two tools come
# from crates.io and PyPI, pinned, installed once into the cache beside the kernel library's.
# The kernel library itself is the same cache entry as for a plain `cargo build`: kbuild runs
# with gcc and an environment of its own, whatever the Rust target.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh
scripts/setup.sh
# The ziglang venv; setup.sh brings the rest (binutils' objcopy and strip, util-linux's flock).
install_packages release.sh python3-venv

zig_version=0.15.2      # PyPI: ziglang
zigbuild_version=0.24.1 # crates.io: cargo-zigbuild
target=x86_64-unknown-linux-gnu
glibc=2.17

cache="${LKL_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack}"
tools="$cache/tools"
zig_venv="$tools/ziglang-$zig_version"
zigbuild="$tools/cargo-zigbuild-$zigbuild_version/bin/cargo-zigbuild"
mkdir -p "$tools"

started=$(date +%s)
# One installer at a time; a half-made venv (an interrupted pip) fails the version check and is
# made again.
exec 9>"$tools/.lock"
flock 9
if [ "$("$zig_venv/bin/python3" -m ziglang version 2>/dev/null)" != "$zig_version" ]; then
    echo "release.sh: installing zig $zig_version (PyPI: ziglang) into $zig_venv" >&2
    rm -rf "$zig_venv"
    /usr/bin/python3 -m venv "$zig_venv"
    "$zig_venv/bin/python3" -m pip install --quiet "ziglang==$zig_version" ||
        { echo "release.sh: cannot install ziglang==$zig_version from PyPI (see above)" >&2; exit 1; }
fi
if [ ! -x "$zigbuild" ]; then
    echo "release.sh: installing cargo-zigbuild $zigbuild_version (crates.io) into $tools" >&2
    cargo install --quiet --locked --version "$zigbuild_version" \
        --root "$tools/cargo-zigbuild-$zigbuild_version" cargo-zigbuild ||
        { echo "release.sh: cannot install cargo-zigbuild $zigbuild_version with cargo (see above)" >&2; exit 1; }
fi
exec 9>&-

# cargo-zigbuild runs `python3 -m ziglang` with this python; its and zig's own caches go with
# the tools instead of ~/.cache/cargo-zigbuild and ~/.cache/zig.
export CARGO_ZIGBUILD_PYTHON_PATH="$zig_venv/bin/python3"
export CARGO_ZIGBUILD_CACHE_DIR="$tools/cargo-zigbuild-cache"
export ZIG_GLOBAL_CACHE_DIR="$tools/zig-cache"
"$zigbuild" zigbuild --quiet --profile dist --target "$target.$glibc" -p lkl-hijack -p lkl-run

pkgid="$(cargo pkgid -p lkl-hijack)"
version="${pkgid##*[#@]}"
name="lkl-hijack-$version-x86_64-linux-gnu"
built="${CARGO_TARGET_DIR:-$root/target}/$target/dist"
tarball="dist/$name.tar.gz"
partial="dist/.$name.tar.gz.$$"
stage="$(mktemp -d)"
trap 'rm -rf "$stage" "$partial"' EXIT
mkdir -p "$stage/$name/examples/systemd"

for bin in lkl-run liblkl_hijack.so; do
    objcopy --only-keep-debug "$built/$bin" "$stage/$name/$bin.debug"
    strip --strip-all -o "$stage/$name/$bin" "$built/$bin"
    # gdb looks for the named file beside the binary (and checks its CRC).
    (cd "$stage/$name" && objcopy --add-gnu-debuglink="$bin.debug" "$bin")
    chmod 644 "$stage/$name/$bin.debug"
done
chmod 755 "$stage/$name/lkl-run"
chmod 644 "$stage/$name/liblkl_hijack.so"
install -m 755 scripts/release/install.sh "$stage/$name/install.sh"
sed "s/@VERSION@/$version/g" scripts/release/INSTALL > "$stage/$name/INSTALL"
install -m 644 examples/systemd/*.service "$stage/$name/examples/systemd/"

mkdir -p dist
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -czf "$partial" "$name"
# A rename: a concurrent reader sees the old tarball or the new one, never half of one.
mv "$partial" "$tarball"
echo "release.sh: $tarball ready in $(( $(date +%s) - started )) s" >&2
echo "$root/$tarball"
