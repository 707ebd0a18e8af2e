//! Programs keep working where the host kernel lacks a system call the library uses: each
//! test runs a real program under a kernel profile (a seccomp filter refusing what that
//! kernel lacks) on the rig's venet0, and checks both the behaviour and that the fallback was
//! the path taken (the library's start-up log names it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{command_in, lkl_env, lkl_v4, set_env, venet, Server};
use lkl_rig::{KernelProfile, Topology};

const PORT: u16 = 7007;

/// An asyncio echo server (its event loop waits in epoll_wait): echoes every connection until
/// the client closes.
const ASYNCIO_ECHO: &str = r#"
import asyncio, sys
async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(echo, sys.argv[1], int(sys.argv[2]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

fn under_profile(mut cmd: Command, profile: &str) -> Command {
    KernelProfile::named(profile).unwrap().confine(&mut cmd);
    cmd
}

/// Sends `len` bytes of a pattern to `addr` from the peer and checks the echo, byte for byte.
fn echo_from_peer(topo: &dyn Topology, addr: SocketAddr, len: usize) {
    let sent: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    let got = topo
        .peer_ns()
        .in_thread(|| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut reader = s.try_clone().unwrap();
            let receiving = std::thread::spawn(move || {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).map(|_| got)
            });
            s.write_all(&sent).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            receiving.join().unwrap().unwrap()
        })
        .unwrap();
    assert_eq!(got.len(), sent.len(), "echoed length");
    assert!(got == sent, "echoed bytes differ");
}

#[test]
fn asyncio_echo_works_on_a_5_10_host_without_epoll_pwait2() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let mut env = lkl_env(&topo);
    set_env(&mut env, "RUST_LOG", "lkl_hijack=debug");
    let cmd = command_in(
        topo.container_ns(),
        "python3",
        &[
            "-c",
            ASYNCIO_ECHO,
            &addr.ip().to_string(),
            &PORT.to_string(),
        ],
        &env,
    );
    let mut server = Server::spawn(under_profile(cmd, "5.10"), "python3 asyncio echo");
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    echo_from_peer(&topo, addr, 1 << 20);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited\n{}",
        server.output()
    );
    server.terminate(Duration::from_secs(10));
    let log = server.output();
    assert!(
        log.contains("lacks epoll_pwait2 (Linux 5.11): epoll_pwait"),
        "the fallback is not the path taken:\n{log}"
    );
}

/// Opens an LKL listener and a host pipe, then calls close_range over both (through glibc's
/// function, which the library hooks) and reports the result and which descriptors are left.
const CLOSE_RANGE: &str = r#"
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
lkl = socket.socket()
lkl.bind((sys.argv[1], 7008))
lkl.listen()
r, w = os.pipe()
fds = sorted([lkl.fileno(), r, w])
for fd in fds:
    os.set_inheritable(fd, True)
flags = int(sys.argv[2])
ret = libc.close_range(fds[0], fds[-1], flags)
print("close_range", ret, ctypes.get_errno() if ret else 0)
def state(fd):
    try:
        return "cloexec" if os.get_inheritable(fd) is False else "open"
    except OSError:
        return "closed"
print("host", state(r), state(w), "lkl", state(lkl.fileno()))
"#;

fn close_range_under(profile: Option<&str>, flags: u32) -> String {
    let topo = venet();
    let a = topo.addrs();
    let mut env = lkl_env(&topo);
    set_env(&mut env, "RUST_LOG", "lkl_hijack=debug");
    let mut cmd = command_in(
        topo.container_ns(),
        "python3",
        &["-c", CLOSE_RANGE, &a.lkl_v4.to_string(), &flags.to_string()],
        &env,
    );
    if let Some(p) = profile {
        cmd = under_profile(cmd, p);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    if profile.is_some() {
        assert!(
            stderr.contains("lacks close_range (Linux 5.9)"),
            "the fallback is not the path taken:\n{stderr}"
        );
    }
    stdout
}

#[test]
fn close_range_closes_host_and_lkl_descriptors_on_a_5_4_host_as_on_a_new_one() {
    let want = "close_range 0 0\nhost closed closed lkl closed\n";
    assert_eq!(close_range_under(None, 0), want);
    assert_eq!(close_range_under(Some("5.4"), 0), want);
}

#[test]
fn close_range_cloexec_marks_host_and_lkl_descriptors_on_a_5_4_host_as_on_a_new_one() {
    let cloexec = libc::CLOSE_RANGE_CLOEXEC;
    let want = "close_range 0 0\nhost cloexec cloexec lkl cloexec\n";
    assert_eq!(close_range_under(None, cloexec), want);
    assert_eq!(close_range_under(Some("5.4"), cloexec), want);
}

#[test]
fn close_range_with_an_unknown_flag_fails_with_einval_and_closes_nothing() {
    let want = format!("close_range -1 {}\nhost open open lkl open\n", libc::EINVAL);
    assert_eq!(close_range_under(None, 1 << 7), want);
    assert_eq!(close_range_under(Some("5.4"), 1 << 7), want);
}
