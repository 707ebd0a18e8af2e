//! Keepalive and timeouts behave as Linux documents. A C program
//! (tests/programs/keepalive.c) listens, accepts one connection from a client in the peer
//! namespace, sets options on it and blocks in recv() while the rig's forwarder drops every
//! packet (its blackhole):
//!
//! - keepalive with TCP_KEEPIDLE 1, TCP_KEEPINTVL 1, TCP_KEEPCNT 3: tcp(7) says the connection
//!   is dropped after about idle + count × interval = 4 s of silence, and recv() fails with
//!   ETIMEDOUT; the probes are what the blackhole swallows;
//! - TCP_USER_TIMEOUT 2000 ms with data sent into the blackhole: ETIMEDOUT after about 2 s;
//! - SO_RCVTIMEO 500 ms on an idle, healthy connection: EAGAIN after about 0.5 s.
//!
//! Each case runs twice on the same rig: under the preload on LKL's address (the accepted
//! socket is LKL's) and without it on the container's host address (the host kernel), and
//! both must give the same errno within a generous window (the machine is shared: no tight
//! timing). Afterwards, with the link healthy again, the same program echoes over a fresh
//! connection. The LKL run listens on an address the container's host stack does not have, so
//! only LKL can have accepted it. The program's alarm(30) bounds each run: a timeout that is never applied fails
//! the test with "timeout: no result within 30 s" instead of hanging it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::{build_c, command_in, lkl_env, CSource, Server};
use lkl_rig::{Topology, VenetTopology};

const PORT: u16 = 7100;

/// What one run of the program reported.
struct Outcome {
    /// The result line, e.g. `keepalive: recv ETIMEDOUT after 3.98 s`.
    line: String,
    call: String,
    errno: String,
    secs: f64,
    /// Packets the blackhole dropped during the case, container to peer and back.
    a2b: u64,
    b2a: u64,
}

/// The program's stdout, line by line, with a clear failure when it stops talking.
struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Lines {
    fn next(&mut self, server: &mut Server, what: &str, limit: Duration) -> String {
        match self.rx.recv_timeout(limit) {
            Ok(line) if line.starts_with("timeout:") => {
                self.fail(server, &format!("{what}: the program gave up: {line}"))
            }
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                self.fail(server, &format!("{what}: nothing within {limit:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.fail(server, &format!("{what}: the program closed its output"))
            }
        }
    }

    fn fail(&mut self, server: &mut Server, msg: &str) -> ! {
        let _ = server.child.kill();
        let status = server.child.wait();
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        panic!(
            "{} {msg}\nexit: {status:?}\nstdout so far: {:?}\nstderr:\n{stderr}",
            server.name, self.seen
        );
    }
}

/// Runs `keepalive MODE ADDR PORT` in the container, on LKL (`lkl`) or on the host kernel,
/// with the blackhole on during the case if `blackhole`.
fn run_case(
    topo: &VenetTopology,
    program: &str,
    mode: &str,
    lkl: bool,
    blackhole: bool,
) -> Outcome {
    let a = topo.addrs();
    let (ip, env, name) = if lkl {
        (a.lkl_v4, lkl_env(topo), format!("{mode} on LKL"))
    } else {
        (a.host_v4, Vec::new(), format!("{mode} on the host kernel"))
    };
    let addr = SocketAddr::new(IpAddr::V4(ip), PORT);
    let mut cmd = command_in(
        topo.container_ns(),
        program,
        &[mode, &ip.to_string(), &PORT.to_string()],
        &env,
    );
    cmd.stdin(Stdio::piped());
    let mut server = Server::spawn(cmd, &name);
    let mut stdin: ChildStdin = server.child.stdin.take().unwrap();
    let stdout = server.child.stdout.take().unwrap();
    let mut stderr = server.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut lines = Lines {
        rx,
        seen: Vec::new(),
        stderr: Some(stderr),
    };
    let limit = Duration::from_secs(40);

    let line = lines.next(&mut server, "start", limit);
    assert_eq!(line, "listening");
    // The client lives in the peer, on the host kernel; its socket stays in the peer
    // namespace whichever thread holds it. It stays silent for the whole case.
    let client = topo
        .peer_ns()
        .spawn_thread(move || TcpStream::connect_timeout(&addr, Duration::from_secs(10)))
        .unwrap()
        .join()
        .unwrap()
        .unwrap_or_else(|e| lines.fail(&mut server, &format!("connect to {addr}: {e}")));
    let line = lines.next(&mut server, "after accept", limit);
    assert_eq!(line, "ready");

    let before = topo.forwarder_stats().unwrap();
    if blackhole {
        topo.set_blackhole(true).unwrap();
    }
    writeln!(stdin, "go").unwrap();
    let result = lines.next(&mut server, "waiting for the result", limit);
    let after = topo.forwarder_stats().unwrap();
    if blackhole {
        topo.set_blackhole(false).unwrap();
    }
    // Closed while the program still runs, so that its stack answers the FIN (no
    // retransmissions from the peer into the next run's blackhole).
    drop(client);
    let a2b = after.a2b.blackholed - before.a2b.blackholed;
    let b2a = after.b2a.blackholed - before.b2a.blackholed;

    // "MODE: CALL ERRNO after SECONDS s"
    let words: Vec<&str> = result.split_whitespace().collect();
    let parsed = match words.as_slice() {
        [m, call, errno, "after", secs, "s"] if m.trim_end_matches(':') == mode => secs
            .parse::<f64>()
            .ok()
            .map(|s| (call.to_string(), errno.to_string(), s)),
        _ => None,
    };
    let Some((call, errno, secs)) = parsed else {
        lines.fail(&mut server, &format!("unexpected result line {result:?}"))
    };

    // The link is healthy again: a fresh connection is served (echo).
    writeln!(stdin, "go").unwrap();
    let echoed = topo
        .peer_ns()
        .in_thread(|| -> std::io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"hello")?;
            let mut back = [0u8; 5];
            s.read_exact(&mut back)?;
            Ok(back.to_vec())
        })
        .unwrap();
    match echoed {
        Ok(back) if back == b"hello" => {}
        other => lines.fail(
            &mut server,
            &format!("fresh connection after the case: {other:?}"),
        ),
    }
    let line = lines.next(&mut server, "after the echo", limit);
    assert_eq!(line, "echo: 5 bytes");
    let status = server.wait_for_exit(Duration::from_secs(20));
    let stderr = lines.stderr.take().unwrap().join().unwrap();
    assert!(status.success(), "{name}: {status}\n{stderr}");

    eprintln!("{name}: {result} (blackhole dropped {a2b} container->peer, {b2a} peer->container)");
    Outcome {
        line: result,
        call,
        errno,
        secs,
        a2b,
        b2a,
    }
}

