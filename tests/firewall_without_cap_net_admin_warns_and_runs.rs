//! Without CAP_NET_ADMIN the firewall cannot be installed: `auto` mode then prints
//! one warning line carrying the commands and the server runs on. LKL is on its own address
//! here, so it works without the rules.

mod apps;
mod common;
mod host_firewall;
mod logged_server;

use std::time::Duration;

use apps::{curl_get, http_url, Scratch};
use common::{command_in, http_server_argv, lkl_env, lkl_v4, venet};
use host_firewall::{iptables_lklh_lines, lklhijack_tables};
use lkl_ports::firewall::table_name;
use lkl_rig::Topology;
use logged_server::LoggedServer;

const PORT: u16 = 8000;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// The effective capability set of `pid`.
fn cap_eff(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff line")
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn without_cap_net_admin_the_server_warns_once_with_the_commands_and_serves() {
    let topo = venet();
    let dir = Scratch::new("fw-nocap");
    let page = "served from LKL without CAP_NET_ADMIN\n";
    std::fs::write(dir.join("index.html"), page).unwrap();
    let (www, bind, port) = (
        dir.path.display().to_string(),
        topo.addrs().lkl_v4.to_string(),
        PORT.to_string(),
    );

    // setpriv drops CAP_NET_ADMIN from the bounding and inheritable sets, so the exec'd python
    // (same pid) runs without it; CAP_NET_RAW, which the packet socket needs, stays.
    let python = http_server_argv(&port, &bind, &www);
    let mut server = LoggedServer::spawn(
        command_in(
            topo.container_ns(),
            "setpriv",
            &["--inh-caps=-net_admin", "--bounding-set=-net_admin", "--"]
                .into_iter()
                .chain(python.iter().map(String::as_str))
                .collect::<Vec<_>>(),
            &lkl_env(&topo),
        ),
        "python3 -m http.server without CAP_NET_ADMIN",
    );
    server
        .server
        .wait_listening(topo.peer_ns(), lkl_v4(&topo, PORT), Duration::from_secs(20));
    let caps = cap_eff(server.pid());
    assert_eq!(
        caps >> CAP_NET_ADMIN & 1,
        0,
        "the server has CAP_NET_ADMIN (CapEff {caps:x})"
    );
    assert_eq!(
        caps >> CAP_NET_RAW & 1,
        1,
        "the server lacks CAP_NET_RAW (CapEff {caps:x})"
    );

    let body = curl_get(
        topo.peer_ns(),
        &http_url(lkl_v4(&topo, PORT), "/index.html"),
        10,
    );
    assert_eq!(String::from_utf8_lossy(&body), page);
    assert!(server.is_running(), "the server exited");
    let ns = topo.container_ns();
    assert!(
        lklhijack_tables(ns).is_empty(),
        "installed without CAP_NET_ADMIN? {:?}",
        lklhijack_tables(ns)
    );
    assert!(
        iptables_lklh_lines(ns).is_empty(),
        "{:?}",
        iptables_lklh_lines(ns)
    );

    let pid = server.pid();
    server.server.terminate(Duration::from_secs(10));
    let stderr = server.stderr();
    let others: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("lkl-hijack:") && !l.contains("CAP_NET_ADMIN"))
        .collect();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CAP_NET_ADMIN"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "not one CAP_NET_ADMIN warning line:\n{stderr}"
    );
    assert!(
        others.is_empty(),
        "more lines from lkl-hijack than the warning:\n{stderr}"
    );
    let warning = warnings[0];
    let table = table_name(topo.container_if(), pid);
    assert!(
        warning.contains("nft") && warning.contains(&table),
        "the warning does not carry the nft commands for table {table}: {warning:?}"
    );
}
