#!/usr/bin/env bash
# Installs lkl-run and liblkl_hijack.so from this directory into /usr/local, where lkl-run
# looks for the library; `install.sh --uninstall` removes those two files again, and nothing
# else, provided they are still the ones this package installs. Run as root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix=/usr/local
# packaged file, installed path, mode
files=(
    "lkl-run bin/lkl-run 755"
    "liblkl_hijack.so lib/liblkl_hijack.so 644"
)

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

uninstall() {
    local entry from to kept=0
    for entry in "${files[@]}"; do
        read -r from to _ <<<"$entry"
        if [ ! -e "$prefix/$to" ]; then
            continue
        fi
        if cmp -s "$here/$from" "$prefix/$to"; then
            rm -f "$prefix/$to"
            echo "removed $prefix/$to"
        else
            echo "install.sh: $prefix/$to differs from this package's $from: left in place" \
                "(remove it by hand, or run the install.sh of the release that installed it)" >&2
            kept=1
        fi
    done
    return "$kept"
}

install_files() {
    [ "$(uname -m)" = x86_64 ] || fail "this release is for x86_64, this machine is $(uname -m)"
    local glibc
    glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null)" ||
        fail "no glibc here (getconf GNU_LIBC_VERSION failed): lkl-run needs glibc 2.17 or newer"
    [[ "$glibc" =~ ^glibc\ ([0-9]+)\.([0-9]+) ]] || fail "cannot read a glibc version in \"$glibc\""
    local major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
    if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 17 ]; }; then
        fail "$glibc is too old: lkl-run needs glibc 2.17 or newer"
    fi
    local entry from to mode
    for entry in "${files[@]}"; do
        read -r from to mode <<<"$entry"
        [ -f "$here/$from" ] || fail "$here/$from is missing: unpack the whole tarball again"
        # install unlinks the old file before writing the new one, so a server still running
        # keeps the library it mapped.
        install -D -m "$mode" "$here/$from" "$prefix/$to"
        echo "installed $prefix/$to"
    done
    # The loader's verdict on this machine, now rather than at the server's first start.
    "$prefix/bin/lkl-run" --help >/dev/null ||
        fail "$prefix/bin/lkl-run does not run on this machine (see above)"
    echo "next: lkl-run --check -- PROGRAM, then lkl-run --ports PORT -- PROGRAM [ARGS...]"
}

[ "$(id -u)" -eq 0 ] || fail "run it as root: it writes to $prefix"
case "${1:-}" in
    "") install_files ;;
    --uninstall) uninstall ;;
    *) fail "unknown argument $1 (usage: install.sh [--uninstall])" ;;
esac
