//! `LKL_HIJACK_FIREWALL=print` installs nothing and prints the firewall commands
//! instead (`lkl-hijack: firewall: <command>`, one more per listening port). With LKL on the
//! container's own address the rules are needed: without them the container kernel resets the
//! peer's connections to LKL's port; applied by hand they let the peer in, and the table they
//! build is the one `auto` mode builds.

mod apps;
mod common;
mod host_firewall;
mod http_client;
mod logged_server;
mod shared_ip;

use std::net::SocketAddr;
use std::time::Duration;

use apps::{write_random_file, Scratch};
use common::{check_output, http_server_command, set_env, venet, wait_until};
use host_firewall::{
    firewall_commands, iptables_lklh_lines, lklhijack_tables, mentions_port, nft_table_listing,
    TableGuard,
};
use http_client::{fetch_from_peer, http_get_expect};
use lkl_ports::firewall::table_name;
use lkl_rig::{Topology, VenetTopology};
use logged_server::LoggedServer;
use shared_ip::{host_tcp_out_rsts, shared_ip_env};

const PORT: u16 = 8000;

fn http_server(topo: &VenetTopology, www: &str, firewall: Option<&str>) -> LoggedServer {
    let mut env = shared_ip_env(topo);
    if let Some(mode) = firewall {
        set_env(&mut env, "LKL_HIJACK_FIREWALL", mode);
    }
    let bind = topo.addrs().host_v4.to_string();
    let port = PORT.to_string();
    LoggedServer::spawn(
        http_server_command(topo.container_ns(), &port, &bind, www, &env),
        &format!("python3 -m http.server (firewall {firewall:?})"),
    )
}

/// The listing of a table with its owner's pid taken out, to compare two instances' tables.
fn normalized(listing: &str, pid: u32) -> String {
    listing.replace(&pid.to_string(), "PID")
}

#[test]
fn printed_commands_applied_by_hand_let_the_peer_reach_lkl_on_the_shared_address() {
    let topo = venet();
    let ns = topo.container_ns();
    let lkl = SocketAddr::new(topo.addrs().host_v4.into(), PORT);
    let dir = Scratch::new("fw-print");
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    write_random_file(&www.join("blob.bin"), 32 << 10, 0x9e17);
    let blob = std::fs::read(www.join("blob.bin")).unwrap();
    let www_s = www.display().to_string();

    let mut server = http_server(&topo, &www_s, Some("print"));
    let table = table_name(topo.container_if(), server.pid());
    // The listening port's command comes once the server listens.
    let listed = wait_until(Duration::from_secs(20), || {
        firewall_commands(&server.stderr())
            .iter()
            .any(|c| mentions_port(c, &table, PORT))
    });
    assert!(
        listed.is_some(),
        "no printed command names port {PORT} within 20 s; stderr:\n{}",
        server.stderr()
    );
    std::thread::sleep(Duration::from_millis(200)); // a line being written now, if any
    let commands = firewall_commands(&server.stderr());
    assert!(
        commands.iter().all(|c| c.contains(&table)),
        "a printed command does not name the instance's table {table}: {commands:#?}"
    );

    // print mode installed nothing.
    assert!(
        lklhijack_tables(ns).is_empty(),
        "print mode installed {:?}",
        lklhijack_tables(ns)
    );
    assert!(
        iptables_lklh_lines(ns).is_empty(),
        "print mode installed {:?}",
        iptables_lklh_lines(ns)
    );

    // Without the rules the container kernel answers the peer's segments to LKL's port with
    // RST: no request gets through.
    let rsts_before = host_tcp_out_rsts(ns);
    let outcomes: Vec<Result<(), String>> = topo
        .peer_ns()
        .in_thread(|| {
            (0..5)
                .map(|_| http_get_expect(lkl, "/blob.bin", &blob))
                .collect()
        })
        .unwrap();
    let rsts = host_tcp_out_rsts(ns) - rsts_before;
    assert!(
        outcomes.iter().all(Result::is_err),
        "without the rules a request got through: {outcomes:?} (the rules would not be needed)"
    );
    assert!(
        rsts > 0,
        "the failures were not the container kernel's RSTs: {outcomes:?}"
    );

    // Applied by hand, as printed.
    let _guard = TableGuard {
        ns,
        name: table.clone(),
    };
    for command in &commands {
        check_output(ns.command("sh").unwrap().args(["-c", command]));
    }
    let by_hand = nft_table_listing(ns, &table)
        .unwrap_or_else(|| panic!("the printed commands made no table {table}: {commands:#?}"));

    let failures = fetch_from_peer(&topo, lkl, "/blob.bin", &blob, 20);
    assert!(
        failures.is_empty(),
        "with the printed rules applied:\n{}\ncommands: {commands:#?}",
        failures.join("\n")
    );
    assert!(server.is_running(), "the server exited");
    let print_pid = server.pid();
    drop(server);
    drop(_guard);

    // auto mode builds the same table.
    let mut auto = http_server(&topo, &www_s, None);
    auto.server
        .wait_listening(topo.peer_ns(), lkl, Duration::from_secs(20));
    let auto_table = table_name(topo.container_if(), auto.pid());
    let by_auto = nft_table_listing(ns, &auto_table)
        .unwrap_or_else(|| panic!("auto mode installed no table {auto_table}"));
    assert_eq!(
        normalized(&by_hand, print_pid),
        normalized(&by_auto, auto.pid()),
        "the printed commands build a different table than auto mode"
    );
}
