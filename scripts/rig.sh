#!/usr/bin/env bash
# The lkl-rig test rig by hand (needs root, iproute2, /dev/net/tun). Builds the rig's binaries
# (release, so the forwarder runs at full speed) and runs `lkl-rig` with the arguments:
#   scripts/rig.sh venet up [--name NAME] [--delay-ms 20 --loss 2 ...]   container + peer + forwarder
#   scripts/rig.sh veth up [--name NAME]
#   scripts/rig.sh venet down [--name NAME]      (or veth down)
#   scripts/rig.sh list | cleanup
#   scripts/rig.sh forwarder --a-dev venet0 --a-netns lklc-rig --b-dev tun0 --b-netns lklp-rig --delay-ms 20 --loss 2
#   scripts/rig.sh --help
# Then e.g.: ip netns exec lklp-rig ping 10.213.X.2   (`up` prints the namespaces and addresses)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p lkl-rig --bins
exec "${CARGO_TARGET_DIR:-$root/target}/release/lkl-rig" "$@"
