//! The host firewall rules of lkl-hijack instances, as the tests see them: nftables tables and
//! iptables chains in a namespace, the commands print mode shows, a guard that deletes a table
//! a test applied, and a pid no process has (for stale rules).
#![allow(dead_code)]

use std::process::Stdio;

use lkl_ports::firewall::{CHAIN_PREFIX, TABLE_PREFIX};
use lkl_rig::Netns;

/// `nft ARGS` in `ns`; Err carries the status and stderr.
pub fn nft(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let out = ns
        .command("nft")
        .expect("open the namespace")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run nft");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "nft {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Every nftables table in `ns`, as "FAMILY NAME".
pub fn nft_tables(ns: &Netns) -> Vec<String> {
    nft(ns, &["list", "tables"])
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table "))
        .map(str::to_string)
        .collect()
}

/// The tables in `ns` that belong to some lkl-hijack instance.
pub fn lklhijack_tables(ns: &Netns) -> Vec<String> {
    nft_tables(ns)
        .into_iter()
        .filter(|t| t.contains(TABLE_PREFIX))
        .collect()
}

/// `nft list table inet NAME`, or None when there is no such table.
pub fn nft_table_listing(ns: &Netns, name: &str) -> Option<String> {
    nft(ns, &["list", "table", "inet", name]).ok()
}

/// Raw-table lines of lkl-hijack's iptables chains (`LKLH-...`) in `ns`, each after the tool
/// that lists it: `iptables`/`ip6tables` (here iptables-nft) and the legacy
/// `iptables-legacy`/`ip6tables-legacy`, whose rules the others do not see.
pub fn iptables_lklh_lines(ns: &Netns) -> Vec<String> {
    let mut lines = Vec::new();
    for tool in [
        "iptables",
        "ip6tables",
        "iptables-legacy",
        "ip6tables-legacy",
    ] {
        let Ok(out) = ns.run(tool, &["-t", "raw", "-S"]) else {
            continue; // no ip6tables, or no raw table: nothing of ours there either
        };
        lines.extend(
            out.lines()
                .filter(|l| l.contains(CHAIN_PREFIX))
                .map(|l| format!("{tool}: {l}")),
        );
    }
    lines
}

/// Deletes an nftables table (family inet) in `ns` when dropped, so a table a test created or
/// applied by hand never outlives the test, even when it fails.
pub struct TableGuard<'a> {
    pub ns: &'a Netns,
    pub name: String,
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        let _ = nft(self.ns, &["delete", "table", "inet", &self.name]);
    }
}

/// The lines `lkl-hijack: firewall: <command>` of a stderr text, as commands.
pub fn firewall_commands(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("lkl-hijack: firewall: "))
        .map(str::to_string)
        .collect()
}

/// Whether `text`, without the table name `table` (whose pid could look like a port), names
/// `port` as a number of its own.
pub fn mentions_port(text: &str, table: &str, port: u16) -> bool {
    text.replace(table, "")
        .split(|c: char| !c.is_ascii_digit())
        .any(|n| n == port.to_string())
}

/// A pid that no process has (above this machine's pid_max when possible).
pub fn dead_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if max < 4_194_303 {
        return 4_194_303;
    }
    (2..max)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}
