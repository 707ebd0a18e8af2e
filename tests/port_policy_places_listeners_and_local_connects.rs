//! `LKL_HIJACK_PORTS` decides per listener: with LKL on the container's shared
//! address, a program's listener on a listed port lives in LKL and one on another port stays on
//! the host stack, and the peer reaches each. The program's own connects to a local address go
//! where the listener is: to LKL for LKL's port (over loopback or the shared address), to the
//! host for the host's.

mod apps;
mod common;
mod logged_server;
mod shared_ip;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{command_in, host_listens_on, set_env, venet, wait_until};
use lkl_rig::Topology;
use logged_server::LoggedServer;
use shared_ip::shared_ip_env;

/// Listens on 0.0.0.0:8000 (answers "lkl") and 0.0.0.0:8001 (answers "host"), connects to
/// itself and prints what each local address answered, then serves on.
const PROGRAM: &str = "import socket, sys, threading
shared = sys.argv[1]
def serve(s, tag):
    while True:
        c, _ = s.accept()
        c.sendall(tag)
        c.close()
for port, tag in ((8000, b'lkl'), (8001, b'host')):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    s.listen()
    threading.Thread(target=serve, args=(s, tag), daemon=True).start()
for addr in (('127.0.0.1', 8000), (shared, 8000), ('127.0.0.1', 8001)):
    c = socket.create_connection(addr, timeout=5)
    print(f'{addr[0]}:{addr[1]} {c.recv(16).decode()}', flush=True)
    c.close()
print('ready', flush=True)
threading.Event().wait()
";

#[test]
fn listed_ports_listen_on_lkl_others_on_the_host_and_local_connects_follow_the_listener() {
    let topo = venet();
    let shared = topo.addrs().host_v4;
    let mut env = shared_ip_env(&topo);
    set_env(&mut env, "LKL_HIJACK_PORTS", "8000");
    let shared_s = shared.to_string();
    let mut program = LoggedServer::spawn(
        command_in(
            topo.container_ns(),
            "/usr/bin/python3",
            &["-u", "-c", PROGRAM, &shared_s],
            &env,
        ),
        "python listener on 8000 and 8001",
    );
    let ready = wait_until(Duration::from_secs(20), || {
        program.stdout().contains("ready") || !program.is_running()
    });
    assert!(
        ready.is_some() && program.is_running(),
        "the program did not get ready\nstdout: {}\nstderr: {}",
        program.stdout(),
        program.stderr()
    );

    // The program's own connects: LKL's port through LKL, the host's through the host.
    let stdout = program.stdout();
    for line in [
        "127.0.0.1:8000 lkl".to_string(),
        format!("{shared}:8000 lkl"),
        "127.0.0.1:8001 host".to_string(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "the program's local connect did not print {line:?}:\n{stdout}"
        );
    }

    // Placement as the host stack sees it.
    assert!(
        !host_listens_on(topo.container_ns(), 8000),
        "port 8000 (listed) listens on the host stack"
    );
    assert!(
        host_listens_on(topo.container_ns(), 8001),
        "port 8001 (not listed) does not listen on the host stack"
    );

    // The peer reaches both on the one address.
    for (port, want) in [(8000, "lkl"), (8001, "host"), (8000, "lkl"), (8001, "host")] {
        let addr = SocketAddr::new(shared.into(), port);
        let got = topo
            .peer_ns()
            .in_thread(|| {
                let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut got = String::new();
                c.read_to_string(&mut got).map(|_| got)
            })
            .unwrap();
        match got {
            Ok(got) => assert_eq!(got, want, "the peer's connection to {addr}"),
            Err(e) => panic!("the peer's connection to {addr}: {e}"),
        }
    }
    assert!(program.is_running(), "the program exited");
}
