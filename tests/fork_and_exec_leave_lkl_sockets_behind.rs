//! A forked child boots a kernel of its own: an inherited LKL listener is made again there
//! and works, an inherited connection gives EBADF and one warning (its TCP state is the
//! parent's), and the parent's sockets keep serving; an exec'd program finds no trace of the
//! old LKL sockets (their numbers are closed) and can boot its own kernel.

mod common;

use std::time::Duration;

use common::{command_in, lkl_env, lkl_v4, venet, Server};
use lkl_rig::Topology;

const FORK_PROGRAM: &str = r#"
import errno, os, socket, sys
s = socket.socket()
s.bind((sys.argv[1], 8080))
s.listen(4)
c = socket.create_connection((sys.argv[1], 8080))
a, _ = s.accept()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    results = []
    for call in [s.getsockname, c.getpeername, a.getpeername, s.getsockname]:
        try:
            call()
            results.append("ok")
        except OSError as e:
            results.append(errno.errorcode[e.errno])
    os.write(w, (" ".join(results) + "\n").encode())
    s.close()
    os._exit(0)
c.close()
a.close()
_, status = os.waitpid(pid, 0)
print("child:", os.read(r, 100).decode().strip(), "exit", os.waitstatus_to_exitcode(status), flush=True)
c, _ = s.accept()
c.sendall(b"parent still serves\n")
c.close()
"#;

#[test]
fn forked_child_keeps_lkl_listeners_gets_ebadf_on_connections_and_the_parent_keeps_serving() {
    let topo = venet();
    let addr = lkl_v4(&topo, 8080);
    let cmd = command_in(
        topo.container_ns(),
        "/usr/bin/python3",
        &["-c", FORK_PROGRAM, &addr.ip().to_string()],
        &lkl_env(&topo),
    );
    let mut server = Server::spawn(cmd, "fork program");
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    // wait_listening's probe was the accepted connection; the program then exits.
    let status = server.wait_for_exit(Duration::from_secs(10));
    let output = server.output();
    assert!(status.success(), "{output}");
    assert!(
        output.contains("child: ok EBADF EBADF ok exit 0"),
        "{output}"
    );
    assert_eq!(
        output
            .matches("forked child used a connected socket")
            .count(),
        1,
        "{output}"
    );
}

const EXEC_PROGRAM: &str = r#"
import os, socket, sys
if sys.argv[1] == "parent":
    s = socket.socket()
    s.set_inheritable(True)
    print("inheritable:", s.get_inheritable(), flush=True)
    os.execv(sys.executable, [sys.executable, "-c", PROGRAM, "child", str(s.fileno())])
else:
    try:
        os.fstat(int(sys.argv[2]))
        print("old fd: open")
    except OSError as e:
        print("old fd:", e.strerror)
    t = socket.socket()
    t.bind(("127.0.0.1", 0))
    t.listen()
    print("new kernel listens:", t.getsockname()[1] > 0)
"#;

#[test]
fn exec_closes_lkl_socket_numbers_and_the_new_program_boots_its_own() {
    let topo = venet();
    let program = format!("PROGRAM = {EXEC_PROGRAM:?}\n{EXEC_PROGRAM}");
    let out = command_in(
        topo.container_ns(),
        "/usr/bin/python3",
        &["-c", &program, "parent"],
        &lkl_env(&topo),
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout,
        "inheritable: True\nold fd: Bad file descriptor\nnew kernel listens: True\n"
    );
}

/// A single-process server that forks a helper before it first waits for connections: its
/// epoll set holds the listener, so it serves them itself (a parent that never waits on its
/// listeners leaves them to its children).
const HELPER_PROGRAM: &str = r#"
import os, selectors, socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], 8082))
s.listen(4)
s.setblocking(False)
pid = os.fork()
if pid == 0:
    time.sleep(0.2)
    os._exit(0)
sel = selectors.EpollSelector()
sel.register(s, selectors.EVENT_READ)
sel.select()
c, _ = s.accept()
c.setblocking(True)
c.sendall(b"served by the parent\n")
c.close()
os.waitpid(pid, 0)
print("served", flush=True)
"#;

#[test]
fn a_server_that_forks_a_helper_before_waiting_still_gets_its_connections() {
    let topo = venet();
    let addr = lkl_v4(&topo, 8082);
    let cmd = command_in(
        topo.container_ns(),
        "/usr/bin/python3",
        &["-c", HELPER_PROGRAM, &addr.ip().to_string()],
        &lkl_env(&topo),
    );
    let mut server = Server::spawn(cmd, "server with a helper");
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    let status = server.wait_for_exit(Duration::from_secs(10));
    let output = server.output();
    assert!(status.success(), "{output}");
    assert!(output.contains("served"), "{output}");
}
