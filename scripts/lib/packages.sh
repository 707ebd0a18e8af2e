# Sourced by the scripts that install Debian packages. Defines:
#   install_packages ME PACKAGE...   installs those of PACKAGE... that are not installed yet,
#                                    quietly; says on stderr what it installs; exits naming
#                                    the package when one cannot be installed.
# The package lists are refreshed before every install: a machine image's lists are as old as
# the image, and a package of the security suite (linux-source-6.12) or a newer version of a
# known one is missing or no longer downloadable until `apt-get update`.

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

install_packages() {
    local me="$1" p
    shift
    local missing=()
    for p in "$@"; do
        package_installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    # One install at a time (tests run in parallel may ask together): apt refuses a second
    # one while the first holds its locks.
    local lock
    exec {lock}>/tmp/lkl-hijack-apt.lock
    flock "$lock"
    missing=()
    for p in "$@"; do
        package_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        exec {lock}>&-
        return 0
    fi
    echo "$me: installing ${missing[*]}" >&2
    # apt's own output is shown only when it fails.
    local log
    log=$(mktemp)
    if ! "${sudo[@]}" apt-get update -qq >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "$me: apt-get update failed (see above)" >&2
        exit 1
    fi
    if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "$me: cannot install ${missing[*]} with apt-get (see above)" >&2
        exit 1
    fi
    rm -f "$log"
    for p in "${missing[@]}"; do
        package_installed "$p" ||
            { echo "$me: package $p is still not installed" >&2; exit 1; }
    done
    exec {lock}>&-
}