/// Both runs of `mode`: LKL first, then the host kernel.
fn both(mode: &str, blackhole: bool) -> [Outcome; 2] {
    let program = build_c("keepalive", CSource::File);
    let program = program.to_str().unwrap();
    let topo = VenetTopology::builder().build().expect("venet topology");
    let lkl = run_case(&topo, program, mode, true, blackhole);
    let host = run_case(&topo, program, mode, false, blackhole);
    eprintln!(
        "{mode}: LKL {:.2} s, host kernel {:.2} s",
        lkl.secs, host.secs
    );
    [lkl, host]
}

fn assert_within(o: &Outcome, which: &str, call: &str, errno: &str, lo: f64, hi: f64) {
    assert_eq!(
        (o.call.as_str(), o.errno.as_str()),
        (call, errno),
        "{which}: {}",
        o.line
    );
    assert!(
        (lo..=hi).contains(&o.secs),
        "{which}: {} (expected {lo}..{hi} s)",
        o.line
    );
}

#[test]
fn keepalive_drops_a_silent_peer_after_idle_plus_count_probes_with_etimedout() {
    let [lkl, host] = both("keepalive", true);
    for (o, which) in [(&lkl, "LKL"), (&host, "host kernel")] {
        // Idle 1 s (measured from the last ACK, up to 1 s before the blackhole) + 3 probes
        // 1 s apart: 3..4 s on an idle machine.
        assert_within(o, which, "recv", "ETIMEDOUT", 2.5, 15.0);
        // TCP_KEEPCNT 3: the probes went out and were swallowed.
        assert!(
            o.a2b >= 3,
            "{which}: {} keepalive probes dropped, expected 3 ({} from the peer)",
            o.a2b,
            o.b2a
        );
    }
}

#[test]
fn tcp_user_timeout_drops_unacknowledged_data_with_etimedout() {
    let [lkl, host] = both("user_timeout", true);
    for (o, which) in [(&lkl, "LKL"), (&host, "host kernel")] {
        assert_within(o, which, "recv", "ETIMEDOUT", 1.5, 15.0);
        // The data and its retransmissions were swallowed.
        assert!(o.a2b >= 2, "{which}: {} packets dropped", o.a2b);
    }
}

#[test]
fn so_rcvtimeo_makes_an_idle_recv_fail_with_eagain() {
    let [lkl, host] = both("rcvtimeo", false);
    for (o, which) in [(&lkl, "LKL"), (&host, "host kernel")] {
        assert_within(o, which, "recv", "EAGAIN", 0.4, 5.0);
    }
}
