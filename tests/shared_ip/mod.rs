//! LKL on the container's own host-stack address, one address for both stacks, and the
//! counters of the host stack that shares it. On top of `common`.
#![allow(dead_code)]

use lkl_rig::{Netns, Topology};

use crate::common::{lkl_env, set_env};

/// `lkl_env` with LKL on the container's host-stack IPv4 address: one address for both stacks.
pub fn shared_ip_env(topo: &dyn Topology) -> Vec<(String, String)> {
    let mut env = lkl_env(topo);
    set_env(
        &mut env,
        "LKL_HIJACK_NET_IP",
        &topo.addrs().host_v4.to_string(),
    );
    env
}

/// A counter of the host stack of `ns` from /proc/net/snmp, e.g. ("Tcp", "OutRsts").
pub fn snmp_counter(ns: &Netns, group: &str, name: &str) -> u64 {
    let snmp = ns
        .run("cat", &["/proc/net/snmp"])
        .expect("read /proc/net/snmp");
    let prefix = format!("{group}:");
    let mut rows = snmp.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (
        rows.next().expect("header row"),
        rows.next().expect("value row"),
    );
    let i = names
        .split_whitespace()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no {group} {name} in /proc/net/snmp"));
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// The host stack's TCP `OutRsts` counter of `ns` (RST segments the container kernel sent).
pub fn host_tcp_out_rsts(ns: &Netns) -> u64 {
    snmp_counter(ns, "Tcp", "OutRsts")
}
